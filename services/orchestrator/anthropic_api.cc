#include "services/orchestrator/anthropic_api.h"

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/base/json.h"
#include "lib/base/random_id.h"
#include "services/orchestrator/openai_api.h"
#include "services/orchestrator/request_fields.h"

namespace moa::orchestrator::anthropic {

using json = moa::json::Json;

namespace {

// The Messages fields (request_fields.h).
bool ThinkingOff(const json& v, const json&) {
  const json* type = moa::json::Member(v, "type");
  return v.is_object() && v.size() == 1 && type != nullptr && *type == "disabled";
}
bool AnyTier(const json& v, const json&) { return v == "auto" || v == "standard_only"; }

constexpr char kReasoning[] =
    "is not supported: reasoning settings are each model's, in the cluster config";

const FieldRule kMessagesFields[] = {
    {"model", nullptr, ""},
    {"max_tokens", nullptr, ""},
    {"messages", nullptr, ""},
    {"system", nullptr, ""},
    {"stop_sequences", nullptr, ""},
    {"temperature", nullptr, ""},
    {"top_p", nullptr, ""},
    {"stream", nullptr, ""},
    {"tools", nullptr, ""},
    {"tool_choice", nullptr, ""},
    {"metadata", nullptr, ""},
    {"top_k", Never, "is not supported: the models are not sent top_k"},
    {"thinking", ThinkingOff, kReasoning},
    {"service_tier", AnyTier, "must be \"auto\" or \"standard_only\""},
    {"container", Never, "is not supported: this server runs no code"},
    {"mcp_servers", Never, "is not supported: the client runs its tools"},
    {"context_management", Never, "is not supported: the client sends the whole conversation"},
};

// cache_control is a caching hint: this server caches nothing, and the
// answer is the same either way, so it is accepted (docs/http-api.md says so).
bool TextBlock(const json& block, const std::string& path, std::string* text, HttpError* error) {
  if (!OnlyKnownKeys(block, {"type", "text", "cache_control", "citations"}, path + ".", error)) {
    return false;
  }
  if (const json* citations = moa::json::Member(block, "citations");
      citations != nullptr && !(citations->is_array() && citations->empty())) {
    *error = BadField(path + ".citations", "is not supported: the answer is written anew");
    return false;
  }
  auto t = moa::json::OptionalString(block, "text", path + ".text");
  if (!t.ok() || !*t) {
    *error = BadField(path + ".text", "is required and must be a string");
    return false;
  }
  *text += **t;
  return true;
}

// Text, or a list of text blocks (system, a tool result's content).
bool TextOrTextBlocks(const json& value, const std::string& path, std::string* text,
                      HttpError* error) {
  if (value.is_string()) {
    *text = value.get_ref<const std::string&>();
    return true;
  }
  if (!value.is_array()) {
    *error = BadField(path, "must be a string or a list of text blocks");
    return false;
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string where = absl::StrCat(path, "[", i, "]");
    const json& block = value[i];
    auto type = moa::json::OptionalString(block, "type", where + ".type");
    if (!block.is_object() || !type.ok() || !*type || **type != "text") {
      *error = BadField(where + ".type", "must be \"text\" (other blocks are not supported here)");
      return false;
    }
    if (!TextBlock(block, where, text, error)) return false;
  }
  return true;
}

const char* BlockRefusal(absl::string_view type) {
  if (type == "document" || type == "search_result") {
    return "is not supported: this server reads text and images";
  }
  if (type == "thinking" || type == "redacted_thinking") {
    return "is not supported: reasoning is each model's, and no thinking is sent back";
  }
  return "is not a content block this server reads (text, tool_use, tool_result)";
}

bool ParseMessage(const json& m, size_t index, v1::ChatRequest* chat, HttpError* error) {
  const std::string where = absl::StrCat("messages[", index, "]");
  if (!m.is_object()) {
    *error = BadField(where, "must be an object");
    return false;
  }
  if (!OnlyKnownKeys(m, {"role", "content"}, where + ".", error)) return false;
  auto role = moa::json::OptionalString(m, "role", where + ".role");
  if (!role.ok() || !*role || (**role != "user" && **role != "assistant")) {
    *error =
        BadField(where + ".role", "must be \"user\" or \"assistant\" (system is its own field)");
    return false;
  }
  const bool user = **role == "user";
  const json* content = moa::json::Member(m, "content");
  if (content == nullptr) {
    *error = BadField(where + ".content", "is required");
    return false;
  }
  v1::ChatMessage turn;
  turn.set_role(user ? v1::ROLE_USER : v1::ROLE_ASSISTANT);
  if (content->is_string()) {
    turn.set_content(content->get_ref<const std::string&>());
    *chat->add_messages() = std::move(turn);
    return true;
  }
  if (!content->is_array()) {
    *error = BadField(where + ".content", "must be a string or a list of content blocks");
    return false;
  }
  std::string text;
  for (size_t k = 0; k < content->size(); ++k) {
    const json& block = (*content)[k];
    const std::string path = absl::StrCat(where, ".content[", k, "]");
    auto type = moa::json::OptionalString(block, "type", path + ".type");
    if (!block.is_object() || !type.ok() || !*type) {
      *error = BadField(path + ".type", "is required: each block is an object with a type");
      return false;
    }
    if (**type == "text") {
      if (!TextBlock(block, path, &text, error)) return false;
    } else if (**type == "image") {
      // base64 data becomes a data: URL; a url source is passed as it is.
      if (!OnlyKnownKeys(block, {"type", "source", "cache_control"}, path + ".", error)) {
        return false;
      }
      const json* source = moa::json::Member(block, "source");
      auto kind = source == nullptr
                      ? absl::StatusOr<std::optional<std::string>>(std::nullopt)
                      : moa::json::OptionalString(*source, "type", path + ".source.type");
      if (!kind.ok() || !*kind || (**kind != "base64" && **kind != "url")) {
        *error = BadField(path + ".source.type", "must be \"base64\" or \"url\"");
        return false;
      }
      v1::Image* image = turn.add_images();
      if (**kind == "url") {
        auto url = moa::json::OptionalString(*source, "url", path + ".source.url");
        if (!url.ok() || !*url ||
            !OnlyKnownKeys(*source, {"type", "url"}, path + ".source.", error)) {
          if (error->message.empty()) *error = BadField(path + ".source.url", "is required");
          return false;
        }
        image->set_url(**url);
      } else {
        auto media = moa::json::OptionalString(*source, "media_type", path + ".source.media_type");
        auto data = moa::json::OptionalString(*source, "data", path + ".source.data");
        if (!media.ok() || !*media || !data.ok() || !*data ||
            !OnlyKnownKeys(*source, {"type", "media_type", "data"}, path + ".source.", error)) {
          if (error->message.empty()) {
            *error = BadField(path + ".source", "needs a string media_type and data");
          }
          return false;
        }
        image->set_url(absl::StrCat("data:", **media, ";base64,", **data));
      }
    } else if (**type == "tool_use" && !user) {
      if (!OnlyKnownKeys(block, {"type", "id", "name", "input", "cache_control"}, path + ".",
                         error)) {
        return false;
      }
      auto id = moa::json::OptionalString(block, "id", path + ".id");
      auto name = moa::json::OptionalString(block, "name", path + ".name");
      const json* input = moa::json::Member(block, "input");
      if (!id.ok() || !*id || !name.ok() || !*name || input == nullptr || !input->is_object()) {
        *error = BadField(path, "needs a string id, a string name and an input object");
        return false;
      }
      v1::ToolCall* call = turn.add_tool_calls();
      call->set_id(**id);
      call->set_name(**name);
      call->set_arguments(moa::json::Dump(*input));
    } else if (**type == "tool_result" && user) {
      if (!OnlyKnownKeys(block, {"type", "tool_use_id", "content", "is_error", "cache_control"},
                         path + ".", error)) {
        return false;
      }
      auto id = moa::json::OptionalString(block, "tool_use_id", path + ".tool_use_id");
      auto is_error = moa::json::OptionalBool(block, "is_error", path + ".is_error");
      if (!id.ok() || !*id || !is_error.ok()) {
        *error = BadField(path, "needs a string tool_use_id (and a boolean is_error)");
        return false;
      }
      std::string result;
      if (const json* c = moa::json::Member(block, "content")) {
        if (!TextOrTextBlocks(*c, path + ".content", &result, error)) return false;
      }
      // A result the tool reported as an error says so in words: the
      // chat-completions form the models are sent has no such flag.
      if (is_error->value_or(false)) result = absl::StrCat("[tool error] ", result);
      v1::ChatMessage* tool = chat->add_messages();
      tool->set_role(v1::ROLE_TOOL);
      tool->set_tool_call_id(**id);
      tool->set_content(std::move(result));
    } else if (**type == "tool_use" || **type == "tool_result") {
      *error = BadField(path + ".type",
                        absl::StrCat("'", **type, "' goes in ",
                                     **type == "tool_use" ? "an assistant" : "a user", " message"));
      return false;
    } else {
      *error = BadField(path + ".type",
                        absl::StrCat("'", (*type)->substr(0, 64), "' ", BlockRefusal(**type)));
      return false;
    }
  }
  // A user turn of tool results alone is those results; text after them is
  // a user message of its own.
  if (user && text.empty() && turn.images_size() == 0 && content->size() > 0 &&
      chat->messages_size() > 0 &&
      chat->messages(chat->messages_size() - 1).role() == v1::ROLE_TOOL) {
    return true;
  }
  turn.set_content(std::move(text));
  *chat->add_messages() = std::move(turn);
  return true;
}

bool ParseTools(const json& request, v1::ToolOptions* out, HttpError* error) {
  if (const json* tools = moa::json::Member(request, "tools")) {
    if (!tools->is_array()) {
      *error = BadField("tools", "must be a list");
      return false;
    }
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& tool = (*tools)[i];
      const std::string where = absl::StrCat("tools[", i, "]");
      if (!tool.is_object()) {
        *error = BadField(where, "must be an object");
        return false;
      }
      auto type = moa::json::OptionalString(tool, "type", where + ".type");
      if (!type.ok() || (*type && **type != "custom")) {
        *error = BadField(where + ".type",
                          "is not supported: only client tools (custom) are; server tools run at "
                          "Anthropic");
        return false;
      }
      if (!OnlyKnownKeys(tool, {"type", "name", "description", "input_schema", "cache_control"},
                         where + ".", error)) {
        return false;
      }
      auto name = moa::json::OptionalString(tool, "name", where + ".name");
      auto description = moa::json::OptionalString(tool, "description", where + ".description");
      const json* schema = moa::json::Member(tool, "input_schema");
      if (!name.ok() || !*name || !description.ok() || schema == nullptr || !schema->is_object()) {
        *error = BadField(where, "needs a string name and an input_schema object");
        return false;
      }
      v1::Tool* t = out->add_tools();
      t->set_name(**name);
      t->set_description(description->value_or(""));
      t->set_parameters_json(moa::json::Dump(*schema));
    }
  }
  if (const json* choice = moa::json::Member(request, "tool_choice")) {
    auto type = moa::json::OptionalString(*choice, "type", "tool_choice.type");
    auto parallel = moa::json::OptionalBool(*choice, "disable_parallel_tool_use",
                                            "tool_choice.disable_parallel_tool_use");
    if (!choice->is_object() || !type.ok() || !*type || !parallel.ok()) {
      *error = BadField("tool_choice", "must be an object with a type (auto, any, tool, none)");
      return false;
    }
    if (!OnlyKnownKeys(*choice, {"type", "name", "disable_parallel_tool_use"}, "tool_choice.",
                       error)) {
      return false;
    }
    if (**type == "auto") {
      out->set_choice("auto");
    } else if (**type == "any") {
      out->set_choice("required");
    } else if (**type == "none") {
      out->set_choice("none");
    } else if (**type == "tool") {
      auto name = moa::json::OptionalString(*choice, "name", "tool_choice.name");
      if (!name.ok() || !*name) {
        *error = BadField("tool_choice.name", "is required with type \"tool\"");
        return false;
      }
      out->set_choice_function(**name);
    } else {
      *error = BadField("tool_choice.type", "must be auto, any, tool or none");
      return false;
    }
    if (*parallel) out->set_parallel_tool_calls(!**parallel);
    if (out->tools_size() == 0 && **type == "none") out->clear_choice();
  }
  return true;
}

}  // namespace

