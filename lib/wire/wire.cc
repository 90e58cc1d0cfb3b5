#include "lib/wire/wire.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/base/json.h"

namespace moa::wire {
namespace {

std::optional<llm::Role> RoleFromProto(int role) {
  switch (role) {
    case v1::ROLE_SYSTEM:
      return llm::Role::kSystem;
    case v1::ROLE_USER:
      return llm::Role::kUser;
    case v1::ROLE_ASSISTANT:
      return llm::Role::kAssistant;
    case v1::ROLE_TOOL:
      return llm::Role::kTool;
    default:
      return std::nullopt;
  }
}

v1::Role RoleToProto(llm::Role role) {
  switch (role) {
    case llm::Role::kSystem:
      return v1::ROLE_SYSTEM;
    case llm::Role::kUser:
      return v1::ROLE_USER;
    case llm::Role::kAssistant:
      return v1::ROLE_ASSISTANT;
    case llm::Role::kTool:
      return v1::ROLE_TOOL;
  }
  return v1::ROLE_UNSPECIFIED;  // Unreachable: the switch covers every role.
}

}  // namespace

absl::StatusOr<std::vector<llm::Message>> ToMessages(
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages, absl::string_view field) {
  if (messages.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": the conversation needs at least one message"));
  }
  std::vector<llm::Message> out;
  out.reserve(messages.size());
  for (int i = 0; i < messages.size(); ++i) {
    const v1::ChatMessage& m = messages[i];
    std::optional<llm::Role> role = RoleFromProto(m.role());
    const std::string where = absl::StrCat(field, "[", i, "]");
    if (!role) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".role must be ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL"));
    }
    llm::Message message{*role, m.content()};
    if (m.tool_calls_size() > 0) {
      if (*role != llm::Role::kAssistant) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".tool_calls: only an assistant message makes tool calls"));
      }
      absl::StatusOr<std::vector<llm::ToolCall>> calls =
          ToToolCalls(m.tool_calls(), absl::StrCat(where, ".tool_calls"));
      if (!calls.ok()) return calls.status();
      message.tool_calls = *std::move(calls);
    }
    if (*role == llm::Role::kTool) {
      if (m.tool_call_id().empty() || m.tool_call_id().size() > kMaxToolIdBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".tool_call_id: a tool result names its call (1 to ",
                         kMaxToolIdBytes, " bytes)"));
      }
      message.tool_call_id = m.tool_call_id();
    } else if (!m.tool_call_id().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".tool_call_id: only a tool message names a call"));
    }
    if (m.images_size() > kMaxImagesPerMessage) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".images: ", m.images_size(),
                                                     " images, over ", kMaxImagesPerMessage));
    }
    for (int k = 0; k < m.images_size(); ++k) {
      const v1::Image& image = m.images(k);
      const std::string& url = image.url();
      const bool web = absl::StartsWith(url, "https://") || absl::StartsWith(url, "http://");
      if (!web && !absl::StartsWith(url, "data:image/")) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".images[", k, "].url must be an http(s) URL or a data:image/... URL"));
      }
      const std::string& detail = image.detail();
      if (!detail.empty() && detail != "auto" && detail != "low" && detail != "high") {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".images[", k, "].detail must be auto, low or high"));
      }
      message.images.push_back({url, detail});
    }
    // An assistant message that made tool calls may have no text, nor a
    // message that shows images; a tool may return nothing.
    if (m.content().empty() && message.tool_calls.empty() && message.images.empty() &&
        *role != llm::Role::kTool) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".content must not be empty"));
    }
    out.push_back(std::move(message));
  }
  return out;
}

namespace {
bool IsToolName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}
}  // namespace

