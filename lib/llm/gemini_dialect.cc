#include "lib/llm/gemini_dialect.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/base/json.h"
#include "lib/base/redact.h"
#include "lib/base/status_macros.h"
#include "lib/llm/http_status.h"
#include "lib/llm/tool_text.h"

namespace moa::llm {
namespace {

using json = moa::json::Json;

absl::Status Unmappable(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("the Gemini API cannot take this request: ", what));
}

// The name of the call `id` answers: Gemini's functionResponse names the
// function, not the call.
const ToolCall* FindCall(const std::vector<Message>& conversation, const std::string& id) {
  for (const Message& m : conversation) {
    for (const ToolCall& c : m.tool_calls) {
      if (c.id == id) return &c;
    }
  }
  return nullptr;
}

absl::StatusOr<json> Parts(const std::vector<Message>& conversation, size_t index) {
  const Message& m = conversation[index];
  json parts = json::array();
  if (m.role == Role::kTool) {
    const ToolCall* call = FindCall(conversation, m.tool_call_id);
    if (call == nullptr) {
      return Unmappable(absl::StrCat("messages[", index,
                                     "] is the result of a tool call that is not in the "
                                     "conversation (Gemini names the function it answers)"));
    }
    // The response must be an object: a result that is one goes as it is.
    absl::StatusOr<json> object = moa::json::Parse(m.content, 64);
    json response =
        object.ok() && object->is_object() ? *std::move(object) : json{{"result", m.content}};
    parts.push_back(
        {{"functionResponse", {{"name", call->name}, {"response", std::move(response)}}}});
    return parts;
  }
  if (!m.content.empty()) parts.push_back({{"text", m.content}});
  for (size_t j = 0; j < m.images.size(); ++j) {
    std::optional<DataUrl> data = ParseDataUrl(m.images[j].url);
    if (!data) {
      return Unmappable(absl::StrCat("messages[", index, "].images[", j,
                                     "] is no data: URL (this cluster sends Gemini images inline "
                                     "and fetches nothing)"));
    }
    parts.push_back(
        {{"inlineData", {{"mimeType", data->media_type}, {"data", std::move(data->base64)}}}});
  }
  for (size_t j = 0; j < m.tool_calls.size(); ++j) {
    const ToolCall& c = m.tool_calls[j];
    absl::StatusOr<json> args =
        moa::json::Parse(c.arguments.empty() ? absl::string_view("{}") : c.arguments, 64);
    if (!args.ok() || !args->is_object()) {
      return Unmappable(
          absl::StrCat("messages[", index, "].tool_calls[", j, "].arguments is not a JSON object"));
    }
    parts.push_back({{"functionCall", {{"name", c.name}, {"args", *std::move(args)}}}});
  }
  return parts;
}

absl::Status AddTools(const ToolOptions& options, json* body) {
  if (options.parallel_tool_calls && !*options.parallel_tool_calls) {
    return Unmappable("it has no way to forbid parallel tool calls (parallel_tool_calls: false)");
  }
  json declarations = json::array();
  for (const Tool& t : options.tools) {
    json d = {{"name", t.name}};
    if (!t.description.empty()) d["description"] = t.description;
    if (!t.parameters_json.empty()) {
      absl::StatusOr<json> schema = moa::json::Parse(t.parameters_json, 64);
      // JSON Schema as the client wrote it (Gemini's `parameters` takes
      // only an OpenAPI subset).
      if (schema.ok()) d["parametersJsonSchema"] = *std::move(schema);
    }
    declarations.push_back(std::move(d));
  }
  (*body)["tools"] = json::array({{{"functionDeclarations", std::move(declarations)}}});
  json config;
  if (!options.choice_function.empty()) {
    config = {{"mode", "ANY"}, {"allowedFunctionNames", {options.choice_function}}};
  } else if (options.choice == "required") {
    config = {{"mode", "ANY"}};
  } else if (options.choice == "none") {
    config = {{"mode", "NONE"}};
  } else if (options.choice == "auto") {
    config = {{"mode", "AUTO"}};
  }
  if (!config.is_null()) (*body)["toolConfig"] = {{"functionCallingConfig", std::move(config)}};
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> BuildGeminiBody(const ChatRequest& request,
                                            const ReasoningSettings& reasoning) {
  const SamplingParams& p = request.params;
  if (p.stop.size() > kGeminiMaxStopSequences) {
    return Unmappable(absl::StrCat("it takes at most ", kGeminiMaxStopSequences,
                                   " stop sequences, not ", p.stop.size()));
  }
  if (p.seed && (*p.seed < std::numeric_limits<int32_t>::min() ||
                 *p.seed > std::numeric_limits<int32_t>::max())) {
    return Unmappable("its seed is a 32-bit integer");
  }
  const bool tools = !request.tools.empty();
  const std::vector<Message> conversation = tools || !HasToolTurns(request.messages)
                                                ? request.messages
                                                : ToolTurnsAsText(request.messages);
  std::string system;
  json contents = json::array();
  std::string last_role;
  for (size_t i = 0; i < conversation.size(); ++i) {
    const Message& m = conversation[i];
    if (m.role == Role::kSystem) {
      if (!system.empty()) system += "\n\n";
      system += m.content;
      continue;
    }
    absl::StatusOr<json> parts = Parts(conversation, i);
    if (!parts.ok()) return parts.status();
    if (parts->empty()) continue;  // An empty turn says nothing (and the API refuses it).
    // Consecutive turns of one role become one (tool results are user turns).
    const std::string role = m.role == Role::kAssistant ? "model" : "user";
    if (role == last_role) {
      for (json& part : *parts) contents.back()["parts"].push_back(std::move(part));
    } else {
      contents.push_back({{"role", role}, {"parts", *std::move(parts)}});
      last_role = role;
    }
  }
  json body = {{"contents", std::move(contents)}};
  if (!system.empty()) body["systemInstruction"] = {{"parts", {{{"text", system}}}}};
  if (tools) {
    if (absl::Status s = AddTools(request.tools, &body); !s.ok()) return s;
  }
  json config = json::object();
  if (p.temperature) config["temperature"] = *p.temperature;
  if (p.top_p) config["topP"] = *p.top_p;
  if (p.max_tokens) config["maxOutputTokens"] = *p.max_tokens;
  if (p.seed) config["seed"] = *p.seed;
  if (!p.stop.empty()) config["stopSequences"] = p.stop;
  json thinking = json::object();
  if (reasoning.budget_tokens) thinking["thinkingBudget"] = *reasoning.budget_tokens;
  if (reasoning.include_text) thinking["includeThoughts"] = true;  // Else no thought parts come.
  if (!thinking.empty()) config["thinkingConfig"] = std::move(thinking);
  if (!config.empty()) body["generationConfig"] = std::move(config);
  return moa::json::Dump(body);
}

namespace {

absl::Status Malformed(absl::string_view what) {
  return absl::InternalError(absl::StrCat("upstream sent a malformed Gemini stream event: ", what));
}

// A finishReason in OpenAI's words; an unknown one lower-cased (a short
// upper-case token), anything else malformed.
absl::StatusOr<std::string> FinishReason(const std::string& reason) {
  if (reason == "STOP" || reason == "OTHER" || reason == "FINISH_REASON_UNSPECIFIED") return "stop";
  if (reason == "MAX_TOKENS") return "length";
  for (const char* filtered : {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                               "IMAGE_SAFETY", "LANGUAGE"}) {
    if (reason == filtered) return "content_filter";
  }
  const bool token = !reason.empty() && reason.size() <= 32 &&
                     std::all_of(reason.begin(), reason.end(), [](char c) {
                       return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
                     });
  if (!token) return Malformed("finishReason is not a short upper-case token");
  return absl::AsciiStrToLower(reason);
}

absl::Status ErrorStatus(const json& error) {
  std::string message = "upstream reported an error";
  if (auto m = moa::json::OptionalString(error, "message", "message"); m.ok() && *m) {
    message = SanitizePeerText(**m);
  }
  if (auto code = moa::json::OptionalInt(error, "code", "code", 400, 599); code.ok() && *code) {
    return StatusFromHttp(static_cast<int>(**code), message);
  }
  return absl::UnavailableError(absl::StrCat("upstream error mid-stream: ", message));
}

class GeminiStreamReader : public StreamReader {
 public:
  absl::StatusOr<StreamChunk> Read(const SseEvent& event) override {
    absl::StatusOr<json> parsed = moa::json::Parse(event.data, kMaxEventDepth);
    if (!parsed.ok()) return Malformed(parsed.status().message());
    const json& j = *parsed;
    if (!j.is_object()) return Malformed("not a JSON object");
    StreamChunk chunk;
    if (const json* error = moa::json::Member(j, "error")) {
      chunk.error = ErrorStatus(*error);
      return chunk;
    }
    const json* candidates = moa::json::Member(j, "candidates");
    if (candidates != nullptr && (!candidates->is_array()))
      return Malformed("candidates is not a list");
    if (candidates != nullptr && !candidates->empty()) {
      const json& c = (*candidates)[0];
      if (!c.is_object()) return Malformed("candidate is not an object");
      if (const json* content = moa::json::Member(c, "content")) {
        const json* parts = moa::json::Member(*content, "parts");
        if (parts != nullptr && !parts->is_array()) return Malformed("parts is not a list");
        if (parts != nullptr) {
          for (const json& part : *parts) {
            if (absl::Status s = ReadPart(part, &chunk); !s.ok()) return s;
          }
        }
      }
      auto reason = moa::json::OptionalString(c, "finishReason", "finishReason");
      if (!reason.ok()) return Malformed(reason.status().message());
      if (*reason) {
        if (**reason == "MALFORMED_FUNCTION_CALL" || **reason == "UNEXPECTED_TOOL_CALL") {
          chunk.error = absl::UnavailableError(
              absl::StrCat("the model wrote a tool call Gemini could not read (", **reason, ")"));
          return chunk;
        }
        MOA_ASSIGN_OR_RETURN(std::string finish, FinishReason(**reason));
        chunk.finish_reason = std::move(finish);
      }
    } else if (const json* feedback = moa::json::Member(j, "promptFeedback")) {
      auto blocked =
          moa::json::OptionalString(*feedback, "blockReason", "promptFeedback.blockReason");
      if (blocked.ok() && *blocked) {
        chunk.error = absl::FailedPreconditionError(absl::StrCat(
            "Gemini refused the prompt (blockReason ", SanitizePeerText(**blocked, "", 40), ")"));
        return chunk;
      }
    }
    if (const json* u = moa::json::Member(j, "usageMetadata")) {
      if (!u->is_object()) return Malformed("usageMetadata is not an object");
      constexpr int64_t kMax = int64_t{1} << 40;
      auto prompt = moa::json::OptionalInt(*u, "promptTokenCount", "promptTokenCount", 0, kMax);
      auto output =
          moa::json::OptionalInt(*u, "candidatesTokenCount", "candidatesTokenCount", 0, kMax);
      auto thoughts =
          moa::json::OptionalInt(*u, "thoughtsTokenCount", "thoughtsTokenCount", 0, kMax);
      for (const auto* field : {&prompt, &output, &thoughts}) {
        if (!field->ok()) return Malformed(field->status().message());
      }
      Usage usage;
      usage.prompt_tokens = prompt->value_or(0);
      // Thinking is billed as output: completion tokens include it, as
      // OpenAI's do.
      usage.reasoning_tokens = thoughts->value_or(0);
      usage.completion_tokens = output->value_or(0) + usage.reasoning_tokens;
      chunk.usage = usage;
    }
    return chunk;
  }

 private:
  absl::Status ReadPart(const json& part, StreamChunk* chunk) {
    if (!part.is_object()) return Malformed("part is not an object");
    auto text = moa::json::OptionalString(part, "text", "part.text");
    auto thought = moa::json::OptionalBool(part, "thought", "part.thought");
    if (!text.ok()) return Malformed(text.status().message());
    if (!thought.ok()) return Malformed(thought.status().message());
    if (*text) {
      (thought->value_or(false) ? chunk->reasoning : chunk->delta) += **text;
    }
    if (const json* call = moa::json::Member(part, "functionCall")) {
      if (calls_ >= kMaxToolCallIndex)
        return Malformed(absl::StrCat("over ", kMaxToolCallIndex, " function calls"));
      auto name = moa::json::OptionalString(*call, "name", "functionCall.name");
      auto id = moa::json::OptionalString(*call, "id", "functionCall.id");
      if (!call->is_object() || !name.ok() || !id.ok())
        return Malformed("functionCall is malformed");
      ToolCallFragment f;
      f.index = calls_++;
      if (*name) f.name = **name;
      if (*id) f.id = **id;
      const json* args = moa::json::Member(*call, "args");
      if (args != nullptr && !args->is_object())
        return Malformed("functionCall.args is not an object");
      f.arguments = args != nullptr ? moa::json::Dump(*args) : "{}";
      chunk->tool_calls.push_back(std::move(f));
    }
    // inlineData, executableCode and other parts carry nothing the cluster
    // reads from a text model.
    return absl::OkStatus();
  }

  int calls_ = 0;
};

}  // namespace

std::unique_ptr<StreamReader> NewGeminiStreamReader() {
  return std::make_unique<GeminiStreamReader>();
}

}  // namespace moa::llm