std::vector<std::string> KnownMessagesFields() { return FieldNames(kMessagesFields); }

absl::StatusOr<ParsedRequest> ParseMessagesRequest(absl::string_view body, HttpError* error) {
  auto fail = [error](HttpError e) {
    *error = std::move(e);
    return absl::InvalidArgumentError(error->message);
  };
  auto failed = [error]() { return absl::InvalidArgumentError(error->message); };
  absl::StatusOr<json> parsed = ParseBodyObject(body, error);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  if (!CheckFields(j, kMessagesFields, "the Messages API", error)) return failed();
  ParsedRequest out;
  v1::ChatRequest& chat = out.chat;
  auto model = moa::json::OptionalString(j, "model", "model");
  if (!model.ok() || !*model) {
    return fail(BadField("model", "is required and must be a string (a pipeline name)"));
  }
  chat.set_pipeline(**model);
  auto max_tokens =
      moa::json::OptionalInt(j, "max_tokens", "max_tokens", 1, std::numeric_limits<int32_t>::max());
  if (!max_tokens.ok() || !*max_tokens) {
    return fail(BadField("max_tokens", "is required and must be an integer >= 1"));
  }
  chat.mutable_params()->set_max_tokens(static_cast<int32_t>(**max_tokens));
  if (const json* system = moa::json::Member(j, "system")) {
    std::string text;
    if (!TextOrTextBlocks(*system, "system", &text, error)) return failed();
    if (!text.empty()) {
      v1::ChatMessage* m = chat.add_messages();
      m->set_role(v1::ROLE_SYSTEM);
      m->set_content(std::move(text));
    }
  }
  const json* messages = moa::json::Member(j, "messages");
  if (messages == nullptr || !messages->is_array()) {
    return fail(BadField("messages", "is required and must be a list"));
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    if (!ParseMessage((*messages)[i], i, &chat, error)) return failed();
  }
  for (const char* key : {"temperature", "top_p"}) {
    auto v = moa::json::OptionalNumber(j, key, key);
    if (!v.ok()) return fail(BadField(key, "must be a number"));
    if (!*v) continue;
    // Anthropic's temperature is [0, 1]; the engine checks the range it
    // passes on.
    if (std::string(key) == "temperature") {
      chat.mutable_params()->set_temperature(**v);
    } else {
      chat.mutable_params()->set_top_p(**v);
    }
  }
  if (const json* stop = moa::json::Member(j, "stop_sequences")) {
    if (!stop->is_array() || stop->size() > 4) {
      return fail(BadField("stop_sequences", "must be a list of at most 4 strings"));
    }
    for (const json& s : *stop) {
      if (!s.is_string()) return fail(BadField("stop_sequences", "must be a list of strings"));
      chat.mutable_params()->add_stop(s.get_ref<const std::string&>());
    }
  }
  auto stream = moa::json::OptionalBool(j, "stream", "stream");
  if (!stream.ok()) return fail(BadField("stream", "must be true or false"));
  out.stream = stream->value_or(false);
  if (const json* metadata = moa::json::Member(j, "metadata")) {
    if (!metadata->is_object()) return fail(BadField("metadata", "must be an object"));
    if (!OnlyKnownKeys(*metadata, {"user_id"}, "metadata.", error)) return failed();
    auto user = moa::json::OptionalString(*metadata, "user_id", "metadata.user_id");
    if (!user.ok() || (*user && (*user)->size() > 256)) {
      return fail(BadField("metadata.user_id", "must be a string of at most 256 bytes"));
    }
    if (*user) out.end_user = **user;
  }
  if (!ParseTools(j, chat.mutable_tools(), error)) return failed();
  return out;
}

