#include "lib/wire/wire.h"

#include <cmath>

#include "absl/strings/str_cat.h"

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
    if (!role) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "].role must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT"));
    }
    if (m.content().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "].content must not be empty"));
    }
    out.push_back({*role, m.content()});
  }
  return out;
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
  ToProto(completion.time_to_first_token, out->mutable_time_to_first_token());
  ToProto(completion.duration, out->mutable_duration());
  out->set_attempts(completion.attempts);
}

llm::Completion FromProto(const v1::Completion& completion) {
  llm::Completion c;
  c.finish_reason = completion.finish_reason();
  c.usage.prompt_tokens = completion.usage().prompt_tokens();
  c.usage.completion_tokens = completion.usage().completion_tokens();
  c.time_to_first_token = FromProto(completion.time_to_first_token());
  c.duration = FromProto(completion.duration());
  c.attempts = completion.attempts();
  return c;
}

}  // namespace moa::wire
