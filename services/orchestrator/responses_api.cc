#include "services/orchestrator/responses_api.h"

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

namespace moa::orchestrator::responses {

using json = moa::json::Json;

namespace {

// The Responses fields (request_fields.h).
bool IsDisabled(const json& v, const json&) { return v == "disabled"; }
bool IsDefaultTier(const json& v, const json&) { return v == "auto" || v == "default"; }

constexpr char kStored[] =
    "is not supported: this server stores no responses; send the whole conversation as input";

const FieldRule kResponsesFields[] = {
    {"model", nullptr, ""},
    {"input", nullptr, ""},
    {"instructions", nullptr, ""},
    {"max_output_tokens", nullptr, ""},
    {"temperature", nullptr, ""},
    {"top_p", nullptr, ""},
    {"stream", nullptr, ""},
    {"stream_options", nullptr, ""},
    {"tools", nullptr, ""},
    {"tool_choice", nullptr, ""},
    {"parallel_tool_calls", nullptr, ""},
    {"text", nullptr, ""},
    {"user", nullptr, ""},
    {"safety_identifier", nullptr, ""},
    {"store", IsFalse, "must be false: this server stores no responses"},
    {"previous_response_id", Never, kStored},
    {"conversation", Never, kStored},
    {"background", IsFalse, "must be false: a response is answered while the client waits"},
    {"metadata", IsEmptyObject, "must be empty: it is for stored responses, and none are stored"},
    {"include", IsEmptyArray, "must be empty: nothing more than the answer is available"},
    {"truncation", IsDisabled, "must be \"disabled\": the conversation is sent as it is"},
    {"service_tier", IsDefaultTier, "must be \"auto\" or \"default\""},
    {"reasoning", Never,
     "is not supported: reasoning settings are each model's, in the cluster config"},
    {"prompt", Never, "is not supported: stored prompts are not kept here"},
    {"top_logprobs", Never,
     "is not supported: a MoA answer is a synthesis, not one model's sampled tokens"},
    {"max_tool_calls", Never, "is not supported: the client runs the tools and counts them"},
    {"prompt_cache_key", Never, "is not supported: this server caches no prompts"},
};

// A message item's content: text, or parts of type input_text /
// output_text (joined) and input_image (into `images`, when given).
bool ContentText(const json& content, const std::string& path, std::string* text, HttpError* error,
                 v1::ChatMessage* images = nullptr) {
  if (content.is_string()) {
    *text = content.get_ref<const std::string&>();
    return true;
  }
  if (!content.is_array()) {
    *error = BadField(path, "must be a string or a list of parts");
    return false;
  }
  for (size_t k = 0; k < content.size(); ++k) {
    const json& part = content[k];
    const std::string where = absl::StrCat(path, "[", k, "]");
    auto type = moa::json::OptionalString(part, "type", where + ".type");
    if (images != nullptr && type.ok() && *type && **type == "input_image") {
      if (!OnlyKnownKeys(part, {"type", "image_url", "detail"}, where + ".", error)) return false;
      auto url = moa::json::OptionalString(part, "image_url", where + ".image_url");
      auto detail = moa::json::OptionalString(part, "detail", where + ".detail");
      if (!url.ok() || !*url || !detail.ok()) {
        *error = BadField(where + ".image_url",
                          "is required: an image's URL (file_id needs stored files, which are not "
                          "kept here)");
        return false;
      }
      v1::Image* image = images->add_images();
      image->set_url(**url);
      image->set_detail(detail->value_or(""));
      continue;
    }
    if (!part.is_object() || !type.ok() || !*type ||
        (**type != "input_text" && **type != "output_text")) {
      *error = BadField(where + ".type",
                        "must be \"input_text\", \"output_text\" or \"input_image\" (files are not "
                        "supported)");
      return false;
    }
    if (!OnlyKnownKeys(part, {"type", "text", "annotations", "logprobs"}, where + ".", error)) {
      return false;
    }
    for (const char* echo : {"annotations", "logprobs"}) {
      const json* v = moa::json::Member(part, echo);
      if (v != nullptr && !(v->is_array() && v->empty())) {
        *error =
            BadField(absl::StrCat(where, ".", echo), "must be empty: the answer is written anew");
        return false;
      }
    }
    auto t = moa::json::OptionalString(part, "text", where + ".text");
    if (!t.ok() || !*t) {
      *error = BadField(where + ".text", "is required and must be a string");
      return false;
    }
    *text += **t;
  }
  return true;
}

bool ParseItem(const json& item, size_t index, v1::ChatRequest* chat, HttpError* error) {
  const std::string where = absl::StrCat("input[", index, "]");
  if (!item.is_object()) {
    *error = BadField(where, "must be an object");
    return false;
  }
  auto type = moa::json::OptionalString(item, "type", where + ".type");
  if (!type.ok()) {
    *error = BadField(where + ".type", "must be a string");
    return false;
  }
  const std::string kind = type->value_or("message");
  if (kind == "message") {
    if (!OnlyKnownKeys(item, {"type", "role", "content", "id", "status"}, where + ".", error)) {
      return false;
    }
    auto role = moa::json::OptionalString(item, "role", where + ".role");
    const json* content = moa::json::Member(item, "content");
    if (!role.ok() || !*role || content == nullptr) {
      *error = BadField(where, "needs a role and content");
      return false;
    }
    v1::ChatMessage* m = chat->add_messages();
    if (**role == "user") {
      m->set_role(v1::ROLE_USER);
    } else if (**role == "assistant") {
      m->set_role(v1::ROLE_ASSISTANT);
    } else if (**role == "system" || **role == "developer") {
      m->set_role(v1::ROLE_SYSTEM);
    } else {
      *error = BadField(where + ".role", "must be user, assistant, system or developer");
      return false;
    }
    std::string text;
    if (!ContentText(*content, where + ".content", &text, error, m)) return false;
    m->set_content(std::move(text));
    return true;
  }
  if (kind == "function_call") {
    if (!OnlyKnownKeys(item, {"type", "call_id", "name", "arguments", "id", "status"}, where + ".",
                       error)) {
      return false;
    }
    auto call_id = moa::json::OptionalString(item, "call_id", where + ".call_id");
    auto name = moa::json::OptionalString(item, "name", where + ".name");
    auto arguments = moa::json::OptionalString(item, "arguments", where + ".arguments");
    if (!call_id.ok() || !*call_id || !name.ok() || !*name || !arguments.ok()) {
      *error = BadField(where, "needs a string call_id, name and arguments");
      return false;
    }
    // Calls the model made together are one assistant turn.
    v1::ChatMessage* turn = nullptr;
    if (chat->messages_size() > 0) {
      v1::ChatMessage* last = chat->mutable_messages(chat->messages_size() - 1);
      if (last->role() == v1::ROLE_ASSISTANT && last->tool_calls_size() > 0) turn = last;
    }
    if (turn == nullptr) {
      turn = chat->add_messages();
      turn->set_role(v1::ROLE_ASSISTANT);
    }
    v1::ToolCall* call = turn->add_tool_calls();
    call->set_id(**call_id);
    call->set_name(**name);
    call->set_arguments(arguments->value_or("{}"));
    return true;
  }
  if (kind == "function_call_output") {
    if (!OnlyKnownKeys(item, {"type", "call_id", "output", "id", "status"}, where + ".", error)) {
      return false;
    }
    auto call_id = moa::json::OptionalString(item, "call_id", where + ".call_id");
    const json* output = moa::json::Member(item, "output");
    if (!call_id.ok() || !*call_id || output == nullptr) {
      *error = BadField(where, "needs a string call_id and an output");
      return false;
    }
    std::string text;
    if (!ContentText(*output, where + ".output", &text, error)) return false;
    v1::ChatMessage* m = chat->add_messages();
    m->set_role(v1::ROLE_TOOL);
    m->set_tool_call_id(**call_id);
    m->set_content(std::move(text));
    return true;
  }
  if (kind == "item_reference") {
    *error = BadField(where + ".type", absl::StrCat("'item_reference' ", kStored));
    return false;
  }
  *error = BadField(where + ".type",
                    absl::StrCat("'", kind.substr(0, 64),
                                 "' is not an item this server reads (message, function_call, "
                                 "function_call_output)"));
  return false;
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
      auto type = moa::json::OptionalString(tool, "type", where + ".type");
      if (!tool.is_object() || !type.ok() || !*type) {
        *error = BadField(where + ".type", "is required");
        return false;
      }
      if (**type != "function") {
        *error = BadField(where + ".type", absl::StrCat("'", (*type)->substr(0, 64),
                                                        "' is not supported: only function tools "
                                                        "are (the client runs them)"));
        return false;
      }
      if (!OnlyKnownKeys(tool, {"type", "name", "description", "parameters", "strict"}, where + ".",
                         error)) {
        return false;
      }
      auto name = moa::json::OptionalString(tool, "name", where + ".name");
      auto description = moa::json::OptionalString(tool, "description", where + ".description");
      auto strict = moa::json::OptionalBool(tool, "strict", where + ".strict");
      const json* parameters = moa::json::Member(tool, "parameters");
      if (!name.ok() || !*name || !description.ok() || !strict.ok() ||
          (parameters != nullptr && !parameters->is_object())) {
        *error = BadField(where,
                          "needs a string name (a string description, an object parameters, a "
                          "boolean strict)");
        return false;
      }
      v1::Tool* t = out->add_tools();
      t->set_name(**name);
      t->set_description(description->value_or(""));
      t->set_strict(strict->value_or(false));
      if (parameters != nullptr) t->set_parameters_json(moa::json::Dump(*parameters));
    }
  }
  if (const json* choice = moa::json::Member(request, "tool_choice")) {
    if (choice->is_string()) {
      out->set_choice(choice->get_ref<const std::string&>());
    } else {
      auto type = moa::json::OptionalString(*choice, "type", "tool_choice.type");
      auto name = moa::json::OptionalString(*choice, "name", "tool_choice.name");
      if (!choice->is_object() || !type.ok() || *type != "function" || !name.ok() || !*name ||
          !OnlyKnownKeys(*choice, {"type", "name"}, "tool_choice.", error)) {
        *error = BadField("tool_choice",
                          "must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                          "\"name\": ...}; hosted and allowed tools are not supported");
        return false;
      }
      out->set_choice_function(**name);
    }
  }
  auto parallel = moa::json::OptionalBool(request, "parallel_tool_calls", "parallel_tool_calls");
  if (!parallel.ok()) {
    *error = BadField("parallel_tool_calls", "must be true or false");
    return false;
  }
  if (*parallel && out->tools_size() > 0) out->set_parallel_tool_calls(**parallel);
  if (out->tools_size() == 0 && out->choice() == "none") out->clear_choice();
  return true;
}

