// Checks requests against the contract (proto/moa/v1) and converts its
// messages to and from the plain types of lib/llm.
#ifndef MOA_LIB_CONTRACT_CONTRACT_H_
#define MOA_LIB_CONTRACT_CONTRACT_H_

#include <google/protobuf/duration.pb.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_field.h"
#include "lib/llm/types.h"
#include "moa/v1/common.pb.h"

namespace moa::contract {

// INVALID_ARGUMENT naming the field: no messages, an unspecified role, empty
// content. `field` is the field's name in the request, e.g. "messages".
absl::Status ValidateMessages(const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages,
                              absl::string_view field = "messages");

// INVALID_ARGUMENT naming the field: max_tokens <= 0, temperature outside
// [0, 2], top_p outside (0, 1], more than 4 or empty stop sequences.
absl::Status ValidateParams(const v1::SamplingParams& params, absl::string_view field = "params");

std::vector<llm::Message> ToLlmMessages(
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages);
llm::SamplingParams ToLlmParams(const v1::SamplingParams& params);

void ToProto(const llm::Completion& completion, absl::string_view model, v1::Completion* out);
void ToProto(absl::Duration d, google::protobuf::Duration* out);
absl::Duration FromProto(const google::protobuf::Duration& d);

}  // namespace moa::contract

#endif  // MOA_LIB_CONTRACT_CONTRACT_H_
