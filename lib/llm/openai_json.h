// JSON of the OpenAI chat-completions API: the request body we send and the
// stream chunks and error bodies we receive.
#ifndef MOA_LIB_LLM_OPENAI_JSON_H_
#define MOA_LIB_LLM_OPENAI_JSON_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/base/json.h"
#include "lib/llm/dialect.h"
#include "lib/llm/types.h"

namespace moa::llm {

// Body of POST /chat/completions with stream=true and
// stream_options.include_usage=true; unset params are left out. A
// reasoning effort is sent as reasoning_effort, and max_tokens then as
// max_completion_tokens.
std::string BuildChatCompletionBody(absl::string_view upstream_model, const ChatRequest& request,
                                    const ReasoningSettings& reasoning = {});

// Parses a data payload (not "[DONE]"). Malformed JSON is INTERNAL.
// Every upstream token takes this path, so the common event (content and/or
// finish_reason, no usage or error) is read by a scanner that builds no tree;
// anything else is left to a full JSON parse.
absl::StatusOr<StreamChunk> ParseStreamChunk(absl::string_view data);

// The two readers ParseStreamChunk combines, exposed for the differential
// fuzz target, tests and the parse benchmark. ScanCommonStreamChunk returns
// nullopt for any event it does not fully understand (usage, error,
// duplicate keys, escapes in keys, exponents, deep nesting, invalid text...);
// when it returns a chunk, ParseStreamChunkTree returns the same one.
std::optional<StreamChunk> ScanCommonStreamChunk(absl::string_view data);
absl::StatusOr<StreamChunk> ParseStreamChunkTree(absl::string_view data);

// The message of an OpenAI-style error body {"error": {"message": ...}}, or a
// printable prefix of the raw body when it is not one.
// Reads a delta's tool_calls list into `out`; INTERNAL naming what is wrong.
absl::Status ReadToolCallFragments(const moa::json::Json& calls,
                                   std::vector<ToolCallFragment>* out);

std::string ErrorMessageFromBody(absl::string_view body);

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_OPENAI_JSON_H_
