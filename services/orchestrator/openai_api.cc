#include "services/orchestrator/openai_api.h"

#include <algorithm>
#include <initializer_list>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/base/json.h"
#include "lib/base/random_id.h"
#include "lib/wire/wire.h"
#include "services/orchestrator/request_fields.h"

namespace moa::orchestrator {

HttpError ErrorFromStatus(const absl::Status& status) {
  std::string message(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: {
      // Our messages start with the field: "messages[1].content must ...".
      std::string param = message.substr(0, message.find_first_of(" :"));
      if (absl::StartsWith(param, "params.")) param = param.substr(7);
      return {400, message, "invalid_request_error", param, ""};
    }
    case absl::StatusCode::kNotFound:
      return {404, message, "invalid_request_error", "model", "model_not_found"};
    case absl::StatusCode::kUnauthenticated:
      return {401, message, "authentication_error", "", "invalid_api_key"};
    case absl::StatusCode::kPermissionDenied:
      return {403, message, "permission_error", "model", "model_not_allowed"};
    case absl::StatusCode::kResourceExhausted:
      return {429, message, "rate_limit_error", "", "rate_limit_exceeded"};
    case absl::StatusCode::kUnavailable:
      return {503, message, "server_error", "", "service_unavailable"};
    case absl::StatusCode::kDeadlineExceeded:
      return {504, message, "server_error", "", "timeout"};
    case absl::StatusCode::kCancelled:
      return {499, message, "server_error", "", "cancelled"};
    default:
      return {500, message, "server_error", "", ""};
  }
}

}  // namespace moa::orchestrator

