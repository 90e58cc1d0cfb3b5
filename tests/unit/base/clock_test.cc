#include "lib/base/clock.h"

#include <gtest/gtest.h>

#include <vector>

#include "absl/synchronization/notification.h"

namespace moa {
namespace {

TEST(FakeClockTest, TimersRunInTimeOrderAtTheirOwnTime) {
  FakeClock clock;
  const absl::Time t0 = clock.Now();
  std::vector<std::pair<int, absl::Duration>> ran;
  clock.RunAt(t0 + absl::Seconds(2), [&] { ran.emplace_back(2, clock.Now() - t0); });
  clock.RunAt(t0 + absl::Seconds(1), [&] {
    ran.emplace_back(1, clock.Now() - t0);
    // A timer set by a timer runs within the same move when it is due.
    clock.RunAt(clock.Now() + absl::Milliseconds(500),
                [&] { ran.emplace_back(3, clock.Now() - t0); });
  });
  clock.Advance(absl::Milliseconds(999));
  EXPECT_TRUE(ran.empty());
  clock.Advance(absl::Seconds(5));
  ASSERT_EQ(ran.size(), 3u);
  EXPECT_EQ(ran[0], std::make_pair(1, absl::Seconds(1)));
  EXPECT_EQ(ran[1], std::make_pair(3, absl::Milliseconds(1500)));
  EXPECT_EQ(ran[2], std::make_pair(2, absl::Seconds(2)));
  EXPECT_EQ(clock.Now() - t0, absl::Milliseconds(5999));
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST(FakeClockTest, ACancelledTimerNeverRuns) {
  FakeClock clock;
  bool ran = false;
  Clock::TimerId id = clock.RunAt(clock.Now() + absl::Seconds(1), [&] { ran = true; });
  clock.Cancel(id);
  clock.Cancel(id);  // Idempotent.
  clock.Advance(absl::Seconds(2));
  EXPECT_FALSE(ran);
}

TEST(RealClockTest, RunsATimerOnItsThreadAndSoonerTimersFirst) {
  const Clock* clock = Clock::Real();
  absl::Notification late, early;
  std::atomic<bool> early_first{false};
  clock->RunAt(clock->Now() + absl::Milliseconds(200), [&] { late.Notify(); });
  clock->RunAt(clock->Now() + absl::Milliseconds(20), [&] {
    early_first = !late.HasBeenNotified();
    early.Notify();
  });
  Clock::TimerId cancelled = clock->RunAt(clock->Now() + absl::Milliseconds(10),
                                          [] { ADD_FAILURE() << "a cancelled timer ran"; });
  clock->Cancel(cancelled);
  ASSERT_TRUE(early.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(late.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(early_first);
}

}  // namespace
}  // namespace moa