absl::StatusOr<std::vector<llm::ToolCall>> ToToolCalls(
    const google::protobuf::RepeatedPtrField<v1::ToolCall>& calls, absl::string_view field) {
  if (calls.size() > kMaxTools) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", calls.size(), " tool calls, over ", kMaxTools));
  }
  std::vector<llm::ToolCall> out;
  out.reserve(calls.size());
  for (int i = 0; i < calls.size(); ++i) {
    const v1::ToolCall& c = calls[i];
    const std::string where = absl::StrCat(field, "[", i, "]");
    if (c.id().empty() || c.id().size() > kMaxToolIdBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".id must be 1 to ", kMaxToolIdBytes, " bytes"));
    }
    if (!IsToolName(c.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".name must be 1 to 64 of A-Z, a-z, 0-9, _ and -"));
    }
    if (c.arguments().size() > kMaxToolArgumentsBytes) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".arguments is ", c.arguments().size(),
                                                     " bytes, over ", kMaxToolArgumentsBytes));
    }
    out.push_back({c.id(), c.name(), c.arguments()});
  }
  return out;
}

absl::StatusOr<llm::ToolOptions> ToTools(const v1::ToolOptions& tools, absl::string_view field) {
  llm::ToolOptions out;
  if (tools.tools_size() > kMaxTools) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".tools: ", tools.tools_size(), " tools, over ", kMaxTools));
  }
  for (int i = 0; i < tools.tools_size(); ++i) {
    const v1::Tool& t = tools.tools(i);
    const std::string where = absl::StrCat(field, ".tools[", i, "]");
    if (!IsToolName(t.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".name must be 1 to 64 of A-Z, a-z, 0-9, _ and -"));
    }
    for (const llm::Tool& earlier : out.tools) {
      if (earlier.name == t.name()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".name: two tools are named ", t.name()));
      }
    }
    if (t.description().size() > kMaxToolSchemaBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".description is over ", kMaxToolSchemaBytes, " bytes"));
    }
    if (t.parameters_json().size() > kMaxToolSchemaBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".parameters_json is over ", kMaxToolSchemaBytes, " bytes"));
    }
    if (!t.parameters_json().empty()) {
      // Sent upstream as a JSON value: it must be one, an object, and shallow
      // enough for every parser on the way.
      absl::StatusOr<json::Json> schema = json::Parse(t.parameters_json(), 64);
      if (!schema.ok() || !schema->is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".parameters_json must be a JSON object (a JSON Schema)",
                         schema.ok() ? "" : absl::StrCat(": ", schema.status().message())));
      }
    }
    out.tools.push_back({t.name(), t.description(), t.parameters_json(), t.strict()});
  }
  const std::string& choice = tools.choice();
  if (!choice.empty() && choice != "auto" && choice != "none" && choice != "required") {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".choice must be auto, none or required (or choice_function set)"));
  }
  if (!tools.choice_function().empty()) {
    if (!choice.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".choice must be empty when choice_function is set"));
    }
    bool known = false;
    for (const llm::Tool& t : out.tools) known |= t.name == tools.choice_function();
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".choice_function names no tool of the request (",
                       tools.choice_function().size(), " bytes)"));
    }
  }
  if (out.tools.empty() && (!choice.empty() || tools.has_parallel_tool_calls())) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": a tool choice needs tools"));
  }
  out.choice = choice;
  out.choice_function = tools.choice_function();
  if (tools.has_parallel_tool_calls()) out.parallel_tool_calls = tools.parallel_tool_calls();
  return out;
}

void ToProto(const llm::ToolOptions& tools, v1::ToolOptions* out) {
  for (const llm::Tool& t : tools.tools) {
    v1::Tool* p = out->add_tools();
    p->set_name(t.name);
    p->set_description(t.description);
    p->set_parameters_json(t.parameters_json);
    p->set_strict(t.strict);
  }
  out->set_choice(tools.choice);
  out->set_choice_function(tools.choice_function);
  if (tools.parallel_tool_calls) out->set_parallel_tool_calls(*tools.parallel_tool_calls);
}

void ToProto(const std::vector<llm::ToolCall>& calls,
             google::protobuf::RepeatedPtrField<v1::ToolCall>* out) {
  for (const llm::ToolCall& c : calls) {
    v1::ToolCall* p = out->Add();
    p->set_id(c.id);
    p->set_name(c.name);
    p->set_arguments(c.arguments);
  }
}

