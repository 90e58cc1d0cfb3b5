// CircuitBreaker: stops sending calls to a model that keeps failing, so no
// request waits on a model known to be down, then probes it back.
//
//  closed    calls go through; their ends are counted over a sliding window.
//            When at least `min_calls` ended in the window and more than
//            `failure_ratio` of them failed, the breaker opens.
//  open      every call fails at once (UNAVAILABLE "... cooling down until
//            T") for `cooldown`; then the breaker is half-open.
//  half-open one call (the probe) goes through; the rest fail at once. A
//            success closes the breaker, a failure opens it again.
// A 429 that says how long to wait (Retry-After) opens the breaker for that
// long, for every request, not just the one that got it.
//
// What counts as a failure: UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL and
// RESOURCE_EXHAUSTED, the statuses that say the model or its path is
// unwell. CANCELLED (the caller left, or cut a straggler) and the caller's
// own errors (INVALID_ARGUMENT, ...) count neither way.
#ifndef MOA_LIB_BASE_CIRCUIT_BREAKER_H_
#define MOA_LIB_BASE_CIRCUIT_BREAKER_H_

#include <array>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/base/clock.h"

namespace moa {

struct BreakerOptions {
  double failure_ratio = 0.5;
  int min_calls = 10;
  absl::Duration window = absl::Seconds(10);
  absl::Duration cooldown = absl::Seconds(5);
  // A Retry-After longer than this opens the breaker for this long only.
  absl::Duration max_retry_after_cooldown = absl::Seconds(60);
};

class CircuitBreaker {
 public:
  enum class State { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

  // `name` goes into the error ("model x is cooling down ..."). `on_change`
  // (may be empty) hears every state change, outside the breaker's lock.
  CircuitBreaker(std::string name, BreakerOptions options, const Clock* clock,
                 std::function<void(State)> on_change = {});

  // OK when a call may go (recorded as the probe when half-open), else
  // UNAVAILABLE naming the model, why and until when. Thread-safe.
  absl::Status Admit();
  // The end of a call Admit let through. Thread-safe.
  void Record(const absl::Status& status);

  // A refusal carries a retry delay (SetRetryAfter): the rest of the
  // cooldown when open, this while a probe is in flight.
  static constexpr absl::Duration kProbeWait = absl::Milliseconds(250);

  State state() const;

 private:
  static constexpr int kBuckets = 10;
  struct Bucket {
    int64_t index = -1;  // Which window slice this bucket counts.
    int calls = 0;
    int failures = 0;
  };
  void OpenLocked(absl::Time now, absl::Duration for_how_long, std::string why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResetWindowLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(State from, State to);

  const std::string name_;
  const BreakerOptions options_;
  const Clock* const clock_;
  const std::function<void(State)> on_change_;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kClosed;
  std::array<Bucket, kBuckets> buckets_ ABSL_GUARDED_BY(mu_);
  absl::Time open_until_ ABSL_GUARDED_BY(mu_);
  std::string why_ ABSL_GUARDED_BY(mu_);
  bool probe_in_flight_ ABSL_GUARDED_BY(mu_) = false;
};

absl::string_view BreakerStateName(CircuitBreaker::State state);

// UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL or RESOURCE_EXHAUSTED: the model
// or the path to it failed, so another attempt or another model may answer.
// Any other error is the request's own (another model would fail the same
// way) or a cancel. Breakers count these; the orchestrator retries on them.
bool IsModelFailure(const absl::Status& status);

// Whether `status` is a breaker's refusal (Admit's): no call was made, so it
// is no answer of the model's. A proposer does not pass it on as the model's
// failure: the orchestrator's breaker does not count it again, and a retry
// after its Retry-After costs the model nothing (no retry-budget token).
bool IsBreakerRefusal(const absl::Status& status);

}  // namespace moa

#endif  // MOA_LIB_BASE_CIRCUIT_BREAKER_H_
