// The simulator speaking the Gemini API (POST
// /v1beta/models/{model}:streamGenerateContent?alt=sse and
// :generateContent): reading a request into the simulator's terms, and
// writing its answer as that API's responses. Pure functions.
#ifndef MOA_TOOLS_UPSTREAM_SIM_SIM_GEMINI_H_
#define MOA_TOOLS_UPSTREAM_SIM_SIM_GEMINI_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/upstream-sim/sim_anthropic.h"
#include "tools/upstream-sim/sim_request.h"

namespace moa::sim::gemini {

// Parses a generateContent request for `model` (from the path);
// INVALID_ARGUMENT names what is wrong.
absl::StatusOr<ChatRequestInfo> Parse(absl::string_view body, absl::string_view model, bool stream);

// The first chunk: the thinking's text as a thought part, when the request
// asked for it (includeThoughts) and the model thinks; else empty.
std::string StreamStart(const AnswerFacts& facts);
// One streamed text token as a response chunk (empty for a tool call: its
// arguments come whole in the last chunk, as Gemini sends calls).
std::string StreamToken(const AnswerFacts& facts, const std::string& token);
// The last chunk: finishReason and usageMetadata, and the call whose
// arguments are `text` when the answer is one.
std::string StreamEnd(const AnswerFacts& facts, const std::string& text,
                      absl::string_view finish_reason, int completion_tokens);
std::string Whole(const AnswerFacts& facts, const std::string& text,
                  absl::string_view finish_reason, int completion_tokens);
// {"error":{"code":..., "message":..., "status":...}}.
std::string ErrorBody(int code, absl::string_view status, absl::string_view message);

}  // namespace moa::sim::gemini

#endif  // MOA_TOOLS_UPSTREAM_SIM_SIM_GEMINI_H_
