// Deterministic simulated answers: the same (model, messages) always gives
// the same text, which names the model and, when the system message carries
// numbered reference responses, says how many it saw.
#ifndef MOA_TOOLS_UPSTREAM_SIM_ANSWER_H_
#define MOA_TOOLS_UPSTREAM_SIM_ANSWER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moa::sim {

struct SimMessage {
  std::string role;
  std::string content;
};

// Number of references "\n1. ", "\n2. ", ... after "Responses from models:"
// in the first system message; 0 when there is none.
int CountReferences(const std::vector<SimMessage>& messages);

// The answer as tokens (each a word with its trailing space), `length` long.
std::vector<std::string> AnswerTokens(absl::string_view model,
                                      const std::vector<SimMessage>& messages, int length);

// A rough token count of the prompt (words plus 4 per message).
int PromptTokens(const std::vector<SimMessage>& messages);

}  // namespace moa::sim

#endif  // MOA_TOOLS_UPSTREAM_SIM_ANSWER_H_