namespace moa::orchestrator::openai {

using json = moa::json::Json;

namespace {

HttpError BadRequest(std::string message, std::string param) {
  return {400, std::move(message), "invalid_request_error", std::move(param), ""};
}

double Seconds(const google::protobuf::Duration& d) {
  return absl::ToDoubleSeconds(wire::FromProto(d));
}

// The chat-completions fields (request_fields.h); docs/http-api.md's field table
// says the same, field by field.
bool IsNone(const json& v, const json&) { return v == "none"; }
bool IsTextOnly(const json& v, const json&) { return v == json::array({"text"}); }
bool IsDefaultTier(const json& v, const json&) { return v == "auto" || v == "default"; }
constexpr char kFunctions[] =
    "is the deprecated form of tools and is not supported: send tools and tool_choice";
constexpr char kReasoning[] =
    "is not supported: reasoning settings are each model's, in the cluster config";
constexpr char kLogprobs[] =
    "is not supported: a MoA answer is a synthesis, not one model's sampled tokens";

const FieldRule kChatFields[] = {
    {"model", nullptr, ""},
    {"messages", nullptr, ""},
    {"temperature", nullptr, ""},
    {"top_p", nullptr, ""},
    {"max_tokens", nullptr, ""},
    {"max_completion_tokens", nullptr, ""},
    {"stop", nullptr, ""},
    {"seed", nullptr, ""},
    {"stream", nullptr, ""},
    {"stream_options", nullptr, ""},
    {"n", nullptr, ""},
    {"user", nullptr, ""},
    {"safety_identifier", nullptr, ""},
    {"moa_policy", nullptr, ""},
    {"moa_preset", nullptr, ""},
    {"moa_step_seed", nullptr, ""},
    {"moa_streaming", nullptr, ""},
    {"frequency_penalty", IsZero, "must be 0: the models are not sent a penalty"},
    {"presence_penalty", IsZero, "must be 0: the models are not sent a penalty"},
    {"logit_bias", IsEmptyObject,
     "must be empty: token ids are each model's own, and a panel does not share them"},
    {"logprobs", IsFalse, kLogprobs},
    {"top_logprobs", IsZero, kLogprobs},
    {"tools", nullptr, ""},
    {"tool_choice", nullptr, ""},
    {"parallel_tool_calls", nullptr, ""},
    {"functions", IsEmptyArray, kFunctions},
    {"function_call", IsNone, kFunctions},
    {"response_format", nullptr, ""},
    {"modalities", IsTextOnly, "must be [\"text\"]: the answer is text"},
    {"audio", Never, "is not supported: the answer is text"},
    {"prediction", Never, "is not supported: the answer is written anew, not predicted"},
    {"web_search_options", Never, "is not supported: the models do not search the web"},
    {"reasoning_effort", Never, kReasoning},
    {"verbosity", Never, kReasoning},
    {"store", IsFalse, "must be false: this server stores no completions"},
    {"metadata", IsEmptyObject,
     "must be empty: it is for stored completions, and this server stores none"},
    {"service_tier", IsDefaultTier, "must be \"auto\" or \"default\""},
};

json ToolCallJson(const v1::ToolCall& call) {
  return {{"id", call.id()},
          {"type", "function"},
          {"function", {{"name", call.name()}, {"arguments", call.arguments()}}}};
}

// An assistant message's tool_calls: [{id, type: "function", function:
// {name, arguments}}]. Bounds and names are checked again by the engine
// (wire::ToMessages), which every door shares.
bool ParseToolCalls(const json& calls, const std::string& path, v1::ChatMessage* msg,
                    HttpError* error) {
  if (!calls.is_array()) {
    *error = BadRequest(absl::StrCat(path, " must be a list"), path);
    return false;
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    const json& call = calls[i];
    const std::string where = absl::StrCat(path, "[", i, "]");
    if (!call.is_object()) {
      *error = BadRequest(absl::StrCat(where, " must be an object"), where);
      return false;
    }
    if (!OnlyKnownKeys(call, {"id", "type", "function"}, where + ".", error)) return false;
    auto type = moa::json::OptionalString(call, "type", where + ".type");
    if (!type.ok() || (*type && **type != "function")) {
      *error = BadRequest(absl::StrCat(where, ".type must be \"function\""), where + ".type");
      return false;
    }
    auto id = moa::json::OptionalString(call, "id", where + ".id");
    const json* function = moa::json::Member(call, "function");
    if (!id.ok() || !*id || function == nullptr || !function->is_object()) {
      *error = BadRequest(absl::StrCat(where, " needs an id and a function object"), where);
      return false;
    }
    if (!OnlyKnownKeys(*function, {"name", "arguments"}, where + ".function.", error)) {
      return false;
    }
    auto name = moa::json::OptionalString(*function, "name", where + ".function.name");
    auto arguments =
        moa::json::OptionalString(*function, "arguments", where + ".function.arguments");
    if (!name.ok() || !*name || !arguments.ok()) {
      *error = BadRequest(
          absl::StrCat(where, ".function needs a string name and string arguments (JSON text)"),
          where + ".function");
      return false;
    }
    v1::ToolCall* out = msg->add_tool_calls();
    out->set_id(**id);
    out->set_name(**name);
    out->set_arguments(arguments->value_or(""));
  }
  return true;
}

// tools, tool_choice and parallel_tool_calls (docs/http-api.md, "Tool calls"). Only
// function tools exist here; any other kind is refused by name.
bool ParseTools(const json& request, v1::ToolOptions* out, HttpError* error) {
  if (const json* tools = moa::json::Member(request, "tools")) {
    if (!tools->is_array()) {
      *error = BadRequest("tools must be a list", "tools");
      return false;
    }
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& tool = (*tools)[i];
      const std::string where = absl::StrCat("tools[", i, "]");
      auto type = moa::json::OptionalString(tool, "type", where + ".type");
      if (!tool.is_object() || !type.ok() || !*type) {
        *error = BadRequest(absl::StrCat(where, " must be an object with a type"), where);
        return false;
      }
      if (**type != "function") {
        *error = BadField(where + ".type",
                          absl::StrCat("'", (*type)->substr(0, 64),
                                       "' is not supported: only function tools are (the "
                                       "client runs them)"));
        return false;
      }
      if (!OnlyKnownKeys(tool, {"type", "function"}, where + ".", error)) return false;
      const json* function = moa::json::Member(tool, "function");
      if (function == nullptr || !function->is_object()) {
        *error =
            BadRequest(absl::StrCat(where, ".function must be an object"), where + ".function");
        return false;
      }
      if (!OnlyKnownKeys(*function, {"name", "description", "parameters", "strict"},
                         where + ".function.", error)) {
        return false;
      }
      v1::Tool* t = out->add_tools();
      auto name = moa::json::OptionalString(*function, "name", where + ".function.name");
      auto description =
          moa::json::OptionalString(*function, "description", where + ".function.description");
      auto strict = moa::json::OptionalBool(*function, "strict", where + ".function.strict");
      if (!name.ok() || !*name || !description.ok() || !strict.ok()) {
        *error = BadRequest(absl::StrCat(where,
                                         ".function needs a string name (and a string "
                                         "description, a boolean strict)"),
                            where + ".function");
        return false;
      }
      t->set_name(**name);
      t->set_description(description->value_or(""));
      t->set_strict(strict->value_or(false));
      if (const json* parameters = moa::json::Member(*function, "parameters")) {
        if (!parameters->is_object()) {
          *error = BadRequest(absl::StrCat(where,
                                           ".function.parameters must be a JSON Schema "
                                           "object"),
                              where + ".function.parameters");
          return false;
        }
        t->set_parameters_json(moa::json::Dump(*parameters));
      }
    }
  }
  if (const json* choice = moa::json::Member(request, "tool_choice")) {
    if (choice->is_string()) {
      out->set_choice(choice->get_ref<const std::string&>());
    } else {
      const json* function = choice->is_object() ? moa::json::Member(*choice, "function") : nullptr;
      auto type = moa::json::OptionalString(*choice, "type", "tool_choice.type");
      auto name = function == nullptr
                      ? absl::StatusOr<std::optional<std::string>>(std::nullopt)
                      : moa::json::OptionalString(*function, "name", "tool_choice.function.name");
      if (!type.ok() || *type != "function" || !name.ok() || !*name) {
        *error = BadRequest(
            "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
            "\"function\": {\"name\": ...}}; allowed_tools and custom tools are not supported",
            "tool_choice");
        return false;
      }
      if (!OnlyKnownKeys(*choice, {"type", "function"}, "tool_choice.", error) ||
          !OnlyKnownKeys(*function, {"name"}, "tool_choice.function.", error)) {
        return false;
      }
      out->set_choice_function(**name);
    }
  }
  auto parallel = moa::json::OptionalBool(request, "parallel_tool_calls", "parallel_tool_calls");
  if (!parallel.ok()) {
    *error = BadRequest("parallel_tool_calls must be true or false", "parallel_tool_calls");
    return false;
  }
  if (*parallel) out->set_parallel_tool_calls(**parallel);
  // "none" with no tools asks for nothing: accepted as no tool options.
  if (out->tools_size() == 0 && out->choice() == "none") out->clear_choice();
  if (out->tools_size() == 0 && out->has_parallel_tool_calls()) out->clear_parallel_tool_calls();
  return true;
}
}  // namespace