absl::StatusOr<llm::SamplingParams> ToParams(const v1::SamplingParams& params,
                                             absl::string_view field) {
  if (params.has_max_tokens() && params.max_tokens() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".max_tokens must be > 0, got ", params.max_tokens()));
  }
  if (params.has_temperature() &&
      !(params.temperature() >= 0 && params.temperature() <= 2)) {  // Also rejects NaN.
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".temperature must be in [0, 2], got ", params.temperature()));
  }
  if (params.has_top_p() && !(params.top_p() > 0 && params.top_p() <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".top_p must be in (0, 1], got ", params.top_p()));
  }
  if (params.stop_size() > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".stop allows at most 4 sequences, got ", params.stop_size()));
  }
  for (int i = 0; i < params.stop_size(); ++i) {
    if (params.stop(i).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".stop[", i, "] must not be empty"));
    }
  }
  llm::SamplingParams p;
  if (params.has_temperature()) p.temperature = params.temperature();
  if (params.has_max_tokens()) p.max_tokens = params.max_tokens();
  if (params.has_top_p()) p.top_p = params.top_p();
  if (params.has_seed()) p.seed = params.seed();
  p.stop.assign(params.stop().begin(), params.stop().end());
  return p;
}

void ToProto(const std::vector<llm::Message>& messages,
             google::protobuf::RepeatedPtrField<v1::ChatMessage>* out) {
  out->Reserve(static_cast<int>(messages.size()));
  for (const llm::Message& m : messages) {
    v1::ChatMessage* msg = out->Add();
    msg->set_role(RoleToProto(m.role));
    msg->set_content(m.content);
    ToProto(m.tool_calls, msg->mutable_tool_calls());
    msg->set_tool_call_id(m.tool_call_id);
    for (const llm::Image& image : m.images) {
      v1::Image* out_image = msg->add_images();
      out_image->set_url(image.url);
      out_image->set_detail(image.detail);
    }
  }
}

void ToProto(const llm::SamplingParams& params, v1::SamplingParams* out) {
  if (params.temperature) out->set_temperature(*params.temperature);
  if (params.max_tokens) out->set_max_tokens(*params.max_tokens);
  if (params.top_p) out->set_top_p(*params.top_p);
  if (params.seed) out->set_seed(*params.seed);
  for (const std::string& s : params.stop) out->add_stop(s);
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProto(const llm::Completion& completion, absl::string_view model, v1::Completion* out) {
  out->set_model(std::string(model));
  out->set_finish_reason(completion.finish_reason);
  out->mutable_usage()->set_prompt_tokens(completion.usage.prompt_tokens);
  out->mutable_usage()->set_completion_tokens(completion.usage.completion_tokens);
  out->mutable_usage()->set_reasoning_tokens(completion.usage.reasoning_tokens);
  ToProto(completion.time_to_first_token, out->mutable_time_to_first_token());
  ToProto(completion.duration, out->mutable_duration());
  out->set_attempts(completion.attempts);
  ToProto(completion.tool_calls, out->mutable_tool_calls());
}

absl::StatusOr<llm::Completion> FromProto(const v1::Completion& completion) {
  llm::Completion c;
  absl::StatusOr<std::vector<llm::ToolCall>> calls =
      ToToolCalls(completion.tool_calls(), "completion.tool_calls");
  if (!calls.ok()) return calls.status();
  c.tool_calls = *std::move(calls);
  c.finish_reason = completion.finish_reason();
  c.usage.prompt_tokens = completion.usage().prompt_tokens();
  c.usage.completion_tokens = completion.usage().completion_tokens();
  c.usage.reasoning_tokens = completion.usage().reasoning_tokens();
  c.time_to_first_token = FromProto(completion.time_to_first_token());
  c.duration = FromProto(completion.duration());
  c.attempts = completion.attempts();
  return c;
}

}  // namespace moa::wire
