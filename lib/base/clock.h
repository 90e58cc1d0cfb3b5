// Clock: where every timeout, deadline, retry and latency measurement of the
// cluster reads the time, so timing logic can be tested on simulated time.
//
// Production code takes a `const Clock*` (defaulting to Clock::Real()) and
// never calls absl::Now() itself. Times handed to gRPC or to the kernel
// (a gRPC deadline, an alarm) stay real: they are converted at that edge.
#ifndef MOA_LIB_BASE_CLOCK_H_
#define MOA_LIB_BASE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace moa {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // The wall clock; lives for the whole process.
  static const Clock* Real();
};

// A clock that only moves when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa

#endif  // MOA_LIB_BASE_CLOCK_H_
