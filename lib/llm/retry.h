// When and how long to wait before retrying an upstream call.
#ifndef MOA_LIB_LLM_RETRY_H_
#define MOA_LIB_LLM_RETRY_H_

#include <algorithm>
#include <optional>
#include <random>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace moa::llm {

struct RetryPolicy {
  int max_attempts = 3;  // 1 disables retries.
  // The retry budget (see RetryBudget): tokens, and what a success earns.
  double budget_tokens = 10;
  double budget_token_ratio = 0.1;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(5);
  // A Retry-After longer than this is not waited for: the call fails instead.
  absl::Duration max_retry_after = absl::Seconds(20);
};

// Retry throttling, as gRPC's: the budget starts full with `max_tokens`;
// each failed attempt takes one token, each success gives back
// `token_ratio`; retries are allowed only while more than half the tokens
// are left. So when more than about token_ratio of the attempts fail, an
// upstream gets no retries at all and faults never become a retry storm.
// Not thread-safe (one per client event loop).
class RetryBudget {
 public:
  RetryBudget(double max_tokens, double token_ratio)
      : max_(max_tokens), ratio_(token_ratio), tokens_(max_tokens) {}
  void OnSuccess() { tokens_ = std::min(max_, tokens_ + ratio_); }
  void OnFailure() { tokens_ = std::max(0.0, tokens_ - 1); }
  bool AllowRetry() const { return tokens_ > max_ / 2; }
  double tokens() const { return tokens_; }

 private:
  const double max_;
  const double ratio_;
  double tokens_;
};

// Only overload and unavailability are worth another try; everything else
// (bad request, auth, deadline, malformed stream) would fail the same way.
bool IsRetryable(const absl::Status& status);

// The delay before attempt `next_attempt` (2 = first retry), or nullopt when
// no retry should be made: attempts used up, status not retryable, a
// Retry-After over the cap, or the delay would end past `deadline`.
// Exponential backoff with jitter in [cap/2, cap], so concurrent retries spread
// out; a Retry-After is honoured as a floor.
std::optional<absl::Duration> RetryDelay(const RetryPolicy& policy, int next_attempt,
                                         const absl::Status& status, absl::Time now,
                                         absl::Time deadline, std::mt19937_64& rng);

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_RETRY_H_