bool ParseText(const json& request, v1::ChatRequest* chat, HttpError* error) {
  const json* text = moa::json::Member(request, "text");
  if (text == nullptr) return true;
  if (!text->is_object()) {
    *error = BadField("text", "must be an object");
    return false;
  }
  if (!OnlyKnownKeys(*text, {"format", "verbosity"}, "text.", error)) return false;
  if (const json* verbosity = moa::json::Member(*text, "verbosity")) {
    *error = BadField("text.verbosity", "is not supported: reasoning settings are each model's");
    (void)verbosity;
    return false;
  }
  const json* format = moa::json::Member(*text, "format");
  if (format == nullptr) return true;
  auto type = moa::json::OptionalString(*format, "type", "text.format.type");
  if (!format->is_object() || !type.ok() || !*type) {
    *error = BadField("text.format.type", "is required: text, json_object or json_schema");
    return false;
  }
  v1::ResponseFormat* out = chat->mutable_response_format();
  if (**type == "text" || **type == "json_object") {
    if (!OnlyKnownKeys(*format, {"type"}, "text.format.", error)) return false;
    if (**type == "json_object") out->set_type(v1::ResponseFormat::JSON_OBJECT);
    return true;
  }
  if (**type == "json_schema") {
    return openai::ReadJsonSchemaFormat(*format, "text.format.", /*with_type=*/true, out, error);
  }
  *error = BadField("text.format.type", "must be text, json_object or json_schema");
  return false;
}

}  // namespace

