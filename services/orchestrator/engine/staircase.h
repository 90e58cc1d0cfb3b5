// Staircase streaming of the final answer: the schedule of chunks and the
// references each step is given.
//
// The aggregator's step j sees each proposal's text up to the end of chunk
// j (chunk 1 is first_chunk_tokens, chunk j+1 is growth x chunk j) and the
// answer so far, and writes the next chunk of the answer (at most chunk j's
// size), which streams to the client at once; the next step continues that
// answer. A step starts once the previous one ended and the layer's quorum
// (its policy's min_proposals) of the proposals still in the running reached
// the chunk's end or finished; the others are given what they have. When
// every proposal has finished (or was left out), or at max_steps, the next
// step is the last: it gets every answer whole and finishes the answer.
//
// Tokens are estimated as kBytesPerToken bytes of text (the usual ratio for
// English with OpenAI-style tokenizers): the orchestrator sees text, not
// the upstream's tokens. A chunk's cut never splits a UTF-8 character.
#ifndef MOA_SERVICES_ORCHESTRATOR_ENGINE_STAIRCASE_H_
#define MOA_SERVICES_ORCHESTRATOR_ENGINE_STAIRCASE_H_

#include <cstddef>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/base/utf8.h"
#include "lib/config/cluster_config.h"
#include "moa/v1/orchestrator.pb.h"

namespace moa::orchestrator {

inline constexpr int kDefaultFirstChunkTokens = 16;
inline constexpr double kDefaultChunkGrowth = 2.0;
inline constexpr int kDefaultMaxSteps = 6;
inline constexpr size_t kBytesPerToken = 4;

struct StaircaseSchedule {
  int first_chunk_tokens = kDefaultFirstChunkTokens;
  double growth = kDefaultChunkGrowth;
  int max_steps = kDefaultMaxSteps;

  // Size of chunk `step` (1-based) in tokens.
  size_t ChunkTokens(int step) const;
  // Where chunk `step` ends in a proposal, in bytes: the sum of chunks
  // 1..step, times kBytesPerToken.
  size_t ChunkEndBytes(int step) const;
};

// The request's override, checked: INVALID_ARGUMENT naming the field.
absl::StatusOr<config::StreamingConfig> StreamingFromProto(const v1::StreamingOptions& options,
                                                           absl::string_view field = "streaming");

// The pipeline's streaming with `over`'s set fields on top; nullopt means
// normal streaming.
std::optional<StaircaseSchedule> ResolveStaircase(const config::StreamingConfig& pipeline,
                                                  const config::StreamingConfig& over);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ENGINE_STAIRCASE_H_
