#include "lib/llm/retry.h"

#include <algorithm>

#include "lib/base/retry_after.h"

namespace moa::llm {

bool IsRetryable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kResourceExhausted;
}

std::optional<absl::Duration> RetryDelay(const RetryPolicy& policy, int next_attempt,
                                         const absl::Status& status, absl::Time now,
                                         absl::Time deadline, std::mt19937_64& rng) {
  if (next_attempt > policy.max_attempts || !IsRetryable(status)) return std::nullopt;
  absl::Duration cap = policy.initial_backoff;
  for (int i = 2; i < next_attempt && cap < policy.max_backoff; ++i) cap *= 2;
  cap = std::min(cap, policy.max_backoff);
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  absl::Duration delay = cap * jitter(rng);
  if (auto retry_after = GetRetryAfter(status)) {
    if (*retry_after > policy.max_retry_after) return std::nullopt;
    delay = std::max(delay, *retry_after);
  }
  if (now + delay >= deadline) return std::nullopt;
  return delay;
}

}  // namespace moa::llm
