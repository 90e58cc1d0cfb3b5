#include "lib/synthesis/synthesis.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace moa::synthesis {

const std::string& DefaultInstruction() {
  static const std::string kInstruction =
      "Several models have answered the latest user query; their responses are listed below. "
      "Weigh them critically: any of them may be biased, incomplete or simply wrong. Use what is "
      "correct and useful in them and write one refined, accurate, comprehensive and "
      "well-structured answer of your own. Do not copy the responses, do not refer to them or to "
      "the models, and do not mention that you were given them.";
  return kInstruction;
}

std::string SynthesisBlock(const std::string& instruction, const std::vector<Reference>& refs,
                           const std::string& analysis) {
  std::string block = instruction;
  bool any_partial = false;
  for (const Reference& r : refs) any_partial |= r.partial;
  if (any_partial) absl::StrAppend(&block, " ", kPartialNote);
  absl::StrAppend(&block, "\n\nResponses from models:");
  for (size_t i = 0; i < refs.size(); ++i) {
    absl::StrAppend(&block, "\n", i + 1, ". ", refs[i].partial ? kPartialMark : "", refs[i].text);
  }
  if (!analysis.empty()) absl::StrAppend(&block, "\n\n", kAnalysisHeading, "\n", analysis);
  return block;
}

std::vector<llm::Message> WithReferences(const std::vector<llm::Message>& conversation,
                                         const std::vector<Reference>& refs,
                                         const std::string& instruction,
                                         const std::string& analysis) {
  if (refs.empty()) return conversation;
  std::string block = SynthesisBlock(instruction, refs, analysis);
  std::vector<llm::Message> out = conversation;
  for (llm::Message& m : out) {
    if (m.role == llm::Role::kSystem) {
      m.content = absl::StrCat(m.content, "\n\n", block);
      return out;
    }
  }
  out.insert(out.begin(), llm::Message{llm::Role::kSystem, std::move(block)});
  return out;
}

absl::StatusOr<std::string> LoadInstruction(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read synthesis prompt file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("synthesis prompt file ", path, " is empty"));
  }
  // The cluster's message limits leave 1 MiB of room for the instruction.
  constexpr size_t kMaxInstructionBytes = 256 << 10;
  if (text.size() > kMaxInstructionBytes) {
    return absl::InvalidArgumentError(absl::StrCat("synthesis prompt file ", path, " is ",
                                                   text.size(), " bytes; at most ",
                                                   kMaxInstructionBytes, " are allowed"));
  }
  return text;
}

}  // namespace moa::synthesis