std::string ErrorJson(const HttpError& e) {
  const char* type = "api_error";
  switch (e.status) {
    case 400:
    case 405:
    case 408:
    case 431:
      type = "invalid_request_error";
      break;
    case 401:
      type = "authentication_error";
      break;
    case 403:
      type = "permission_error";
      break;
    case 404:
      type = "not_found_error";
      break;
    case 413:
      type = "request_too_large";
      break;
    case 429:
      type = "rate_limit_error";
      break;
    case 503:
      type = "overloaded_error";
      break;
    case 504:
      type = "timeout_error";
      break;
    default:
      break;
  }
  return moa::json::Dump(
      json{{"type", "error"}, {"error", {{"type", type}, {"message", e.message}}}});
}

namespace {

std::string StopReason(const std::string& finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls") return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  return "end_turn";
}

std::string Sse(absl::string_view name, const json& data) {
  return absl::StrCat("event: ", name, "\ndata: ", moa::json::Dump(data), "\n\n");
}

// A tool call's arguments as the input object Anthropic's clients expect;
// an upstream that wrote something else fails the request by name.
absl::StatusOr<json> ToolInput(const v1::ToolCall& call) {
  absl::StatusOr<json> input = moa::json::Parse(call.arguments());
  if (!input.ok() || !input->is_object()) {
    return absl::InternalError(absl::StrCat("the final answer's call of tool ", call.name(),
                                            " has arguments that are not a JSON object (",
                                            call.arguments().size(), " bytes)"));
  }
  return input;
}

// A Message, or its stream: message_start, a text block as the answer
// streams, one tool_use block per call (its input in one
// input_json_delta), message_delta with the stop reason and usage,
// message_stop.
class MessageWriter final : public ResponseWriter {
 public:
  MessageWriter(std::string model) : model_(std::move(model)), id_(NewId("msg_moa_")) {}