std::vector<std::string> KnownResponsesFields() { return FieldNames(kResponsesFields); }

absl::StatusOr<ParsedRequest> ParseResponsesRequest(absl::string_view body, HttpError* error) {
  auto fail = [error](HttpError e) {
    *error = std::move(e);
    return absl::InvalidArgumentError(error->message);
  };
  auto failed = [error]() { return absl::InvalidArgumentError(error->message); };
  absl::StatusOr<json> parsed = ParseBodyObject(body, error);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  if (!CheckFields(j, kResponsesFields, "the Responses API", error)) return failed();
  ParsedRequest out;
  v1::ChatRequest& chat = out.chat;
  auto model = moa::json::OptionalString(j, "model", "model");
  if (!model.ok() || !*model) {
    return fail(BadField("model", "is required and must be a string (a pipeline name)"));
  }
  chat.set_pipeline(**model);
  auto instructions = moa::json::OptionalString(j, "instructions", "instructions");
  if (!instructions.ok()) return fail(BadField("instructions", "must be a string"));
  if (*instructions && !(*instructions)->empty()) {
    v1::ChatMessage* m = chat.add_messages();
    m->set_role(v1::ROLE_SYSTEM);
    m->set_content(**instructions);
  }
  const json* input = moa::json::Member(j, "input");
  if (input == nullptr) return fail(BadField("input", "is required: text or a list of items"));
  if (input->is_string()) {
    v1::ChatMessage* m = chat.add_messages();
    m->set_role(v1::ROLE_USER);
    m->set_content(input->get_ref<const std::string&>());
  } else if (input->is_array()) {
    for (size_t i = 0; i < input->size(); ++i) {
      if (!ParseItem((*input)[i], i, &chat, error)) return failed();
    }
  } else {
    return fail(BadField("input", "must be text or a list of items"));
  }
  auto max_tokens = moa::json::OptionalInt(j, "max_output_tokens", "max_output_tokens", 1,
                                           std::numeric_limits<int32_t>::max());
  if (!max_tokens.ok()) return fail(BadField("max_output_tokens", "must be an integer >= 1"));
  if (*max_tokens) chat.mutable_params()->set_max_tokens(static_cast<int32_t>(**max_tokens));
  auto temperature = moa::json::OptionalNumber(j, "temperature", "temperature");
  if (!temperature.ok()) return fail(BadField("temperature", "must be a number"));
  if (*temperature) chat.mutable_params()->set_temperature(**temperature);
  auto top_p = moa::json::OptionalNumber(j, "top_p", "top_p");
  if (!top_p.ok()) return fail(BadField("top_p", "must be a number"));
  if (*top_p) chat.mutable_params()->set_top_p(**top_p);
  auto stream = moa::json::OptionalBool(j, "stream", "stream");
  if (!stream.ok()) return fail(BadField("stream", "must be true or false"));
  out.stream = stream->value_or(false);
  if (const json* so = moa::json::Member(j, "stream_options")) {
    if (!so->is_object() ||
        !OnlyKnownKeys(*so, {"include_obfuscation"}, "stream_options.", error)) {
      return error->message.empty() ? fail(BadField("stream_options", "must be an object"))
                                    : failed();
    }
    auto obfuscation =
        moa::json::OptionalBool(*so, "include_obfuscation", "stream_options.include_obfuscation");
    if (!obfuscation.ok() || obfuscation->value_or(false)) {
      return fail(
          BadField("stream_options.include_obfuscation", "must be false: events carry no padding"));
    }
  }
  for (const char* key : {"user", "safety_identifier"}) {
    auto id = moa::json::OptionalString(j, key, key);
    if (!id.ok() || (*id && (*id)->size() > 256)) {
      return fail(BadField(key, "must be a string of at most 256 bytes"));
    }
    if (*id && out.end_user.empty()) out.end_user = **id;
  }
  if (!ParseTools(j, chat.mutable_tools(), error)) return failed();
  if (!ParseText(j, &chat, error)) return failed();
  return out;
}

