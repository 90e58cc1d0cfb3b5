#include "tools/upstream-sim/sim_gemini.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "lib/base/json.h"

namespace moa::sim::gemini {
namespace {

using json = moa::json::Json;

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// A Content's text parts joined; a functionResponse part is its own "tool"
// message (so a tool result ends the conversation as it does in the
// OpenAI form).
absl::Status ReadContent(const json& content, const std::string& role,
                         std::vector<SimMessage>* out) {
  const json* parts = moa::json::Member(content, "parts");
  if (parts == nullptr || !parts->is_array()) return Invalid("each content needs a 'parts' list");
  SimMessage message{role, ""};
  bool results = false;
  for (const json& part : *parts) {
    if (!part.is_object()) return Invalid("each part must be an object");
    auto text = moa::json::OptionalString(part, "text", "text");
    if (!text.ok()) return text.status();
    auto thought = moa::json::OptionalBool(part, "thought", "thought");
    if (*text && !(thought.ok() && thought->value_or(false))) message.content += **text;
    if (const json* response = moa::json::Member(part, "functionResponse")) {
      const json* value = moa::json::Member(*response, "response");
      out->push_back({"tool", value != nullptr ? moa::json::Dump(*value) : ""});
      results = true;
    }
  }
  if (!message.content.empty() || !results) out->push_back(std::move(message));
  return absl::OkStatus();
}

const char* FinishReason(absl::string_view finish_reason) {
  return finish_reason == "length" ? "MAX_TOKENS" : "STOP";
}

json UsageMetadata(const AnswerFacts& facts, int completion_tokens) {
  json u = {{"promptTokenCount", facts.prompt_tokens},
            {"totalTokenCount", facts.prompt_tokens + completion_tokens}};
  if (completion_tokens > 0) u["candidatesTokenCount"] = completion_tokens;
  if (completion_tokens > 0 && facts.reasoning_tokens > 0) {
    u["thoughtsTokenCount"] = facts.reasoning_tokens;
    u["totalTokenCount"] = facts.prompt_tokens + completion_tokens + facts.reasoning_tokens;
  }
  return u;
}

json Response(const AnswerFacts& facts, json parts, const char* finish_reason,
              int completion_tokens) {
  json candidate = {{"content", {{"parts", std::move(parts)}, {"role", "model"}}}, {"index", 0}};
  if (finish_reason != nullptr) candidate["finishReason"] = finish_reason;
  return {{"candidates", json::array({std::move(candidate)})},
          {"usageMetadata", UsageMetadata(facts, completion_tokens)},
          {"modelVersion", facts.model},
          {"responseId", absl::StrCat("sim-", facts.id)}};
}

json CallPart(const AnswerFacts& facts, const std::string& text) {
  absl::StatusOr<json> args = moa::json::Parse(text);
  return {{"functionCall",
           {{"name", facts.tool_call},
            {"args", args.ok() && args->is_object() ? *args : json::object()}}}};
}

std::string Data(const json& response) {
  // Google's servers end each event with CRLF pairs.
  return absl::StrCat("data: ", moa::json::Dump(response), "\r\n\r\n");
}

}  // namespace

absl::StatusOr<ChatRequestInfo> Parse(absl::string_view body, absl::string_view model,
                                      bool stream) {
  absl::StatusOr<json> parsed = moa::json::Parse(body);
  if (!parsed.ok()) return parsed.status();
  json& j = *parsed;
  if (!j.is_object()) return Invalid("request body is not a JSON object");
  ChatRequestInfo info;
  info.api = SimApi::kGemini;
  info.model = std::string(model);
  info.stream = stream;
  info.include_usage = true;
  if (const json* system = moa::json::Member(j, "systemInstruction")) {
    if (absl::Status s = ReadContent(*system, "system", &info.messages); !s.ok()) return s;
  }
  const json* contents = moa::json::Member(j, "contents");
  if (contents == nullptr || !contents->is_array() || contents->empty()) {
    return Invalid("contents is not specified");
  }
  for (const json& c : *contents) {
    auto role = moa::json::OptionalString(c, "role", "role");
    if (!c.is_object() || !role.ok()) return Invalid("each content must be an object");
    const std::string r = role->value_or("user");
    if (r != "user" && r != "model") return Invalid("a content's role must be user or model");
    if (absl::Status s = ReadContent(c, r == "model" ? "assistant" : "user", &info.messages);
        !s.ok()) {
      return s;
    }
  }
  if (const json* config = moa::json::Member(j, "generationConfig")) {
    auto max = moa::json::OptionalInt(*config, "maxOutputTokens", "maxOutputTokens", 1,
                                      std::numeric_limits<int32_t>::max());
    if (!max.ok()) return max.status();
    if (*max) info.max_tokens = **max;
    if (const json* thinking = moa::json::Member(*config, "thinkingConfig")) {
      const json* budget = moa::json::Member(*thinking, "thinkingBudget");
      info.wants_reasoning = budget == nullptr || *budget != 0;
      const json* include = moa::json::Member(*thinking, "includeThoughts");
      info.include_thoughts = include != nullptr && *include == true;
    }
  }
  if (const json* tools = moa::json::Member(j, "tools")) {
    if (!tools->is_array()) return Invalid("tools must be a list");
    for (const json& t : *tools) {
      const json* declarations = moa::json::Member(t, "functionDeclarations");
      if (declarations == nullptr || !declarations->is_array()) continue;
      for (const json& d : *declarations) {
        auto name = moa::json::OptionalString(d, "name", "name");
        if (!name.ok() || !*name) return Invalid("each function declaration needs a 'name'");
        info.tool_names.push_back(**name);
      }
    }
  }
  if (const json* tc = moa::json::Member(j, "toolConfig")) {
    if (const json* fc = moa::json::Member(*tc, "functionCallingConfig")) {
      auto mode = moa::json::OptionalString(*fc, "mode", "functionCallingConfig.mode");
      if (!mode.ok()) return mode.status();
      info.tool_choice_none = *mode == "NONE";
      const json* allowed = moa::json::Member(*fc, "allowedFunctionNames");
      if (allowed != nullptr && allowed->is_array() && allowed->size() == 1 &&
          (*allowed)[0].is_string()) {
        info.tool_choice_function = (*allowed)[0].get<std::string>();
      }
    }
  }
  info.params = json::object();
  for (const char* key : {"generationConfig", "tools", "toolConfig", "systemInstruction"}) {
    if (j.contains(key)) info.params[key] = j[key];
  }
  info.messages_json = std::move(j["contents"]);
  return info;
}

std::string StreamStart(const AnswerFacts& facts) {
  if (facts.reasoning_tokens == 0 || !facts.reasoning_text) return "";
  return Data(Response(
      facts, json::array({{{"text", ThinkingText(facts.reasoning_tokens)}, {"thought", true}}}),
      nullptr, 0));
}

std::string StreamToken(const AnswerFacts& facts, const std::string& token) {
  if (!facts.tool_call.empty()) return "";
  return Data(Response(facts, json::array({{{"text", token}}}), nullptr, 0));
}

std::string StreamEnd(const AnswerFacts& facts, const std::string& text,
                      absl::string_view finish_reason, int completion_tokens) {
  json parts = facts.tool_call.empty() ? json::array({{{"text", ""}}})
                                       : json::array({CallPart(facts, text)});
  return Data(Response(facts, std::move(parts), FinishReason(finish_reason), completion_tokens));
}

std::string Whole(const AnswerFacts& facts, const std::string& text,
                  absl::string_view finish_reason, int completion_tokens) {
  json parts = facts.tool_call.empty() ? json::array({{{"text", text}}})
                                       : json::array({CallPart(facts, text)});
  if (facts.reasoning_tokens > 0 && facts.reasoning_text) {
    parts.insert(parts.begin(),
                 {{"text", ThinkingText(facts.reasoning_tokens)}, {"thought", true}});
  }
  return moa::json::Dump(
      Response(facts, std::move(parts), FinishReason(finish_reason), completion_tokens));
}

std::string ErrorBody(int code, absl::string_view status, absl::string_view message) {
  return moa::json::Dump({{"error", {{"code", code}, {"message", message}, {"status", status}}}});
}

}  // namespace moa::sim::gemini
