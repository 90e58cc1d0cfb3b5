#include "services/orchestrator/engine/staircase.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace moa::orchestrator {

size_t StaircaseSchedule::ChunkTokens(int step) const {
  // Bounded: growth <= 8 and steps <= 32 would overflow a double's exact
  // range long after any real answer; cap a chunk at 1M tokens.
  double tokens = first_chunk_tokens * std::pow(growth, std::max(step, 1) - 1);
  return static_cast<size_t>(std::min(std::round(tokens), 1e6));
}

size_t StaircaseSchedule::ChunkEndBytes(int step) const {
  size_t tokens = 0;
  for (int j = 1; j <= step; ++j) tokens += ChunkTokens(j);
  return tokens * kBytesPerToken;
}

absl::StatusOr<config::StreamingConfig> StreamingFromProto(const v1::StreamingOptions& options,
                                                           absl::string_view field) {
  config::StreamingConfig c;
  switch (options.mode()) {
    case v1::StreamingOptions::MODE_UNSPECIFIED:
      break;
    case v1::StreamingOptions::NORMAL:
      c.mode = config::StreamingConfig::Mode::kNormal;
      break;
    case v1::StreamingOptions::STAIRCASE:
      c.mode = config::StreamingConfig::Mode::kStaircase;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".mode: unknown mode ", static_cast<int>(options.mode())));
  }
  if (options.has_first_chunk_tokens()) {
    if (options.first_chunk_tokens() < 1 || options.first_chunk_tokens() > 4096) {
      return absl::InvalidArgumentError(absl::StrCat(field,
                                                     ".first_chunk_tokens must be in [1, "
                                                     "4096], got ",
                                                     options.first_chunk_tokens()));
    }
    c.first_chunk_tokens = options.first_chunk_tokens();
  }
  if (options.has_growth()) {
    // Written so that NaN fails too.
    if (!(options.growth() >= 1 && options.growth() <= 8)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".growth must be in [1, 8], got ", options.growth()));
    }
    c.growth = options.growth();
  }
  if (options.has_max_steps()) {
    if (options.max_steps() < 2 || options.max_steps() > 32) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".max_steps must be in [2, 32], got ", options.max_steps()));
    }
    c.max_steps = options.max_steps();
  }
  return c;
}

std::optional<StaircaseSchedule> ResolveStaircase(const config::StreamingConfig& pipeline,
                                                  const config::StreamingConfig& over) {
  auto pick = [](const auto& a, const auto& b) { return b ? b : a; };
  auto mode = pick(pipeline.mode, over.mode);
  if (mode != config::StreamingConfig::Mode::kStaircase) return std::nullopt;
  StaircaseSchedule s;
  s.first_chunk_tokens =
      pick(pipeline.first_chunk_tokens, over.first_chunk_tokens).value_or(s.first_chunk_tokens);
  s.growth = pick(pipeline.growth, over.growth).value_or(s.growth);
  s.max_steps = pick(pipeline.max_steps, over.max_steps).value_or(s.max_steps);
  return s;
}

}  // namespace moa::orchestrator