  std::string Head() override {
    return Sse("message_start", {{"type", "message_start"},
                                 {"message",
                                  {{"id", id_},
                                   {"type", "message"},
                                   {"role", "assistant"},
                                   {"model", model_},
                                   {"content", json::array()},
                                   {"stop_reason", nullptr},
                                   {"stop_sequence", nullptr},
                                   {"usage", {{"input_tokens", 0}, {"output_tokens", 0}}}}}});
  }

  std::string Event(const v1::ChatEvent& event) override {
    record_.Add(event);
    if (failed_) return "";
    std::string out;
    if (event.has_answer_delta()) {
      answer_ += event.answer_delta();
      if (!text_open_) {
        text_open_ = true;
        out += Sse("content_block_start", {{"type", "content_block_start"},
                                           {"index", blocks_},
                                           {"content_block", {{"type", "text"}, {"text", ""}}}});
      }
      out += Sse("content_block_delta",
                 {{"type", "content_block_delta"},
                  {"index", blocks_},
                  {"delta", {{"type", "text_delta"}, {"text", event.answer_delta()}}}});
    }
    if (event.has_answer_tool_calls()) {
      out += CloseText();
      for (const v1::ToolCall& call : event.answer_tool_calls().calls()) {
        absl::StatusOr<json> input = ToolInput(call);
        if (!input.ok()) {
          failed_ = true;
          return out + ErrorEvent(input.status());
        }
        out += Sse("content_block_start", {{"type", "content_block_start"},
                                           {"index", blocks_},
                                           {"content_block",
                                            {{"type", "tool_use"},
                                             {"id", call.id()},
                                             {"name", call.name()},
                                             {"input", json::object()}}}});
        out += Sse("content_block_delta",
                   {{"type", "content_block_delta"},
                    {"index", blocks_},
                    {"delta", {{"type", "input_json_delta"}, {"partial_json", Dump(*input)}}}});
        out += Sse("content_block_stop", {{"type", "content_block_stop"}, {"index", blocks_}});
        ++blocks_;
      }
    }
    return out;
  }

