// The wire edge of the cluster: checks messages of proto/moa/v1 and converts
// them to and from the cluster's own types (lib/llm), once, where they enter
// or leave a process. Nothing inside the cluster passes a proto message to
// an interface of ours except the events a MoaCall streams, whose shape is
// the Chat stream's.
#ifndef MOA_LIB_WIRE_WIRE_H_
#define MOA_LIB_WIRE_WIRE_H_

#include <google/protobuf/duration.pb.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_field.h"
#include "lib/llm/types.h"
#include "moa/v1/common.pb.h"

namespace moa::wire {

// Bounds of tools and tool calls, the same at every door.
inline constexpr int kMaxTools = 128;                      // Tools, or calls in one message.
inline constexpr size_t kMaxToolIdBytes = 256;             // A call's id.
inline constexpr size_t kMaxToolSchemaBytes = 256 << 10;   // A tool's schema or description.
inline constexpr size_t kMaxToolArgumentsBytes = 1 << 20;  // One call's arguments.
inline constexpr int kMaxImagesPerMessage = 16;

// The conversation, checked: INVALID_ARGUMENT naming the field for no
// messages, a role that is unspecified or not one of ours (proto3 enums
// keep unknown numbers), empty content (but on an assistant message with
// tool calls, or a tool result), tool calls outside an assistant message
// or over their bounds, a tool result without its call's id. `field` is the field's name in
// the request, e.g. "messages".
absl::StatusOr<std::vector<llm::Message>> ToMessages(
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages,
    absl::string_view field = "messages");

// Tool calls, checked: at most kMaxTools, ids of 1 to kMaxToolIdBytes,
// names as OpenAI allows, arguments within kMaxToolArgumentsBytes.
absl::StatusOr<std::vector<llm::ToolCall>> ToToolCalls(
    const google::protobuf::RepeatedPtrField<v1::ToolCall>& calls, absl::string_view field);

// The client's tools, checked: names, no two alike, schemas JSON objects,
// a choice that is one of ours and names a tool; no choice without tools.
absl::StatusOr<llm::ToolOptions> ToTools(const v1::ToolOptions& tools,
                                         absl::string_view field = "tools");
void ToProto(const llm::ToolOptions& tools, v1::ToolOptions* out);
void ToProto(const std::vector<llm::ToolCall>& calls,
             google::protobuf::RepeatedPtrField<v1::ToolCall>* out);

// Sampling parameters, checked: INVALID_ARGUMENT naming the field for
// max_tokens <= 0, temperature outside [0, 2], top_p outside (0, 1], more
// than 4 or empty stop sequences.
absl::StatusOr<llm::SamplingParams> ToParams(const v1::SamplingParams& params,
                                             absl::string_view field = "params");

void ToProto(const std::vector<llm::Message>& messages,
             google::protobuf::RepeatedPtrField<v1::ChatMessage>* out);
void ToProto(const llm::SamplingParams& params, v1::SamplingParams* out);
void ToProto(const llm::Completion& completion, absl::string_view model, v1::Completion* out);
// The model is dropped: the caller knows whom it asked. Tool calls are
// checked as ToToolCalls does (a peer's bytes).
absl::StatusOr<llm::Completion> FromProto(const v1::Completion& completion);

void ToProto(absl::Duration d, google::protobuf::Duration* out);
absl::Duration FromProto(const google::protobuf::Duration& d);

}  // namespace moa::wire

#endif  // MOA_LIB_WIRE_WIRE_H_
