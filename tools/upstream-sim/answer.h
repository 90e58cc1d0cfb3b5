// Deterministic simulated answers: the same (model, messages) always gives
// the same text, which names the model and, when the system message carries
// numbered reference responses, says how many it saw.
#ifndef MOA_TOOLS_UPSTREAM_SIM_ANSWER_H_
#define MOA_TOOLS_UPSTREAM_SIM_ANSWER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "lib/llm/types.h"

namespace moa::sim {

struct SimMessage {
  std::string role;
  std::string content;
};

// Number of references "\n1. ", "\n2. ", ... after "Responses from models:"
// in the first system message; 0 when there is none.
int CountReferences(const std::vector<SimMessage>& messages);

// Whether the question (the last user message) falls in `share` of all
// questions: a stable hash, the same for every model and run.
bool QuestionInShare(const std::vector<SimMessage>& messages, double share);

// The answer as tokens (each a word with its trailing space), `length` long.
std::vector<std::string> AnswerTokens(absl::string_view model,
                                      const std::vector<SimMessage>& messages, int length);

// The instruction of the portable way to continue a cut answer (a user
// message that starts with it, followed by the partial answer): the text
// the cluster's proposers send.
inline constexpr absl::string_view kContinueInstruction = llm::kContinueInstruction;

// A request to continue a partial answer: a trailing assistant message
// (prefill), or a trailing user message with kContinueInstruction.
struct Continuation {
  enum class Kind { kNone, kPrefill, kInstruction } kind = Kind::kNone;
  std::string prefix;                 // The answer so far.
  std::vector<SimMessage> preceding;  // The conversation before it.
};
Continuation FindContinuation(const std::vector<SimMessage>& messages);
const char* ContinuationName(Continuation::Kind kind);

// The tokens of `tokens` after the text `prefix` (which may end inside a
// token); all of them when the text does not start with the prefix.
std::vector<std::string> TokensAfter(const std::vector<std::string>& tokens,
                                     absl::string_view prefix);

// A rough token count of the prompt (words plus 4 per message).
int PromptTokens(const std::vector<SimMessage>& messages);

}  // namespace moa::sim

#endif  // MOA_TOOLS_UPSTREAM_SIM_ANSWER_H_