  std::string Tail(const absl::Status& status) override {
    if (failed_) return "";
    if (!status.ok()) return ErrorEvent(status);
    std::string out = CloseText();
    auto [input, output] = Usage();
    out +=
        Sse("message_delta",
            {{"type", "message_delta"},
             {"delta", {{"stop_reason", StopReason(FinishReason())}, {"stop_sequence", nullptr}}},
             {"usage", {{"input_tokens", input}, {"output_tokens", output}}}});
    out += Sse("message_stop", {{"type", "message_stop"}});
    return out;
  }

  absl::StatusOr<std::string> Body() override {
    json content = json::array();
    if (!answer_.empty() || record_.tool_calls.empty()) {
      content.push_back({{"type", "text"}, {"text", answer_}});
    }
    for (const v1::ToolCall& call : record_.tool_calls) {
      absl::StatusOr<json> input = ToolInput(call);
      if (!input.ok()) return input.status();
      content.push_back(
          {{"type", "tool_use"}, {"id", call.id()}, {"name", call.name()}, {"input", *input}});
    }
    auto [input, output] = Usage();
    return moa::json::Dump(json{{"id", id_},
                                {"type", "message"},
                                {"role", "assistant"},
                                {"model", model_},
                                {"content", std::move(content)},
                                {"stop_reason", StopReason(FinishReason())},
                                {"stop_sequence", nullptr},
                                {"usage", {{"input_tokens", input}, {"output_tokens", output}}},
                                {"moa", json::parse(openai::MoaExtensionJson(record_))}});
  }

