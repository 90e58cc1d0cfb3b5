#include "lib/llm/anthropic_dialect.h"

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "lib/base/json.h"
#include "lib/base/redact.h"
#include "lib/base/status_macros.h"
#include "lib/llm/tool_text.h"

namespace moa::llm {
namespace {

using json = moa::json::Json;

absl::Status Unmappable(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("the Anthropic Messages API cannot take this request: ", what));
}

// One message's content blocks.
absl::StatusOr<json> Blocks(const Message& m, size_t index) {
  json blocks = json::array();
  if (m.role == Role::kTool) {
    blocks.push_back(
        {{"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.content}});
    return blocks;
  }
  if (!m.content.empty()) blocks.push_back({{"type", "text"}, {"text", m.content}});
  if (!m.images.empty() && m.role != Role::kUser) {
    return Unmappable(absl::StrCat("messages[", index, "] is no user message but has images"));
  }
  for (const Image& image : m.images) {
    if (std::optional<DataUrl> data = ParseDataUrl(image.url)) {
      blocks.push_back({{"type", "image"},
                        {"source",
                         {{"type", "base64"},
                          {"media_type", data->media_type},
                          {"data", std::move(data->base64)}}}});
    } else {
      blocks.push_back({{"type", "image"}, {"source", {{"type", "url"}, {"url", image.url}}}});
    }
  }
  for (size_t j = 0; j < m.tool_calls.size(); ++j) {
    const ToolCall& c = m.tool_calls[j];
    absl::StatusOr<json> input =
        moa::json::Parse(c.arguments.empty() ? absl::string_view("{}") : c.arguments, 64);
    if (!input.ok() || !input->is_object()) {
      return Unmappable(
          absl::StrCat("messages[", index, "].tool_calls[", j, "].arguments is not a JSON object"));
    }
    blocks.push_back(
        {{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", *std::move(input)}});
  }
  return blocks;
}

absl::Status AddTools(const ToolOptions& options, json* body) {
  json tools = json::array();
  for (const Tool& t : options.tools) {
    json tool = {{"name", t.name}};
    if (!t.description.empty()) tool["description"] = t.description;
    json schema = {{"type", "object"}};
    if (!t.parameters_json.empty()) {
      absl::StatusOr<json> parsed = moa::json::Parse(t.parameters_json, 64);
      if (parsed.ok()) schema = *std::move(parsed);
    }
    tool["input_schema"] = std::move(schema);
    if (t.strict) tool["strict"] = true;
    tools.push_back(std::move(tool));
  }
  (*body)["tools"] = std::move(tools);
  json choice;
  if (!options.choice_function.empty()) {
    choice = {{"type", "tool"}, {"name", options.choice_function}};
  } else if (options.choice == "required") {
    choice = {{"type", "any"}};
  } else if (!options.choice.empty()) {
    choice = {{"type", options.choice}};  // "auto" or "none", the same words.
  }
  if (options.parallel_tool_calls && !*options.parallel_tool_calls) {
    if (choice.is_null()) choice = {{"type", "auto"}};
    choice["disable_parallel_tool_use"] = true;
  }
  if (!choice.is_null()) (*body)["tool_choice"] = std::move(choice);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> BuildAnthropicBody(absl::string_view model, const ChatRequest& request,
                                               const ReasoningSettings& reasoning) {
  const SamplingParams& p = request.params;
  if (p.seed) return Unmappable("it has no seed");
  const bool thinking = reasoning.budget_tokens.has_value();
  if (p.temperature && (*p.temperature < 0 || *p.temperature > 1)) {
    return Unmappable("temperature must be between 0 and 1");
  }
  if (thinking && p.temperature) {
    return Unmappable("a temperature cannot be set while thinking is on (reasoning.budget_tokens)");
  }
  if (thinking && p.top_p && *p.top_p < 0.95) {
    return Unmappable("top_p must be at least 0.95 while thinking is on (reasoning.budget_tokens)");
  }
  int64_t max_tokens = p.max_tokens ? *p.max_tokens : kAnthropicDefaultMaxTokens;
  if (thinking) {
    if (!p.max_tokens) {
      max_tokens += *reasoning.budget_tokens;
    } else if (*p.max_tokens <= *reasoning.budget_tokens) {
      return Unmappable(absl::StrCat("max_tokens (", *p.max_tokens,
                                     ") must be over the thinking budget (reasoning.budget_tokens ",
                                     *reasoning.budget_tokens, ")"));
    }
  }

  const bool tools = !request.tools.empty();
  SplitSystem split = SplitSystemMessages(tools || !HasToolTurns(request.messages)
                                              ? request.messages
                                              : ToolTurnsAsText(request.messages));
  // Consecutive messages of one role become one message (the API wants
  // user and assistant turns to alternate; a tool result is a user turn).
  json messages = json::array();
  std::string last_role;
  for (size_t i = 0; i < split.messages.size(); ++i) {
    const Message& m = split.messages[i];
    absl::StatusOr<json> blocks = Blocks(m, i);
    if (!blocks.ok()) return blocks.status();
    if (blocks->empty()) continue;  // An empty turn says nothing (and the API refuses it).
    const std::string role = m.role == Role::kAssistant ? "assistant" : "user";
    if (role == last_role) {
      for (json& b : *blocks) messages.back()["content"].push_back(std::move(b));
    } else {
      messages.push_back({{"role", role}, {"content", *std::move(blocks)}});
      last_role = role;
    }
  }
  // A trailing assistant turn is a prefill the model continues; the API
  // refuses one that ends in white space.
  if (!messages.empty() && last_role == "assistant") {
    if (thinking)
      return Unmappable("a trailing assistant message cannot be continued while thinking is on");
    json& content = messages.back()["content"];
    json& last = content.back();
    if (last["type"] == "text") {
      std::string text = last["text"].get<std::string>();
      text.erase(absl::StripTrailingAsciiWhitespace(text).size());
      if (text.empty()) {
        content.erase(content.size() - 1);
        if (content.empty()) messages.erase(messages.size() - 1);
      } else {
        last["text"] = std::move(text);
      }
    }
  }
  json body = {{"model", model},
               {"max_tokens", max_tokens},
               {"messages", std::move(messages)},
               {"stream", true}};
  if (!split.system.empty()) body["system"] = split.system;
  if (tools) {
    if (absl::Status s = AddTools(request.tools, &body); !s.ok()) return s;
  }
  if (p.temperature) body["temperature"] = *p.temperature;
  if (p.top_p) body["top_p"] = *p.top_p;
  if (!p.stop.empty()) body["stop_sequences"] = p.stop;
  if (thinking)
    body["thinking"] = {{"type", "enabled"}, {"budget_tokens", *reasoning.budget_tokens}};
  return moa::json::Dump(body);
}

namespace {

absl::Status Malformed(absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("upstream sent a malformed Anthropic stream event: ", what));
}

// An `error` event's (or error body's) type as a status.
absl::Status ErrorEventStatus(const json& error) {
  std::string type = "api_error";
  std::string message = "upstream reported an error";
  if (auto t = moa::json::OptionalString(error, "type", "type"); t.ok() && *t) {
    type = SanitizePeerText(**t, "", 64);
  }
  if (auto m = moa::json::OptionalString(error, "message", "message"); m.ok() && *m) {
    message = SanitizePeerText(**m);
  }
  std::string text = absl::StrCat("upstream error mid-stream (", type, "): ", message);
  if (type == "rate_limit_error") return absl::ResourceExhaustedError(text);
  if (type == "invalid_request_error" || type == "request_too_large") {
    return absl::InvalidArgumentError(text);
  }
  if (type == "authentication_error") return absl::UnauthenticatedError(text);
  if (type == "permission_error") return absl::PermissionDeniedError(text);
  if (type == "not_found_error") return absl::NotFoundError(text);
  return absl::UnavailableError(text);  // overloaded_error, api_error, and any new one.
}

// The stop reason in OpenAI's words (what the rest of the cluster speaks).
std::optional<std::string> FinishReason(const std::string& stop_reason) {
  if (stop_reason == "end_turn" || stop_reason == "stop_sequence" || stop_reason == "pause_turn") {
    return "stop";
  }
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") {
    return "length";
  }
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return std::nullopt;
}

class AnthropicStreamReader : public StreamReader {
 public:
  absl::StatusOr<StreamChunk> Read(const SseEvent& event) override {
    absl::StatusOr<json> parsed = moa::json::Parse(event.data, kMaxEventDepth);
    if (!parsed.ok()) return Malformed(parsed.status().message());
    const json& j = *parsed;
    if (!j.is_object()) return Malformed("not a JSON object");
    auto type = moa::json::OptionalString(j, "type", "type");
    if (!type.ok()) return Malformed(type.status().message());
    const std::string kind = type->value_or(event.event);
    StreamChunk chunk;
    if (kind == "message_start") {
      const json* message = moa::json::Member(j, "message");
      if (message == nullptr || !message->is_object())
        return Malformed("message_start without a message");
      if (const json* u = moa::json::Member(*message, "usage")) {
        if (absl::Status s = ReadUsage(*u); !s.ok()) return s;
        chunk.usage = usage_;
      }
    } else if (kind == "content_block_start" || kind == "content_block_delta") {
      auto index = moa::json::OptionalInt(j, "index", "index", 0, 1 << 20);
      if (!index.ok() || !*index) return Malformed(absl::StrCat(kind, " without a block index"));
      const bool start = kind == "content_block_start";
      const json* body = moa::json::Member(j, start ? "content_block" : "delta");
      if (body == nullptr || !body->is_object()) {
        return Malformed(absl::StrCat(kind, " without its ", start ? "content_block" : "delta"));
      }
      if (absl::Status s =
              start ? BlockStart(**index, *body, &chunk) : BlockDelta(**index, *body, &chunk);
          !s.ok()) {
        return s;
      }
    } else if (kind == "message_delta") {
      if (const json* delta = moa::json::Member(j, "delta")) {
        auto stop = moa::json::OptionalString(*delta, "stop_reason", "delta.stop_reason");
        if (!stop.ok()) return Malformed(stop.status().message());
        if (*stop) {
          chunk.finish_reason = FinishReason(**stop);
          if (!chunk.finish_reason) {
            return Malformed(
                absl::StrCat("unknown stop_reason '", SanitizePeerText(**stop, "", 32), "'"));
          }
        }
      }
      if (const json* u = moa::json::Member(j, "usage")) {
        if (absl::Status s = ReadUsage(*u); !s.ok()) return s;
        chunk.usage = usage_;
      }
    } else if (kind == "message_stop") {
      chunk.done = true;
    } else if (kind == "error") {
      const json* error = moa::json::Member(j, "error");
      chunk.error = ErrorEventStatus(error != nullptr ? *error : json::object());
    }
    // content_block_stop, ping, and event types added later carry nothing
    // the cluster reads (the API's versioning policy says new ones come).
    return chunk;
  }

 private:
  // message_start's usage has the input; message_delta's the output so far
  // (cumulative), and on newer servers the input again.
  absl::Status ReadUsage(const json& u) {
    if (!u.is_object()) return Malformed("usage is not an object");
    constexpr int64_t kMax = int64_t{1} << 40;
    int64_t input = 0;
    bool any_input = false;
    for (const char* key :
         {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}) {
      auto n = moa::json::OptionalInt(u, key, absl::StrCat("usage.", key), 0, kMax);
      if (!n.ok()) return Malformed(n.status().message());
      if (*n) {
        input += **n;
        any_input = true;
      }
    }
    if (any_input) usage_.prompt_tokens = input;
    auto output = moa::json::OptionalInt(u, "output_tokens", "usage.output_tokens", 0, kMax);
    if (!output.ok()) return Malformed(output.status().message());
    if (*output) usage_.completion_tokens = **output;
    return absl::OkStatus();
  }

  absl::Status BlockStart(int64_t index, const json& block, StreamChunk* chunk) {
    auto type = moa::json::OptionalString(block, "type", "content_block.type");
    if (!type.ok() || !*type) return Malformed("content_block without a type");
    if (**type == "text") {
      auto text = moa::json::OptionalString(block, "text", "content_block.text");
      if (!text.ok()) return Malformed(text.status().message());
      if (*text) chunk->delta = **text;
    } else if (**type == "tool_use") {
      if (tool_index_.size() >= static_cast<size_t>(kMaxToolCallIndex)) {
        return Malformed(absl::StrCat("over ", kMaxToolCallIndex, " tool calls"));
      }
      auto id = moa::json::OptionalString(block, "id", "content_block.id");
      auto name = moa::json::OptionalString(block, "name", "content_block.name");
      if (!id.ok() || !name.ok()) return Malformed("tool_use with a non-string id or name");
      ToolCallFragment f;
      f.index = static_cast<int>(tool_index_.size());
      tool_index_[index] = f.index;
      if (*id) f.id = **id;
      if (*name) f.name = **name;
      // The input comes in input_json_delta pieces; a start that carries a
      // whole non-empty input (some servers) is that input.
      if (const json* input = moa::json::Member(block, "input");
          input != nullptr && input->is_object() && !input->empty()) {
        f.arguments = moa::json::Dump(*input);
        whole_input_.insert(index);
      }
      chunk->tool_calls.push_back(std::move(f));
    }
    // thinking and redacted_thinking blocks start empty; other block types
    // (server tools' results) carry nothing the cluster reads.
    return absl::OkStatus();
  }

  absl::Status BlockDelta(int64_t index, const json& delta, StreamChunk* chunk) {
    auto type = moa::json::OptionalString(delta, "type", "delta.type");
    if (!type.ok() || !*type) return Malformed("delta without a type");
    auto field = [&](const char* key) -> absl::StatusOr<std::string> {
      auto value = moa::json::OptionalString(delta, key, absl::StrCat("delta.", key));
      if (!value.ok()) return Malformed(value.status().message());
      return value->value_or("");
    };
    if (**type == "text_delta") {
      MOA_ASSIGN_OR_RETURN(chunk->delta, field("text"));
    } else if (**type == "input_json_delta") {
      auto it = tool_index_.find(index);
      if (it == tool_index_.end())
        return Malformed("input_json_delta for a block that is no tool_use");
      ToolCallFragment f;
      f.index = it->second;
      MOA_ASSIGN_OR_RETURN(f.arguments, field("partial_json"));
      if (whole_input_.count(index) == 0 && !f.arguments.empty()) {
        chunk->tool_calls.push_back(std::move(f));
      }
    } else if (**type == "thinking_delta") {
      MOA_ASSIGN_OR_RETURN(chunk->reasoning, field("thinking"));
    }
    // signature_delta, citations_delta: nothing the cluster reads.
    return absl::OkStatus();
  }

  Usage usage_;
  std::map<int64_t, int> tool_index_;  // Content block index -> tool call index.
  std::set<int64_t> whole_input_;
};

}  // namespace

std::unique_ptr<StreamReader> NewAnthropicStreamReader() {
  return std::make_unique<AnthropicStreamReader>();
}

}  // namespace moa::llm