bool ReadJsonSchemaFormat(const json& object, const std::string& path, bool with_type,
                          v1::ResponseFormat* format, HttpError* error) {
  const bool known =
      with_type
          ? OnlyKnownKeys(object, {"type", "name", "schema", "strict", "description"}, path, error)
          : OnlyKnownKeys(object, {"name", "schema", "strict", "description"}, path, error);
  if (!known) return false;
  format->set_type(v1::ResponseFormat::JSON_SCHEMA);
  const json* schema = moa::json::Member(object, "schema");
  if (schema == nullptr || !(schema->is_object() || schema->is_boolean())) {
    *error = BadRequest(absl::StrCat(path, "schema must be a JSON Schema object"),
                        absl::StrCat(path, "schema"));
    return false;
  }
  format->set_schema_json(moa::json::Dump(*schema));
  auto name = moa::json::OptionalString(object, "name", absl::StrCat(path, "name"));
  auto description =
      moa::json::OptionalString(object, "description", absl::StrCat(path, "description"));
  auto strict = moa::json::OptionalBool(object, "strict", absl::StrCat(path, "strict"));
  for (const absl::Status& s : {name.status(), description.status(), strict.status()}) {
    if (!s.ok()) {
      std::string message(s.message());
      *error = BadRequest(message, message.substr(0, message.find(' ')));
      return false;
    }
  }
  if (*name) format->set_name(**name);
  if (*description) format->set_description(**description);
  format->set_strict(strict->value_or(false));
  return true;
}

