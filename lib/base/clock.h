// Clock: where every timeout, deadline, retry and latency measurement of the
// cluster reads the time and sets its timers, so timing logic can be tested
// on simulated time.
//
// Production code takes a `Clock*` (defaulting to Clock::Real()) and never
// calls absl::Now() itself. Times handed to gRPC or to the kernel (a gRPC
// deadline, an alarm) stay real: they are converted at that edge.
#ifndef MOA_LIB_BASE_CLOCK_H_
#define MOA_LIB_BASE_CLOCK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace moa {

class Clock {
 public:
  using TimerId = uint64_t;

  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // Runs `fn` once, at `when` or soon after, on the clock's own timer
  // thread (never inside RunAt). `fn` must not block. Thread-safe.
  virtual TimerId RunAt(absl::Time when, std::function<void()> fn) const = 0;
  // The timer will not run if it has not started yet. Idempotent; an
  // unknown or finished id is ignored.
  virtual void Cancel(TimerId id) const = 0;

  // The wall clock, with one timer thread for the process (started on the
  // first RunAt); lives for the whole process.
  static const Clock* Real();
};

// Timers kept in time order: the one structure both clocks use.
class TimerQueue {
 public:
  Clock::TimerId Add(absl::Time when, std::function<void()> fn);
  void Cancel(Clock::TimerId id);
  // Removes and returns the earliest timer due at `now`, if any.
  bool PopDue(absl::Time now, std::function<void()>* fn);
  // The earliest time a timer is due; InfiniteFuture when none.
  absl::Time Next() const;
  size_t size() const { return timers_.size(); }

 private:
  Clock::TimerId next_id_ = 1;
  std::map<std::pair<absl::Time, Clock::TimerId>, std::function<void()>> timers_;
  std::map<Clock::TimerId, absl::Time> when_;
};

// A clock that only moves when told to; timers due run inside Advance() and
// Set(), on the caller's thread, in time order. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}

  absl::Time Now() const override;
  TimerId RunAt(absl::Time when, std::function<void()> fn) const override;
  void Cancel(TimerId id) const override;

  void Advance(absl::Duration d);
  void Set(absl::Time t);
  // Timers not yet run.
  size_t pending_timers() const;

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  mutable TimerQueue timers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa

#endif  // MOA_LIB_BASE_CLOCK_H_
