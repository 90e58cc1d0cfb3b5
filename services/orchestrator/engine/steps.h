// The composable steps' own logic, free of calls and locks: their prompts
// (our wording, each replaceable by a pipeline's prompt_file), reading a
// ranking, shuffle and dropout from a seed, and the vote.
#ifndef MOA_SERVICES_ORCHESTRATOR_ENGINE_STEPS_H_
#define MOA_SERVICES_ORCHESTRATOR_ENGINE_STEPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lib/llm/types.h"
#include "lib/synthesis/synthesis.h"

namespace moa::orchestrator {

// Our instructions; a step's prompt_file replaces its one.
const std::string& DefaultRankInstruction();
const std::string& DefaultJudgeInstruction();
const std::string& DefaultRefineInstruction();

// Rank and judge: one user message holding the latest user query, the
// numbered texts ("Response 1:", ...) and the instruction (the step's, or
// ours when empty). Earlier turns are not repeated: the texts answer the
// latest query.
std::vector<llm::Message> CompareMessages(const std::vector<llm::Message>& conversation,
                                          const std::vector<synthesis::Reference>& texts,
                                          const std::string& instruction);

// Refine: the conversation, the draft as the model's own answer, then the
// instruction as the user's next message.
std::vector<llm::Message> RefineMessages(const std::vector<llm::Message>& conversation,
                                         const std::string& draft, const std::string& instruction);

// The ranking in a rank model's answer: the numbers 1..n in the order they
// first appear (others and repeats ignored), as 0-based indices, then every
// index it did not name in its old order. `named` is how many it named.
std::vector<size_t> ReadRanking(const std::string& answer, size_t n, size_t* named);

// A step's seed from the request's: different per step, the same for the
// same (request seed, step).
uint64_t StepSeed(uint64_t request_seed, int step);
// 0..n-1 in a seeded random order (Fisher-Yates on splitmix64: the same on
// every platform).
std::vector<size_t> ShuffledOrder(size_t n, uint64_t seed);
// Which of n texts a dropout keeps: each dropped with probability `rate`,
// then dropped ones given back, first ones first, until `min_keep` (or all
// n) are kept.
std::vector<bool> DropoutKeeps(size_t n, double rate, size_t min_keep, uint64_t seed);

// A text as the vote compares it: with `normalize`, lower-cased, runs of
// white space made one space, quotes, brackets and markup removed from both
// ends and a sentence's end (. ! ? , ; :) from the end; without, only
// white space trimmed.
std::string VoteKey(const std::string& text, bool normalize);

struct VoteResult {
  size_t winner = 0;  // Index of the first text of the winning key.
  // Each key with its count, in order of first appearance.
  std::vector<std::pair<std::string, int>> counts;
};
// The most frequent key wins; a tie goes to the key that appeared first in
// the texts' order (the step's model order, or the rank's). `texts` is not
// empty.
VoteResult Vote(const std::vector<synthesis::Reference>& texts, bool normalize);

// How alike two texts are for early stop: 1 when their vote keys
// (normalized) are equal; else the overlap of their word sets (words of the
// normalized texts, punctuation stripped from each end): shared words over
// words in either, 0 when either has none.
double Similarity(const std::string& a, const std::string& b);

struct Agreement {
  bool agreed = false;
  size_t answer = 0;  // The text most like the others (ties: the first).
  double lowest = 0;  // The least alike pair's similarity (1 for one text).
};
// Whether `texts` agree: at least `min_answers` of them, and every pair at
// least `similarity` alike (1: equal vote keys).
Agreement Agree(const std::vector<synthesis::Reference>& texts, double similarity,
                size_t min_answers);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ENGINE_STEPS_H_
