#include "lib/base/clock.h"

#include <thread>

namespace moa {

Clock::TimerId TimerQueue::Add(absl::Time when, std::function<void()> fn) {
  Clock::TimerId id = next_id_++;
  timers_.emplace(std::make_pair(when, id), std::move(fn));
  when_.emplace(id, when);
  return id;
}

void TimerQueue::Cancel(Clock::TimerId id) {
  auto it = when_.find(id);
  if (it == when_.end()) return;
  timers_.erase({it->second, id});
  when_.erase(it);
}

bool TimerQueue::PopDue(absl::Time now, std::function<void()>* fn) {
  if (timers_.empty() || timers_.begin()->first.first > now) return false;
  auto first = timers_.begin();
  *fn = std::move(first->second);
  when_.erase(first->first.second);
  timers_.erase(first);
  return true;
}

absl::Time TimerQueue::Next() const {
  return timers_.empty() ? absl::InfiniteFuture() : timers_.begin()->first.first;
}

namespace {

// The wall clock and its one timer thread, which sleeps until the earliest
// timer is due or a new one comes first.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }

  TimerId RunAt(absl::Time when, std::function<void()> fn) const override {
    absl::MutexLock lock(&mu_);
    if (!started_) {
      started_ = true;
      std::thread([this] { Loop(); }).detach();  // Lives as long as the process.
    }
    return timers_.Add(when, std::move(fn));
  }

  void Cancel(TimerId id) const override {
    absl::MutexLock lock(&mu_);
    timers_.Cancel(id);
  }

 private:
  void Loop() const {
    while (true) {
      std::function<void()> fn;
      {
        absl::MutexLock lock(&mu_);
        // Wakes when a sooner timer is added, or when the earliest is due.
        absl::Time next = timers_.Next();
        auto sooner = [this, next]()
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return timers_.Next() < next; };
        mu_.AwaitWithDeadline(absl::Condition(&sooner), next);
        if (!timers_.PopDue(absl::Now(), &fn)) continue;
      }
      fn();  // Outside the lock: a timer may set another.
    }
  }

  mutable absl::Mutex mu_;
  mutable bool started_ ABSL_GUARDED_BY(mu_) = false;
  mutable TimerQueue timers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

const Clock* Clock::Real() {
  static RealClock* const clock = new RealClock();
  return clock;
}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

Clock::TimerId FakeClock::RunAt(absl::Time when, std::function<void()> fn) const {
  absl::MutexLock lock(&mu_);
  return timers_.Add(when, std::move(fn));
}

void FakeClock::Cancel(TimerId id) const {
  absl::MutexLock lock(&mu_);
  timers_.Cancel(id);
}

void FakeClock::Advance(absl::Duration d) { Set(Now() + d); }

void FakeClock::Set(absl::Time t) {
  // Steps through each due timer's time, so a timer sees Now() at its own
  // time and may set a later one that also comes due within this move.
  while (true) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      absl::Time next = timers_.Next();
      if (next > t) {
        now_ = std::max(now_, t);
        return;
      }
      now_ = std::max(now_, next);
      timers_.PopDue(now_, &fn);
    }
    fn();
  }
}

size_t FakeClock::pending_timers() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

}  // namespace moa
