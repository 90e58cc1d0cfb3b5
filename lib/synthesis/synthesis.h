// The Mixture-of-Agents synthesis prompt: pure functions, no I/O.
#ifndef MOA_LIB_SYNTHESIS_SYNTHESIS_H_
#define MOA_LIB_SYNTHESIS_SYNTHESIS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/llm/types.h"

namespace moa::synthesis {

struct Reference {
  std::string model;     // Who wrote it (not shown to the model).
  std::string text;      // Inserted as is.
  bool partial = false;  // Still being written: `text` is its beginning.
};

// Staircase streaming gives the aggregator proposals that are still being
// written: each such reference starts with kPartialMark, and the
// instruction gains kPartialNote.
inline constexpr char kPartialMark[] = "(unfinished) ";
inline constexpr char kPartialNote[] =
    "Responses marked (unfinished) are still being written; write only what they already "
    "support, your answer will be continued as they grow.";

// Added to the instruction when the synthesizing model is given the
// client's tools: the panel answered without them.
inline constexpr char kToolsNote[] =
    "The responses were written without access to the tools you are given. When the query "
    "needs a tool, call it yourself; otherwise answer.";

// Our default instruction: weigh the responses critically, then write one
// refined answer rather than copying them.
const std::string& DefaultInstruction();

// The synthesis block: instruction (plus kPartialNote when a reference is
// partial), a blank line, "Responses from models:", then "\n{i}. {text}"
// for each reference in order (1-based; kPartialMark before a partial text),
// then, when there is one, a judge's analysis after kAnalysisHeading.
inline constexpr char kAnalysisHeading[] =
    "An analysis of these responses (where they agree, where they contradict each other, and "
    "what only one of them says):";
std::string SynthesisBlock(const std::string& instruction, const std::vector<Reference>& refs,
                           const std::string& analysis = "");

// The conversation with the synthesis block: appended after a blank line to
// an existing first system message, or inserted first as a new system
// message. Other messages are unchanged. With no references the
// conversation is returned as is.
std::vector<llm::Message> WithReferences(const std::vector<llm::Message>& conversation,
                                         const std::vector<Reference>& refs,
                                         const std::string& instruction,
                                         const std::string& analysis = "");

// Reads an instruction template file (the whole file, trailing newlines
// trimmed). NOT_FOUND when unreadable, INVALID_ARGUMENT when empty.
absl::StatusOr<std::string> LoadInstruction(const std::string& path);

}  // namespace moa::synthesis

#endif  // MOA_LIB_SYNTHESIS_SYNTHESIS_H_