 private:
  static std::string Dump(const json& j) { return moa::json::Dump(j); }

  std::string FinishReason() const {
    return record_.summary ? record_.summary->finish_reason() : "stop";
  }

  // Every call the request made, as the chat-completions door counts.
  std::pair<int64_t, int64_t> Usage() const {
    int64_t input = 0, output = 0;
    if (record_.summary) {
      for (const auto& u : record_.summary->usage()) {
        input += u.usage().prompt_tokens();
        output += u.usage().completion_tokens();
      }
    }
    return {input, output};
  }

  std::string CloseText() {
    if (!text_open_) return "";
    text_open_ = false;
    return Sse("content_block_stop", {{"type", "content_block_stop"}, {"index", blocks_++}});
  }

  static std::string ErrorEvent(const absl::Status& status) {
    return absl::StrCat("event: error\ndata: ", ErrorJson(ErrorFromStatus(status)), "\n\n");
  }

  const std::string model_;
  const std::string id_;
  openai::CallRecord record_;
  std::string answer_;
  bool text_open_ = false;
  int blocks_ = 0;  // Content blocks begun (the open text block's index while it is open).
  bool failed_ = false;
};

class Messages final : public ApiSurface {
 public:
  absl::string_view path() const override { return "/v1/messages"; }
  absl::StatusOr<ParsedRequest> Parse(absl::string_view body, HttpError* error) const override {
    return ParseMessagesRequest(body, error);
  }
  std::string ErrorJson(const HttpError& error) const override {
    return anthropic::ErrorJson(error);
  }
  std::unique_ptr<ResponseWriter> NewWriter(const ParsedRequest&, std::string model,
                                            int64_t) const override {
    return std::make_unique<MessageWriter>(std::move(model));
  }
};

}  // namespace

const ApiSurface& MessagesSurface() {
  static const Messages surface;
  return surface;
}

}  // namespace moa::orchestrator::anthropic
