#include "tools/upstream-sim/sim_anthropic.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "lib/base/json.h"

namespace moa::sim {

std::string ThinkingText(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text += i % 2 == 0 ? "let me " : "think ";
  return text;
}

namespace anthropic {
namespace {

using json = moa::json::Json;

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// A content that is a string or a list of blocks, as text; tool_result
// blocks are read as their own "tool" message (so a tool result ends the
// conversation as it does in the OpenAI form).
absl::Status ReadContent(const json& content, const std::string& role,
                         std::vector<SimMessage>* out) {
  if (content.is_string()) {
    out->push_back({role, content.get<std::string>()});
    return absl::OkStatus();
  }
  if (!content.is_array()) return Invalid("each message's 'content' must be a string or a list");
  SimMessage message{role, ""};
  for (const json& block : content) {
    auto type = moa::json::OptionalString(block, "type", "type");
    if (!block.is_object() || !type.ok() || !*type) {
      return Invalid("each content block needs a string 'type'");
    }
    if (**type == "text") {
      auto text = moa::json::OptionalString(block, "text", "text");
      if (!text.ok() || !*text) return Invalid("a text block needs a string 'text'");
      message.content += **text;
    } else if (**type == "tool_result") {
      std::string result;
      if (const json* c = moa::json::Member(block, "content"); c != nullptr && c->is_string()) {
        result = c->get<std::string>();
      }
      out->push_back({"tool", std::move(result)});
    }
    // tool_use, image and thinking blocks carry no text the simulator reads.
  }
  if (!message.content.empty() || out->empty() || out->back().role != "tool") {
    out->push_back(std::move(message));
  }
  return absl::OkStatus();
}

std::string Event(absl::string_view type, const json& data) {
  return absl::StrCat("event: ", type, "\ndata: ", moa::json::Dump(data), "\n\n");
}

const char* StopReason(absl::string_view finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls") return "tool_use";
  return "end_turn";
}

// Thinking is part of the output tokens (Anthropic reports it no apart).
json Usage(const AnswerFacts& facts, int completion_tokens) {
  return {{"input_tokens", facts.prompt_tokens},
          {"output_tokens", completion_tokens + facts.reasoning_tokens}};
}

// The answer's block index: after the thinking block when there is one.
int AnswerIndex(const AnswerFacts& facts) { return facts.reasoning_tokens > 0 ? 1 : 0; }

}  // namespace

absl::StatusOr<ChatRequestInfo> Parse(absl::string_view body) {
  absl::StatusOr<json> parsed = moa::json::Parse(body);
  if (!parsed.ok()) return parsed.status();
  json& j = *parsed;
  if (!j.is_object()) return Invalid("request body is not a JSON object");
  ChatRequestInfo info;
  info.api = SimApi::kAnthropic;
  auto model = moa::json::OptionalString(j, "model", "model");
  if (!model.ok() || !*model) return Invalid("model: Field required");
  info.model = **model;
  auto max_tokens =
      moa::json::OptionalInt(j, "max_tokens", "max_tokens", 1, std::numeric_limits<int32_t>::max());
  if (!max_tokens.ok()) return max_tokens.status();
  if (!*max_tokens) return Invalid("max_tokens: Field required");
  info.max_tokens = **max_tokens;
  if (const json* system = moa::json::Member(j, "system")) {
    if (absl::Status s = ReadContent(*system, "system", &info.messages); !s.ok()) return s;
  }
  const json* messages = moa::json::Member(j, "messages");
  if (messages == nullptr || !messages->is_array() || messages->empty()) {
    return Invalid("messages: must be a non-empty list");
  }
  for (const json& m : *messages) {
    auto role = moa::json::OptionalString(m, "role", "role");
    if (!m.is_object() || !role.ok() || !*role || (**role != "user" && **role != "assistant")) {
      return Invalid("each message needs 'role' user or assistant");
    }
    const json* content = moa::json::Member(m, "content");
    if (content == nullptr) return Invalid("each message needs 'content'");
    if (absl::Status s = ReadContent(*content, **role, &info.messages); !s.ok()) return s;
  }
  auto stream = moa::json::OptionalBool(j, "stream", "stream");
  if (!stream.ok()) return stream.status();
  info.stream = stream->value_or(false);
  info.include_usage = true;  // Usage is always in the events.
  if (const json* tools = moa::json::Member(j, "tools")) {
    if (!tools->is_array()) return Invalid("tools: must be a list");
    for (const json& t : *tools) {
      auto name = moa::json::OptionalString(t, "name", "name");
      if (!name.ok() || !*name) return Invalid("each tool needs a string 'name'");
      info.tool_names.push_back(**name);
    }
  }
  if (const json* choice = moa::json::Member(j, "tool_choice")) {
    auto type = moa::json::OptionalString(*choice, "type", "tool_choice.type");
    if (!type.ok()) return type.status();
    info.tool_choice_none = *type == "none";
    if (*type == "tool") {
      auto name = moa::json::OptionalString(*choice, "name", "tool_choice.name");
      if (!name.ok() || !*name) return Invalid("tool_choice.name is required with type tool");
      info.tool_choice_function = **name;
    }
  }
  if (const json* thinking = moa::json::Member(j, "thinking")) {
    info.wants_reasoning =
        moa::json::Member(*thinking, "type") != nullptr && (*thinking)["type"] == "enabled";
  }
  info.params = json::object();
  for (const char* key : {"temperature", "top_p", "top_k", "max_tokens", "stop_sequences", "tools",
                          "tool_choice", "thinking", "system", "metadata"}) {
    if (j.contains(key)) info.params[key] = j[key];
  }
  info.messages_json = std::move(j["messages"]);
  return info;
}

std::string StreamStart(const AnswerFacts& facts) {
  json block = facts.tool_call.empty() ? json{{"type", "text"}, {"text", ""}}
                                       : json{{"type", "tool_use"},
                                              {"id", facts.tool_call_id},
                                              {"name", facts.tool_call},
                                              {"input", json::object()}};
  std::string thinking;
  if (facts.reasoning_tokens > 0) {
    thinking = absl::StrCat(
        Event("content_block_start", {{"type", "content_block_start"},
                                      {"index", 0},
                                      {"content_block", {{"type", "thinking"}, {"thinking", ""}}}}),
        Event("content_block_delta",
              {{"type", "content_block_delta"},
               {"index", 0},
               {"delta",
                {{"type", "thinking_delta"}, {"thinking", ThinkingText(facts.reasoning_tokens)}}}}),
        Event("content_block_delta",
              {{"type", "content_block_delta"},
               {"index", 0},
               {"delta", {{"type", "signature_delta"}, {"signature", "c2lt"}}}}),
        Event("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}}));
  }
  return absl::StrCat(
      Event("message_start",
            {{"type", "message_start"},
             {"message",
              {{"id", absl::StrCat("msg_sim_", facts.id)},
               {"type", "message"},
               {"role", "assistant"},
               {"content", json::array()},
               {"model", facts.model},
               {"stop_reason", nullptr},
               {"stop_sequence", nullptr},
               {"usage", {{"input_tokens", facts.prompt_tokens}, {"output_tokens", 1}}}}}}),
      thinking,
      Event("content_block_start", {{"type", "content_block_start"},
                                    {"index", AnswerIndex(facts)},
                                    {"content_block", std::move(block)}}),
      Event("ping", {{"type", "ping"}}));
}

std::string StreamToken(const AnswerFacts& facts, const std::string& token) {
  json delta = facts.tool_call.empty()
                   ? json{{"type", "text_delta"}, {"text", token}}
                   : json{{"type", "input_json_delta"}, {"partial_json", token}};
  return Event("content_block_delta", {{"type", "content_block_delta"},
                                       {"index", AnswerIndex(facts)},
                                       {"delta", std::move(delta)}});
}

std::string StreamEnd(const AnswerFacts& facts, absl::string_view finish_reason,
                      int completion_tokens) {
  return absl::StrCat(
      Event("content_block_stop", {{"type", "content_block_stop"}, {"index", AnswerIndex(facts)}}),
      Event("message_delta",
            {{"type", "message_delta"},
             {"delta", {{"stop_reason", StopReason(finish_reason)}, {"stop_sequence", nullptr}}},
             {"usage", {{"output_tokens", completion_tokens + facts.reasoning_tokens}}}}),
      Event("message_stop", {{"type", "message_stop"}}));
}

std::string Whole(const AnswerFacts& facts, const std::string& text,
                  absl::string_view finish_reason, int completion_tokens) {
  json content = json::array();
  if (facts.reasoning_tokens > 0) {
    content.push_back({{"type", "thinking"},
                       {"thinking", ThinkingText(facts.reasoning_tokens)},
                       {"signature", "c2lt"}});
  }
  if (facts.tool_call.empty()) {
    content.push_back({{"type", "text"}, {"text", text}});
  } else {
    absl::StatusOr<json> input = moa::json::Parse(text);
    content.push_back({{"type", "tool_use"},
                       {"id", facts.tool_call_id},
                       {"name", facts.tool_call},
                       {"input", input.ok() && input->is_object() ? *input : json::object()}});
  }
  return moa::json::Dump({{"id", absl::StrCat("msg_sim_", facts.id)},
                          {"type", "message"},
                          {"role", "assistant"},
                          {"model", facts.model},
                          {"content", std::move(content)},
                          {"stop_reason", StopReason(finish_reason)},
                          {"stop_sequence", nullptr},
                          {"usage", Usage(facts, completion_tokens)}});
}

std::string ErrorBody(absl::string_view type, absl::string_view message) {
  return moa::json::Dump({{"type", "error"}, {"error", {{"type", type}, {"message", message}}}});
}

}  // namespace anthropic
}  // namespace moa::sim
