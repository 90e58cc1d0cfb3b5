// The Anthropic Messages API as an upstream: POST {base_url}/messages with
// x-api-key and anthropic-version, the system prompt as its own field,
// content blocks, and the typed event stream (message_start,
// content_block_*, message_delta, message_stop, ping, error).
#ifndef MOA_LIB_LLM_ANTHROPIC_DIALECT_H_
#define MOA_LIB_LLM_ANTHROPIC_DIALECT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/llm/dialect.h"

namespace moa::llm {

// The API version every call names (the one the Messages API has had since
// 2023; new features come as fields, not versions).
inline constexpr char kAnthropicVersion[] = "2023-06-01";
// max_tokens is required by the API; a request that sets none gets this
// (plus the thinking budget when thinking is on).
inline constexpr int32_t kAnthropicDefaultMaxTokens = 4096;

// The streamed request's body. INVALID_ARGUMENT names what the Messages API
// cannot express: a seed, a temperature over 1, sampling settings with
// thinking on, a max_tokens not over the thinking budget, tool call
// arguments that are no JSON object, an image in an assistant message.
absl::StatusOr<std::string> BuildAnthropicBody(absl::string_view model, const ChatRequest& request,
                                               const ReasoningSettings& reasoning);

// Reads one stream's events (stateful: usage from message_start, content
// block indexes to tool calls).
std::unique_ptr<StreamReader> NewAnthropicStreamReader();

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_ANTHROPIC_DIALECT_H_