namespace {

json UsageOf(const openai::CallRecord& record) {
  int64_t input = 0, output = 0;
  if (record.summary) {
    for (const auto& u : record.summary->usage()) {
      input += u.usage().prompt_tokens();
      output += u.usage().completion_tokens();
    }
  }
  return {{"input_tokens", input},
          {"input_tokens_details", {{"cached_tokens", 0}}},
          {"output_tokens", output},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", input + output}};
}

// A Response, or its stream of typed events, each with a sequence number:
// response.created and response.in_progress; for the text, an output
// message item (output_item.added, content_part.added, output_text.delta
// ..., output_text.done, content_part.done, output_item.done); one
// function_call item per tool call (its arguments in one delta); then
// response.completed (or response.incomplete when max_output_tokens cut it).
class ResponseWriter final : public ::moa::orchestrator::ResponseWriter {
 public:
  ResponseWriter(const ParsedRequest& request, std::string model, int64_t created)
      : model_(std::move(model)),
        id_(NewId("resp_moa_")),
        message_id_(NewId("msg_moa_")),
        created_(created),
        tools_(ToolsJson(request.chat.tools())),
        tool_choice_(ChoiceJson(request.chat.tools())),
        parallel_(!request.chat.tools().has_parallel_tool_calls() ||
                  request.chat.tools().parallel_tool_calls()),
        format_(FormatJson(request.chat.response_format())) {}

  std::string Head() override {
    json response = Envelope("in_progress");
    std::string out = Sse("response.created", {{"response", response}});
    out += Sse("response.in_progress", {{"response", std::move(response)}});
    return out;
  }

  std::string Event(const v1::ChatEvent& event) override {
    record_.Add(event);
    std::string out;
    if (event.has_answer_delta()) {
      answer_ += event.answer_delta();
      if (!message_open_) {
        message_open_ = true;
        message_index_ = items_++;
        out += Sse("response.output_item.added",
                   {{"output_index", message_index_}, {"item", MessageItem("in_progress", "")}});
        out += Sse("response.content_part.added", {{"item_id", message_id_},
                                                   {"output_index", message_index_},
                                                   {"content_index", 0},
                                                   {"part", TextPart("")}});
      }
      out += Sse("response.output_text.delta", {{"item_id", message_id_},
                                                {"output_index", message_index_},
                                                {"content_index", 0},
                                                {"delta", event.answer_delta()},
                                                {"logprobs", json::array()}});
    }
    if (event.has_answer_tool_calls()) {
      out += CloseMessage();
      for (const v1::ToolCall& call : event.answer_tool_calls().calls()) {
        const int index = items_++;
        json item = CallItem(call, "in_progress");
        item["arguments"] = "";
        out += Sse("response.output_item.added", {{"output_index", index}, {"item", item}});
        out += Sse("response.function_call_arguments.delta",
                   {{"item_id", item["id"]}, {"output_index", index}, {"delta", call.arguments()}});
        out += Sse(
            "response.function_call_arguments.done",
            {{"item_id", item["id"]}, {"output_index", index}, {"arguments", call.arguments()}});
        out += Sse("response.output_item.done",
                   {{"output_index", index}, {"item", CallItem(call, "completed")}});
      }
    }
    return out;
  }

  std::string Tail(const absl::Status& status) override {
    if (!status.ok()) {
      HttpError e = ErrorFromStatus(status);
      return Sse("error", {{"code", e.code.empty() ? json(e.type) : json(e.code)},
                           {"message", e.message},
                           {"param", e.param.empty() ? json(nullptr) : json(e.param)}});
    }
    std::string out = CloseMessage();
    const bool cut = FinishReason() == "length";
    out += Sse(cut ? "response.incomplete" : "response.completed", {{"response", Whole()}});
    return out;
  }

  absl::StatusOr<std::string> Body() override { return moa::json::Dump(Whole()); }

 private:
  std::string FinishReason() const {
    return record_.summary ? record_.summary->finish_reason() : "stop";
  }

  static json ToolsJson(const v1::ToolOptions& tools) {
    json out = json::array();
    for (const v1::Tool& t : tools.tools()) {
      json tool = {{"type", "function"},
                   {"name", t.name()},
                   {"description", t.description()},
                   {"strict", t.strict()}};
      absl::StatusOr<json> parameters = moa::json::Parse(t.parameters_json());
      tool["parameters"] = parameters.ok() ? *parameters : json(nullptr);
      out.push_back(std::move(tool));
    }
    return out;
  }

  static json ChoiceJson(const v1::ToolOptions& tools) {
    if (!tools.choice_function().empty()) {
      return {{"type", "function"}, {"name", tools.choice_function()}};
    }
    return tools.choice().empty() ? json("auto") : json(tools.choice());
  }

  static json FormatJson(const v1::ResponseFormat& format) {
    switch (format.type()) {
      case v1::ResponseFormat::JSON_OBJECT:
        return {{"type", "json_object"}};
      case v1::ResponseFormat::JSON_SCHEMA: {
        absl::StatusOr<json> schema = moa::json::Parse(format.schema_json());
        return {{"type", "json_schema"},
                {"name", format.name()},
                {"schema", schema.ok() ? *schema : json(nullptr)},
                {"strict", format.strict()}};
      }
      default:
        return {{"type", "text"}};
    }
  }

  json TextPart(const std::string& text) const {
    return {{"type", "output_text"}, {"text", text}, {"annotations", json::array()}};
  }

  json MessageItem(const char* status, const std::string& text) const {
    json content = json::array();
    if (std::string(status) == "completed") content.push_back(TextPart(text));
    return {{"type", "message"},
            {"id", message_id_},
            {"status", status},
            {"role", "assistant"},
            {"content", std::move(content)}};
  }

  static json CallItem(const v1::ToolCall& call, const char* status) {
    return {{"type", "function_call"},       {"id", absl::StrCat("fc_", call.id())},
            {"call_id", call.id()},          {"name", call.name()},
            {"arguments", call.arguments()}, {"status", status}};
  }

  std::string CloseMessage() {
    if (!message_open_) return "";
    message_open_ = false;
    std::string out = Sse("response.output_text.done", {{"item_id", message_id_},
                                                        {"output_index", message_index_},
                                                        {"content_index", 0},
                                                        {"text", answer_},
                                                        {"logprobs", json::array()}});
    out += Sse("response.content_part.done", {{"item_id", message_id_},
                                              {"output_index", message_index_},
                                              {"content_index", 0},
                                              {"part", TextPart(answer_)}});
    out += Sse("response.output_item.done",
               {{"output_index", message_index_}, {"item", MessageItem("completed", answer_)}});
    return out;
  }

  json Envelope(const char* status) const {
    return {{"id", id_},
            {"object", "response"},
            {"created_at", created_},
            {"status", status},
            {"error", nullptr},
            {"incomplete_details", nullptr},
            {"instructions", nullptr},
            {"model", model_},
            {"output", json::array()},
            {"parallel_tool_calls", parallel_},
            {"tool_choice", tool_choice_},
            {"tools", tools_},
            {"text", {{"format", format_}}},
            {"store", false},
            {"metadata", json::object()},
            {"usage", nullptr}};
  }

  json Whole() const {
    const bool cut = FinishReason() == "length";
    json response = Envelope(cut ? "incomplete" : "completed");
    if (cut) response["incomplete_details"] = {{"reason", "max_output_tokens"}};
    json output = json::array();
    if (!answer_.empty() || record_.tool_calls.empty()) {
      output.push_back(MessageItem("completed", answer_));
    }
    for (const v1::ToolCall& call : record_.tool_calls) {
      output.push_back(CallItem(call, "completed"));
    }
    response["output"] = std::move(output);
    response["usage"] = UsageOf(record_);
    response["moa"] = json::parse(openai::MoaExtensionJson(record_));
    return response;
  }

  std::string Sse(const char* type, json data) {
    data["type"] = type;
    data["sequence_number"] = sequence_++;
    return absl::StrCat("event: ", type, "\ndata: ", moa::json::Dump(data), "\n\n");
  }

  const std::string model_;
  const std::string id_;
  const std::string message_id_;
  const int64_t created_;
  const json tools_;
  const json tool_choice_;
  const bool parallel_;
  const json format_;
  openai::CallRecord record_;
  std::string answer_;
  bool message_open_ = false;
  int message_index_ = 0;
  int items_ = 0;  // Output items begun.
  int64_t sequence_ = 0;
};

class Responses final : public ApiSurface {
 public:
  absl::string_view path() const override { return "/v1/responses"; }
  absl::StatusOr<ParsedRequest> Parse(absl::string_view body, HttpError* error) const override {
    return ParseResponsesRequest(body, error);
  }
  std::string ErrorJson(const HttpError& error) const override { return openai::ErrorJson(error); }
  std::unique_ptr<::moa::orchestrator::ResponseWriter> NewWriter(const ParsedRequest& request,
                                                                 std::string model,
                                                                 int64_t created) const override {
    return std::make_unique<ResponseWriter>(request, std::move(model), created);
  }
};

}  // namespace

const ApiSurface& ResponsesSurface() {
  static const Responses surface;
  return surface;
}

}  // namespace moa::orchestrator::responses
