#include "lib/base/circuit_breaker.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "lib/base/retry_after.h"

namespace moa {
namespace {

constexpr char kRefusalPayload[] = "type.moa/breaker_refusal";

bool IsNeutral(const absl::Status& status) { return !status.ok() && !IsModelFailure(status); }

}  // namespace

bool IsModelFailure(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

bool IsBreakerRefusal(const absl::Status& status) {
  return status.GetPayload(kRefusalPayload).has_value();
}

absl::string_view BreakerStateName(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half-open";
  }
  return "closed";
}

CircuitBreaker::CircuitBreaker(std::string name, BreakerOptions options, const Clock* clock,
                               std::function<void(State)> on_change)
    : name_(std::move(name)), options_(options), clock_(clock), on_change_(std::move(on_change)) {}

absl::Status CircuitBreaker::Admit() {
  State from, to;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    from = state_;
    const absl::Time now = clock_->Now();
    if (state_ == State::kOpen && now >= open_until_) state_ = State::kHalfOpen;
    if (state_ == State::kHalfOpen && !probe_in_flight_) {
      probe_in_flight_ = true;  // This call is the probe.
    } else if (state_ == State::kOpen) {
      refused = absl::UnavailableError(absl::StrCat(
          name_, " is cooling down until ",
          absl::FormatTime("%H:%M:%E3S", open_until_, absl::UTCTimeZone()), " UTC (", why_, ")"));
      // A caller that asks again waits for the cooldown, not less.
      SetRetryAfter(refused, open_until_ - now);
    } else if (state_ == State::kHalfOpen) {
      refused = absl::UnavailableError(absl::StrCat(name_, " is being probed after a cooldown (",
                                                    why_, "): one call until it answers"));
      SetRetryAfter(refused, kProbeWait);
    }
    if (!refused.ok()) refused.SetPayload(kRefusalPayload, absl::Cord("1"));
    to = state_;
  }
  Notify(from, to);
  return refused;
}

void CircuitBreaker::Record(const absl::Status& status) {
  State from, to;
  {
    absl::MutexLock lock(&mu_);
    from = state_;
    const absl::Time now = clock_->Now();
    if (state_ == State::kHalfOpen && probe_in_flight_) {
      probe_in_flight_ = false;
      if (status.ok()) {
        state_ = State::kClosed;
        ResetWindowLocked();
      } else if (IsModelFailure(status)) {
        OpenLocked(
            now, options_.cooldown,
            absl::StrCat("its probe call failed: ", absl::StatusCodeToString(status.code())));
      }
      // A neutral end lets the next call probe.
    } else if (state_ == State::kClosed && !IsNeutral(status)) {
      const int64_t slice = absl::ToInt64Nanoseconds(options_.window) / kBuckets;
      const int64_t index = absl::ToUnixNanos(now) / std::max<int64_t>(slice, 1);
      Bucket& b = buckets_[static_cast<size_t>(index % kBuckets)];
      if (b.index != index) b = Bucket{index, 0, 0};
      ++b.calls;
      if (!status.ok()) ++b.failures;
      int calls = 0, failures = 0;
      for (const Bucket& x : buckets_) {
        if (x.index > index - kBuckets) {
          calls += x.calls;
          failures += x.failures;
        }
      }
      if (auto retry_after = GetRetryAfter(status);
          retry_after && status.code() == absl::StatusCode::kResourceExhausted) {
        OpenLocked(now, std::min(*retry_after, options_.max_retry_after_cooldown),
                   "the upstream asked to retry after " + absl::FormatDuration(*retry_after));
      } else if (calls >= options_.min_calls &&
                 failures > options_.failure_ratio * static_cast<double>(calls)) {
        OpenLocked(now, options_.cooldown,
                   absl::StrCat(failures, " of the last ", calls, " calls failed"));
      }
    }
    to = state_;
  }
  Notify(from, to);
}

CircuitBreaker::State CircuitBreaker::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void CircuitBreaker::OpenLocked(absl::Time now, absl::Duration for_how_long, std::string why) {
  state_ = State::kOpen;
  open_until_ = now + for_how_long;
  why_ = std::move(why);
  probe_in_flight_ = false;
  ResetWindowLocked();
}

void CircuitBreaker::ResetWindowLocked() { buckets_.fill(Bucket{}); }

void CircuitBreaker::Notify(State from, State to) {
  if (from != to && on_change_) on_change_(to);
}

}  // namespace moa
