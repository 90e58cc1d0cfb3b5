#include "tools/upstream-sim/sim_request.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moa::sim {

using json = moa::json::Json;

absl::StatusOr<ChatRequestInfo> ParseChat(absl::string_view body) {
  absl::StatusOr<json> parsed = moa::json::Parse(body);
  if (!parsed.ok()) return parsed.status();
  json& j = *parsed;
  if (!j.is_object()) return absl::InvalidArgumentError("request body is not a JSON object");
  ChatRequestInfo info;
  auto model = moa::json::OptionalString(j, "model", "model");
  if (!model.ok() || !*model) return absl::InvalidArgumentError("'model' is required");
  info.model = **model;
  const json* messages = moa::json::Member(j, "messages");
  if (messages == nullptr || !messages->is_array() || messages->empty()) {
    return absl::InvalidArgumentError("'messages' must be a non-empty array");
  }
  for (const json& m : *messages) {
    auto role = moa::json::OptionalString(m, "role", "role");
    if (!m.is_object() || !role.ok() || !*role) {
      return absl::InvalidArgumentError("each message needs a string 'role'");
    }
    SimMessage sm{**role, ""};
    if (const json* c = moa::json::Member(m, "content")) {
      if (c->is_string()) {
        sm.content = c->get_ref<const std::string&>();
      } else if (c->is_array()) {
        for (const json& part : *c) {
          auto type = moa::json::OptionalString(part, "type", "type");
          auto text = moa::json::OptionalString(part, "text", "text");
          if (type.ok() && *type == "text" && text.ok() && *text) sm.content += **text;
        }
      }
    }
    info.messages.push_back(std::move(sm));
  }
  auto stream = moa::json::OptionalBool(j, "stream", "stream");
  if (!stream.ok()) return stream.status();
  info.stream = stream->value_or(false);
  if (const json* so = moa::json::Member(j, "stream_options")) {
    auto usage = moa::json::OptionalBool(*so, "include_usage", "stream_options.include_usage");
    if (!usage.ok()) return usage.status();
    info.include_usage = info.stream && usage->value_or(false);
  }
  for (const char* field : {"max_tokens", "max_completion_tokens"}) {
    auto n = moa::json::OptionalInt(j, field, absl::StrCat("'", field, "'"),
                                    std::numeric_limits<int64_t>::min());
    if (!n.ok()) continue;  // Other types are ignored, as before.
    if (*n && **n < 1)
      return absl::InvalidArgumentError(absl::StrCat("'", field, "' must be >= 1"));
    if (*n) info.max_tokens = **n;
  }
  if (const json* tools = moa::json::Member(j, "tools")) {
    if (!tools->is_array()) return absl::InvalidArgumentError("'tools' must be a list");
    for (const json& t : *tools) {
      const json* function = moa::json::Member(t, "function");
      auto name = function == nullptr ? absl::StatusOr<std::optional<std::string>>(std::nullopt)
                                      : moa::json::OptionalString(*function, "name", "name");
      if (!name.ok() || !*name) {
        return absl::InvalidArgumentError("each tool needs a string 'function.name'");
      }
      info.tool_names.push_back(**name);
    }
  }
  if (const json* choice = moa::json::Member(j, "tool_choice")) {
    info.tool_choice_none = *choice == "none";
    if (const json* function = moa::json::Member(*choice, "function")) {
      auto name = moa::json::OptionalString(*function, "name", "tool_choice.function.name");
      if (!name.ok()) return name.status();
      if (*name) info.tool_choice_function = **name;
    }
  }
  if (const json* rf = moa::json::Member(j, "response_format")) info.response_format = *rf;
  info.wants_reasoning = moa::json::Member(j, "reasoning_effort") != nullptr;
  info.params = json::object();
  for (const char* key :
       {"temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop", "tools",
        "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort"}) {
    if (j.contains(key)) info.params[key] = j[key];
  }
  // Moved, not copied: the messages can be large (synthesis blocks).
  info.messages_json = std::move(j["messages"]);
  return info;
}

PlannedAnswer PlanAnswer(const ChatRequestInfo& info, int length, absl::string_view fixed,
                         const std::string* tool_arguments) {
  PlannedAnswer answer;
  const bool after_result = !info.messages.empty() && info.messages.back().role == "tool";
  if (tool_arguments != nullptr && !info.tool_names.empty() && !info.tool_choice_none &&
      !after_result) {
    answer.tool_call =
        info.tool_choice_function.empty() ? info.tool_names.front() : info.tool_choice_function;
    // The arguments in two pieces, as servers stream them.
    const size_t half = tool_arguments->size() / 2;
    answer.tokens = {tool_arguments->substr(0, half), tool_arguments->substr(half)};
    answer.prompt_tokens = PromptTokens(info.messages);
    return answer;
  }
  const Continuation continuation = FindContinuation(info.messages);
  answer.continuation = continuation.kind;
  auto tokens = [&](const std::vector<SimMessage>& messages) {
    if (fixed.empty()) return AnswerTokens(info.model, messages, length);
    // The fixed text's words, each with the space that followed it.
    std::vector<std::string> words;
    for (absl::string_view w : absl::StrSplit(fixed, ' ')) words.push_back(absl::StrCat(w, " "));
    words.back().pop_back();
    if (static_cast<int>(words.size()) > length) words.resize(static_cast<size_t>(length));
    return words;
  };
  if (continuation.kind != Continuation::Kind::kNone) {
    answer.tokens = TokensAfter(tokens(continuation.preceding), continuation.prefix);
  } else {
    answer.tokens = tokens(info.messages);
  }
  answer.prompt_tokens = PromptTokens(info.messages);
  return answer;
}

}  // namespace moa::sim
