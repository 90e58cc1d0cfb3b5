// The Gemini API as an upstream: POST
// {base_url}/models/{model}:streamGenerateContent?alt=sse with the key in
// x-goog-api-key; contents and parts, systemInstruction, generationConfig,
// function declarations; each event a GenerateContentResponse with
// candidates and usageMetadata.
#ifndef MOA_LIB_LLM_GEMINI_DIALECT_H_
#define MOA_LIB_LLM_GEMINI_DIALECT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/llm/dialect.h"

namespace moa::llm {

// Gemini takes at most this many stop sequences.
inline constexpr size_t kGeminiMaxStopSequences = 5;

// The streamed request's body (the model is in the URL). INVALID_ARGUMENT
// names what the Gemini API cannot express: an image by http(s) URL (only
// data: URLs travel inline), parallel_tool_calls false, over 5 stop
// sequences, a seed outside 32 bits, a tool result whose call is not in the
// conversation, tool call arguments that are no JSON object.
absl::StatusOr<std::string> BuildGeminiBody(const ChatRequest& request,
                                            const ReasoningSettings& reasoning);

// Reads one stream's events (stateful: tool calls are numbered across
// events).
std::unique_ptr<StreamReader> NewGeminiStreamReader();

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_GEMINI_DIALECT_H_