std::string ErrorJson(const HttpError& e) {
  return json{{"error",
               {{"message", e.message},
                {"type", e.type},
                {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

std::vector<std::string> KnownChatFields() { return FieldNames(kChatFields); }

absl::StatusOr<ParsedRequest> ParseChatCompletionRequest(absl::string_view body, HttpError* error) {
  auto fail = [error](HttpError e) {
    *error = std::move(e);
    return absl::InvalidArgumentError(error->message);
  };
  // A wrong field becomes a 400 naming it; `param` is the path before " must".
  auto field_error = [&fail](const absl::Status& s) {
    std::string message(s.message());
    return fail(BadRequest(message, message.substr(0, message.find(' '))));
  };
  absl::StatusOr<json> parsed = ParseBodyObject(body, error);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  if (!CheckFields(j, kChatFields, "chat completions", error)) {
    return absl::InvalidArgumentError(error->message);
  }
  ParsedRequest out;
  auto model = moa::json::OptionalString(j, "model", "model");
  if (!model.ok() || !*model) {
    return fail(BadRequest("'model' is required and must be a string (a pipeline name)", "model"));
  }
  out.chat.set_pipeline(**model);
  const json* messages = moa::json::Member(j, "messages");
  if (messages == nullptr || !messages->is_array()) {
    return fail(BadRequest("'messages' is required and must be an array", "messages"));
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    std::string where = absl::StrCat("messages[", i, "]");
    auto role_or = moa::json::OptionalString(m, "role", where + ".role");
    if (!m.is_object() || !role_or.ok() || !*role_or) {
      return fail(BadRequest(absl::StrCat(where, ".role is required and must be a string"),
                             where + ".role"));
    }
    const std::string& role = **role_or;
    // An assistant message an SDK hands back may carry these, empty.
    for (const char* echo : {"refusal", "function_call", "audio"}) {
      const json* v = moa::json::Member(m, echo);
      if (v != nullptr && !(v->is_array() && v->empty())) {
        return fail(BadRequest(
            absl::StrCat(where, ".", echo,
                         std::string(echo) == "function_call"
                             ? " is the deprecated form of tool_calls and is not supported"
                             : " is not supported: a message's content is its text"),
            absl::StrCat(where, ".", echo)));
      }
    }
    if (!OnlyKnownKeys(m,
                       {"role", "content", "refusal", "tool_calls", "function_call", "audio",
                        "tool_call_id", "name"},
                       where + ".", error)) {
      return absl::InvalidArgumentError(error->message);
    }
    v1::ChatMessage* msg = out.chat.add_messages();
    if (role == "system" || role == "developer") {
      msg->set_role(v1::ROLE_SYSTEM);
    } else if (role == "user") {
      msg->set_role(v1::ROLE_USER);
    } else if (role == "assistant") {
      msg->set_role(v1::ROLE_ASSISTANT);
    } else if (role == "tool") {
      msg->set_role(v1::ROLE_TOOL);
    } else {
      return fail(BadRequest(absl::StrCat(where, ".role '", role,
                                          "' is not supported (system, developer, user, "
                                          "assistant, tool)"),
                             where + ".role"));
    }
    // A participant's name is a label the models are not sent; only an
    // absent one is honoured.
    if (moa::json::Member(m, "name") != nullptr) {
      return fail(
          BadRequest(absl::StrCat(where,
                                  ".name is not supported: participant names are not sent to the "
                                  "models"),
                     where + ".name"));
    }
    if (const json* calls = moa::json::Member(m, "tool_calls");
        calls != nullptr && !(calls->is_array() && calls->empty())) {
      if (role != "assistant") {
        return fail(BadRequest(absl::StrCat(where,
                                            ".tool_calls: only an assistant message "
                                            "makes tool calls"),
                               where + ".tool_calls"));
      }
      if (!ParseToolCalls(*calls, where + ".tool_calls", msg, error)) {
        return absl::InvalidArgumentError(error->message);
      }
    }
    if (role == "tool") {
      auto id = moa::json::OptionalString(m, "tool_call_id", where + ".tool_call_id");
      if (!id.ok() || !*id || (*id)->empty()) {
        return fail(BadRequest(absl::StrCat(where,
                                            ".tool_call_id is required: the id of the "
                                            "call this is the result of"),
                               where + ".tool_call_id"));
      }
      msg->set_tool_call_id(**id);
    } else if (moa::json::Member(m, "tool_call_id") != nullptr) {
      return fail(BadRequest(absl::StrCat(where, ".tool_call_id goes only on a tool message"),
                             where + ".tool_call_id"));
    }
    const json* c = moa::json::Member(m, "content");
    if (c == nullptr) {
      // An assistant turn that only called tools has no content.
      if (msg->tool_calls_size() > 0) continue;
      return fail(BadRequest(absl::StrCat(where, ".content is required"), where + ".content"));
    }
    if (c->is_string()) {
      msg->set_content(c->get_ref<const std::string&>());
    } else if (c->is_array()) {
      std::string text;
      for (size_t k = 0; k < c->size(); ++k) {
        const json& part = (*c)[k];
        std::string part_path = absl::StrCat(where, ".content[", k, "]");
        auto type = moa::json::OptionalString(part, "type", part_path + ".type");
        auto part_text = moa::json::OptionalString(part, "text", part_path + ".text");
        if (type.ok() && *type && **type == "image_url") {
          // An image: the URL as sent (wire checks its scheme and detail).
          const json* image = moa::json::Member(part, "image_url");
          auto url = image == nullptr
                         ? absl::StatusOr<std::optional<std::string>>(std::nullopt)
                         : moa::json::OptionalString(*image, "url", part_path + ".image_url.url");
          auto detail = image == nullptr ? absl::StatusOr<std::optional<std::string>>(std::nullopt)
                                         : moa::json::OptionalString(
                                               *image, "detail", part_path + ".image_url.detail");
          if (!url.ok() || !*url || !detail.ok()) {
            return fail(BadRequest(
                absl::StrCat(part_path, ".image_url needs a string url (and a string detail)"),
                part_path + ".image_url"));
          }
          if (!OnlyKnownKeys(part, {"type", "image_url"}, part_path + ".", error) ||
              !OnlyKnownKeys(*image, {"url", "detail"}, part_path + ".image_url.", error)) {
            return absl::InvalidArgumentError(error->message);
          }
          v1::Image* out_image = msg->add_images();
          out_image->set_url(**url);
          out_image->set_detail(detail->value_or(""));
          continue;
        }
        if (!type.ok() || !*type || **type != "text") {
          return fail(BadRequest(
              absl::StrCat(part_path, ": only parts of type 'text' and 'image_url' are supported"),
              part_path + ".type"));
        }
        if (!part_text.ok() || !*part_text) {
          return fail(BadRequest(absl::StrCat(part_path, ".text is required and must be a string"),
                                 part_path + ".text"));
        }
        if (!OnlyKnownKeys(part, {"type", "text"}, part_path + ".", error)) {
          return absl::InvalidArgumentError(error->message);
        }
        text += **part_text;
      }
      msg->set_content(std::move(text));
    } else {
      return fail(BadRequest(absl::StrCat(where, ".content must be a string or a list of parts"),
                             where + ".content"));
    }
  }
  if (!ParseTools(j, out.chat.mutable_tools(), error)) {
    return absl::InvalidArgumentError(error->message);
  }
  v1::SamplingParams* p = out.chat.mutable_params();
  auto temperature = moa::json::OptionalNumber(j, "temperature", "temperature");
  if (!temperature.ok()) return field_error(temperature.status());
  if (*temperature) p->set_temperature(**temperature);
  auto top_p = moa::json::OptionalNumber(j, "top_p", "top_p");
  if (!top_p.ok()) return field_error(top_p.status());
  if (*top_p) p->set_top_p(**top_p);
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    auto n = moa::json::OptionalInt(j, key, key, 1, std::numeric_limits<int32_t>::max());
    if (!n.ok()) return field_error(n.status());
    if (*n) p->set_max_tokens(static_cast<int32_t>(**n));
  }
  auto seed = moa::json::OptionalInt(j, "seed", "seed", std::numeric_limits<int64_t>::min());
  if (!seed.ok()) return field_error(seed.status());
  if (*seed) p->set_seed(**seed);
  if (const json* stop = moa::json::Member(j, "stop")) {
    if (stop->is_string()) {
      p->add_stop(stop->get_ref<const std::string&>());
    } else if (stop->is_array()) {
      for (const json& s : *stop) {
        if (!s.is_string()) return fail(BadRequest("'stop' must be a string or strings", "stop"));
        p->add_stop(s.get_ref<const std::string&>());
      }
    } else {
      return fail(BadRequest("'stop' must be a string or a list of strings", "stop"));
    }
  }
  auto n = moa::json::OptionalInt(j, "n", "n", std::numeric_limits<int64_t>::min());
  if (!n.ok() || (*n && **n != 1)) {
    return fail(BadRequest("only n=1 is supported: a MoA pipeline writes one answer", "n"));
  }
  // Who the end user is (an id for abuse monitoring): it goes into the
  // request's log line, the one place an operator looks for it.
  for (const char* key : {"user", "safety_identifier"}) {
    auto id = moa::json::OptionalString(j, key, key);
    if (!id.ok()) return field_error(id.status());
    if (*id && (*id)->size() > 256) {
      return fail(BadRequest(absl::StrCat(key, " must be at most 256 bytes"), key));
    }
    if (*id && out.end_user.empty()) out.end_user = **id;
  }
  auto stream = moa::json::OptionalBool(j, "stream", "stream");
  if (!stream.ok()) return field_error(stream.status());
  out.stream = stream->value_or(false);
  if (const json* so = moa::json::Member(j, "stream_options")) {
    if (!so->is_object()) {
      return fail(BadRequest("'stream_options' must be an object", "stream_options"));
    }
    auto include_usage =
        moa::json::OptionalBool(*so, "include_usage", "stream_options.include_usage");
    if (!include_usage.ok()) return field_error(include_usage.status());
    out.include_usage = include_usage->value_or(false);
    // Obfuscation pads chunks against a length side channel; this server
    // sends none, so only asking for none is honoured.
    auto obfuscation =
        moa::json::OptionalBool(*so, "include_obfuscation", "stream_options.include_obfuscation");
    if (!obfuscation.ok()) return field_error(obfuscation.status());
    if (obfuscation->value_or(false)) {
      return fail(BadRequest(
          "stream_options.include_obfuscation: only false is supported: chunks carry no padding",
          "stream_options.include_obfuscation"));
    }
    if (!OnlyKnownKeys(*so, {"include_usage", "include_obfuscation"}, "stream_options.", error)) {
      return absl::InvalidArgumentError(error->message);
    }
  }
  // Structured outputs (docs/http-api.md, "Structured outputs"): the schema is
  // compiled, and refused naming its keyword, when the engine plans.
  if (const json* rf = moa::json::Member(j, "response_format")) {
    if (!rf->is_object()) {
      return fail(BadRequest("response_format must be an object", "response_format"));
    }
    if (!OnlyKnownKeys(*rf, {"type", "json_schema"}, "response_format.", error)) {
      return absl::InvalidArgumentError(error->message);
    }
    v1::ResponseFormat* format = out.chat.mutable_response_format();
    auto type = moa::json::OptionalString(*rf, "type", "response_format.type");
    if (!type.ok() || !*type ||
        (**type != "text" && **type != "json_object" && **type != "json_schema")) {
      return fail(
          BadRequest("response_format.type must be \"text\", \"json_object\" or \"json_schema\"",
                     "response_format.type"));
    }
    const json* js = moa::json::Member(*rf, "json_schema");
    if (**type != "json_schema" && js != nullptr) {
      return fail(BadRequest("response_format.json_schema goes only with type \"json_schema\"",
                             "response_format.json_schema"));
    }
    if (**type == "json_object") format->set_type(v1::ResponseFormat::JSON_OBJECT);
    if (**type == "json_schema") {
      if (js == nullptr || !js->is_object()) {
        return fail(BadRequest("response_format.json_schema must be an object with a schema",
                               "response_format.json_schema"));
      }
      if (!ReadJsonSchemaFormat(*js, "response_format.json_schema.", /*with_type=*/false, format,
                                error)) {
        return absl::InvalidArgumentError(error->message);
      }
    }
  }
  // Our extension: the layer policy for this request (docs/slow-and-failing-models.md, "Slow and
  // failing models"); range checks are the engine's, as over gRPC.
  if (const json* mp = moa::json::Member(j, "moa_policy")) {
    if (!mp->is_object()) return fail(BadRequest("'moa_policy' must be an object", "moa_policy"));
    if (!OnlyKnownKeys(*mp,
                       {"min_proposals", "straggler_grace_seconds", "straggler_grace_factor",
                        "layer_deadline_share"},
                       "moa_policy.", error)) {
      return absl::InvalidArgumentError(error->message);
    }
    v1::LayerPolicy* policy = out.chat.mutable_policy();
    // "all", as in the config: wait for every proposal of each layer.
    if (const json* all = moa::json::Member(*mp, "min_proposals");
        all != nullptr && all->is_string() && all->get_ref<const std::string&>() == "all") {
      policy->set_min_proposals(std::numeric_limits<int32_t>::max());
    } else {
      auto k = moa::json::OptionalInt(*mp, "min_proposals", "moa_policy.min_proposals", 1,
                                      std::numeric_limits<int32_t>::max());
      if (!k.ok()) return field_error(k.status());
      if (*k) policy->set_min_proposals(static_cast<int32_t>(**k));
    }
    auto grace = moa::json::OptionalNumber(*mp, "straggler_grace_seconds",
                                           "moa_policy.straggler_grace_seconds");
    if (!grace.ok()) return field_error(grace.status());
    if (*grace) {
      if (!(**grace >= 0 && **grace <= 86400)) {
        return fail(BadRequest("'moa_policy.straggler_grace_seconds' must be in [0, 86400]",
                               "moa_policy.straggler_grace_seconds"));
      }
      wire::ToProto(absl::Seconds(**grace), policy->mutable_straggler_grace());
    }
    auto factor = moa::json::OptionalNumber(*mp, "straggler_grace_factor",
                                            "moa_policy.straggler_grace_factor");
    if (!factor.ok()) return field_error(factor.status());
    if (*factor) policy->set_straggler_grace_factor(**factor);
    auto share =
        moa::json::OptionalNumber(*mp, "layer_deadline_share", "moa_policy.layer_deadline_share");
    if (!share.ok()) return field_error(share.status());
    if (*share) policy->set_layer_deadline_share(**share);
  }
  // Our extension: the preset the pipeline runs with (docs/pipelines.md, "Presets").
  auto preset = moa::json::OptionalString(j, "moa_preset", "moa_preset");
  if (!preset.ok()) return field_error(preset.status());
  if (*preset) out.chat.set_preset(**preset);
  // Our extension: the seed of the pipeline's shuffle and dropout steps (a
  // run's recorded seed replays it).
  auto step_seed = moa::json::OptionalInt(j, "moa_step_seed", "moa_step_seed");
  if (!step_seed.ok()) return field_error(step_seed.status());
  if (*step_seed) out.chat.set_step_seed(static_cast<uint64_t>(**step_seed));
  // Our extension: staircase streaming of the answer (docs/streaming.md, "Staircase
  // streaming"): "staircase", "normal", or an object with the schedule.
  // Range checks are the engine's, as over gRPC.
  if (const json* ms = moa::json::Member(j, "moa_streaming")) {
    v1::StreamingOptions* streaming = out.chat.mutable_streaming();
    const json* mode = ms;
    if (ms->is_object()) {
      if (!OnlyKnownKeys(*ms, {"mode", "first_chunk_tokens", "growth", "max_steps"},
                         "moa_streaming.", error)) {
        return absl::InvalidArgumentError(error->message);
      }
      mode = moa::json::Member(*ms, "mode");
      auto first = moa::json::OptionalInt(*ms, "first_chunk_tokens",
                                          "moa_streaming.first_chunk_tokens", 1, 4096);
      if (!first.ok()) return field_error(first.status());
      if (*first) streaming->set_first_chunk_tokens(static_cast<int32_t>(**first));
      auto growth = moa::json::OptionalNumber(*ms, "growth", "moa_streaming.growth");
      if (!growth.ok()) return field_error(growth.status());
      if (*growth) streaming->set_growth(**growth);
      auto steps = moa::json::OptionalInt(*ms, "max_steps", "moa_streaming.max_steps", 2, 32);
      if (!steps.ok()) return field_error(steps.status());
      if (*steps) streaming->set_max_steps(static_cast<int32_t>(**steps));
    }
    if (mode != nullptr) {
      if (!mode->is_string() || (*mode != "staircase" && *mode != "normal")) {
        return fail(
            BadRequest("'moa_streaming' must be \"staircase\", \"normal\" or an object "
                       "with mode, first_chunk_tokens, growth and max_steps",
                       "moa_streaming"));
      }
      streaming->set_mode(*mode == "staircase" ? v1::StreamingOptions::STAIRCASE
                                               : v1::StreamingOptions::NORMAL);
    }
  }
  return out;
}

void CallRecord::Add(const v1::ChatEvent& event) {
  if (event.has_accepted()) {
    pipeline = event.accepted().pipeline();
    if (event.accepted().has_route()) route = event.accepted().route();
  }
  if (event.has_proposal_done()) {
    const auto& d = event.proposal_done();
    proposals.push_back({d.ref().layer(), d.ref().model(), "ok", "", d.completion()});
  }
  if (event.has_proposal_failed()) {
    const auto& f = event.proposal_failed();
    proposals.push_back({f.ref().layer(), f.ref().model(),
                         absl::StatusCodeToString(static_cast<absl::StatusCode>(f.status().code())),
                         f.status().message(), v1::Completion()});
  }
  if (event.has_proposal_straggler()) {
    const auto& st = event.proposal_straggler();
    proposals.push_back({st.ref().layer(), st.ref().model(), "STRAGGLER",
                         "cut when its layer went on", v1::Completion()});
  }
  if (event.has_answer_tool_calls()) {
    const auto& calls = event.answer_tool_calls().calls();
    tool_calls.assign(calls.begin(), calls.end());
  }
  if (event.has_summary()) summary = event.summary();
}

std::string UsageJson(const CallRecord& record) {
  int64_t prompt = 0, completion = 0, reasoning = 0;
  if (record.summary) {
    for (const auto& u : record.summary->usage()) {
      prompt += u.usage().prompt_tokens();
      completion += u.usage().completion_tokens();
      reasoning += u.usage().reasoning_tokens();
    }
  }
  json usage = {{"prompt_tokens", prompt},
                {"completion_tokens", completion},
                {"total_tokens", prompt + completion}};
  // As OpenAI reports a reasoning model's thinking: part of completion_tokens.
  if (reasoning > 0) usage["completion_tokens_details"] = {{"reasoning_tokens", reasoning}};
  return usage.dump();  // Numbers only: cannot throw.
}

std::string MoaExtensionJson(const CallRecord& record) {
  json ext = {{"pipeline", record.pipeline}};
  if (record.route) {
    ext["route"] = {{"route", record.route->route()},
                    {"by", record.route->by()},
                    {"reason", record.route->reason()}};
  }
  json usage = json::array();
  json layers = json::array();
  if (record.summary) {
    for (const auto& u : record.summary->usage()) {
      usage.push_back({{"model", u.model()},
                       {"prompt_tokens", u.usage().prompt_tokens()},
                       {"completion_tokens", u.usage().completion_tokens()},
                       {"reasoning_tokens", u.usage().reasoning_tokens()},
                       {"cost_dollars", u.cost_dollars()}});
    }
    for (const auto& d : record.summary->layer_durations()) layers.push_back(Seconds(d));
    ext["time_to_first_token"] = Seconds(record.summary->time_to_first_token());
    ext["answer_steps"] = record.summary->answer_steps();
    ext["cost_dollars"] = record.summary->cost_dollars();
    if (record.summary->skipped_calls() > 0) {
      ext["skipped_calls"] = record.summary->skipped_calls();
      ext["saved_tokens"] = record.summary->saved_tokens();
      ext["saved_dollars"] = record.summary->saved_dollars();
    }
    ext["total"] = Seconds(record.summary->total());
    const v1::Completion& a = record.summary->answer();
    ext["answer"] = {{"model", a.model()},
                     {"time_to_first_token", Seconds(a.time_to_first_token())},
                     {"duration", Seconds(a.duration())},
                     {"prompt_tokens", a.usage().prompt_tokens()},
                     {"completion_tokens", a.usage().completion_tokens()}};
  }
  json proposals = json::array();
  for (const auto& p : record.proposals) {
    json item = {{"layer", p.layer}, {"model", p.model}, {"outcome", p.outcome}};
    if (p.outcome == "ok") {
      item["time_to_first_token"] = Seconds(p.completion.time_to_first_token());
      item["duration"] = Seconds(p.completion.duration());
      item["prompt_tokens"] = p.completion.usage().prompt_tokens();
      item["completion_tokens"] = p.completion.usage().completion_tokens();
    } else {
      item["error"] = p.error;
    }
    proposals.push_back(std::move(item));
  }
  ext["usage"] = std::move(usage);
  ext["layer_durations"] = std::move(layers);
  ext["proposals"] = std::move(proposals);
  return moa::json::Dump(ext);
}

std::string CompletionJson(const std::string& id, int64_t created, const std::string& model,
                           const std::string& answer, const CallRecord& record) {
  std::string finish = record.summary ? record.summary->finish_reason() : "stop";
  json message = {{"role", "assistant"}, {"content", answer}};
  if (!record.tool_calls.empty()) {
    if (answer.empty()) message["content"] = nullptr;
    json calls = json::array();
    for (const v1::ToolCall& c : record.tool_calls) calls.push_back(ToolCallJson(c));
    message["tool_calls"] = std::move(calls);
  }
  json out = {{"id", id},
              {"object", "chat.completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array({{{"index", 0},
                                        {"message", std::move(message)},
                                        {"logprobs", nullptr},
                                        {"finish_reason", finish}}})},
              {"usage", json::parse(UsageJson(record))},
              {"moa", json::parse(MoaExtensionJson(record))}};
  return moa::json::Dump(out);
}

std::string ChunkEvent(const std::string& id, int64_t created, const std::string& model,
                       absl::string_view delta_json, absl::string_view finish_reason_json) {
  return absl::StrCat("data: {\"id\":", moa::json::Quote(id),
                      ",\"object\":\"chat.completion.chunk\",\"created\":", created,
                      ",\"model\":", moa::json::Quote(model),
                      ",\"choices\":[{\"index\":0,\"delta\":", delta_json,
                      ",\"logprobs\":null,\"finish_reason\":", finish_reason_json, "}]}\n\n");
}

std::string UsageChunkEvent(const std::string& id, int64_t created, const std::string& model,
                            const CallRecord& record) {
  return absl::StrCat("data: {\"id\":", moa::json::Quote(id),
                      ",\"object\":\"chat.completion.chunk\",\"created\":", created,
                      ",\"model\":", moa::json::Quote(model),
                      ",\"choices\":[],\"usage\":", UsageJson(record),
                      ",\"moa\":", MoaExtensionJson(record), "}\n\n");
}

std::string ToolCallsDeltaJson(const v1::AnswerToolCalls& calls) {
  json list = json::array();
  for (int i = 0; i < calls.calls_size(); ++i) {
    json call = ToolCallJson(calls.calls(i));
    call["index"] = i;
    list.push_back(std::move(call));
  }
  return moa::json::Dump(json{{"tool_calls", std::move(list)}});
}

std::string ContentDeltaJson(absl::string_view text) {
  return moa::json::Dump(json{{"content", std::string(text)}});
}

namespace {

// Chunks as the answer streams: the role first, content pieces, one chunk
// with every tool call, the finish reason, the usage chunk when asked,
// [DONE]. Whole: one chat.completion.
class ChatCompletionWriter final : public ResponseWriter {
 public:
  ChatCompletionWriter(bool include_usage, std::string model, int64_t created)
      : include_usage_(include_usage),
        model_(std::move(model)),
        id_(NewId("chatcmpl-moa-")),
        created_(created) {}

  std::string Head() override {
    return ChunkEvent(id_, created_, model_, R"({"role":"assistant","content":""})", "null");
  }

  std::string Event(const v1::ChatEvent& event) override {
    record_.Add(event);
    if (event.has_answer_tool_calls()) {
      return ChunkEvent(id_, created_, model_, ToolCallsDeltaJson(event.answer_tool_calls()),
                        "null");
    }
    if (!event.has_answer_delta()) return "";
    answer_ += event.answer_delta();
    return ChunkEvent(id_, created_, model_, ContentDeltaJson(event.answer_delta()), "null");
  }

  std::string Tail(const absl::Status& status) override {
    if (!status.ok()) {
      return absl::StrCat("data: ", ErrorJson(ErrorFromStatus(status)), "\n\n");
    }
    std::string finish = record_.summary ? record_.summary->finish_reason() : "stop";
    std::string tail = ChunkEvent(id_, created_, model_, "{}", moa::json::Quote(finish));
    if (include_usage_) tail += UsageChunkEvent(id_, created_, model_, record_);
    tail += "data: [DONE]\n\n";
    return tail;
  }

  absl::StatusOr<std::string> Body() override {
    return CompletionJson(id_, created_, model_, answer_, record_);
  }

 private:
  const bool include_usage_;
  const std::string model_;
  const std::string id_;
  const int64_t created_;
  CallRecord record_;
  std::string answer_;
};

class ChatCompletions final : public ApiSurface {
 public:
  absl::string_view path() const override { return "/v1/chat/completions"; }
  absl::StatusOr<ParsedRequest> Parse(absl::string_view body, HttpError* error) const override {
    return ParseChatCompletionRequest(body, error);
  }
  std::string ErrorJson(const HttpError& error) const override { return openai::ErrorJson(error); }
  std::unique_ptr<ResponseWriter> NewWriter(const ParsedRequest& request, std::string model,
                                            int64_t created) const override {
    return std::make_unique<ChatCompletionWriter>(request.include_usage, std::move(model), created);
  }
};

}  // namespace

const ApiSurface& ChatCompletionsSurface() {
  static const ChatCompletions surface;
  return surface;
}

}  // namespace moa::orchestrator::openai
