// The breaker's state machine on the fake clock: closed -> open after the
// failure ratio, fail fast while open, one probe when half-open, closed
// again on its success; a 429 Retry-After opens it for that long.
#include "lib/base/circuit_breaker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "lib/base/retry_after.h"

namespace moa {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using State = CircuitBreaker::State;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  CircuitBreaker breaker_{"model m",
                          {.failure_ratio = 0.5,
                           .min_calls = 4,
                           .window = absl::Seconds(10),
                           .cooldown = absl::Seconds(5)},
                          &clock_,
                          [this](State s) { changes_.push_back(s); }};

  void Call(absl::Status end) {
    ASSERT_TRUE(breaker_.Admit().ok());
    breaker_.Record(end);
  }

  FakeClock clock_;
  std::vector<State> changes_;
};

TEST_F(CircuitBreakerTest, OpensPastTheFailureRatioAndFailsFastNamingWhy) {
  Call(absl::OkStatus());
  Call(absl::UnavailableError("down"));
  Call(absl::UnavailableError("down"));
  EXPECT_EQ(breaker_.state(), State::kClosed) << "3 calls: under min_calls";
  Call(absl::DeadlineExceededError("no token"));
  EXPECT_EQ(breaker_.state(), State::kOpen) << "3 of 4 failed";
  absl::Status refused = breaker_.Admit();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.message(), HasSubstr("model m is cooling down until"));
  EXPECT_THAT(refused.message(), HasSubstr("3 of the last 4 calls failed"));
  EXPECT_EQ(GetRetryAfter(refused), absl::Seconds(5)) << "a caller waits out the cooldown";
  EXPECT_TRUE(IsBreakerRefusal(refused));
  EXPECT_FALSE(IsBreakerRefusal(absl::UnavailableError("model m is cooling down")))
      << "the mark, not the words";
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(GetRetryAfter(breaker_.Admit()), absl::Seconds(3));
  EXPECT_THAT(changes_, ElementsAre(State::kOpen));
}

TEST_F(CircuitBreakerTest, CancelsAndCallerErrorsCountNeitherWay) {
  for (int i = 0; i < 10; ++i) Call(absl::CancelledError("straggler"));
  for (int i = 0; i < 10; ++i) Call(absl::InvalidArgumentError("bad request"));
  Call(absl::UnavailableError("down"));
  EXPECT_EQ(breaker_.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, AfterTheCooldownOneProbeClosesItOnSuccess) {
  for (int i = 0; i < 4; ++i) Call(absl::UnavailableError("down"));
  ASSERT_EQ(breaker_.state(), State::kOpen);
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(breaker_.Admit().ok()) << "the probe";
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  absl::Status second = breaker_.Admit();
  EXPECT_EQ(second.code(), absl::StatusCode::kUnavailable) << "one probe at a time";
  EXPECT_THAT(second.message(), HasSubstr("being probed"));
  EXPECT_EQ(GetRetryAfter(second), CircuitBreaker::kProbeWait);
  EXPECT_TRUE(IsBreakerRefusal(second));
  breaker_.Record(absl::OkStatus());
  EXPECT_EQ(breaker_.state(), State::kClosed);
  EXPECT_TRUE(breaker_.Admit().ok());
  EXPECT_THAT(changes_, ElementsAre(State::kOpen, State::kHalfOpen, State::kClosed));
}

TEST_F(CircuitBreakerTest, AFailedProbeOpensItAgainForAnotherCooldown) {
  for (int i = 0; i < 4; ++i) Call(absl::UnavailableError("down"));
  clock_.Advance(absl::Seconds(5));
  Call(absl::UnavailableError("still down"));
  EXPECT_EQ(breaker_.state(), State::kOpen);
  clock_.Advance(absl::Seconds(4));
  EXPECT_FALSE(breaker_.Admit().ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(breaker_.Admit().ok());
}

TEST_F(CircuitBreakerTest, OldFailuresLeaveTheWindow) {
  Call(absl::UnavailableError("down"));
  Call(absl::UnavailableError("down"));
  Call(absl::UnavailableError("down"));
  clock_.Advance(absl::Seconds(11));
  Call(absl::UnavailableError("down"));
  EXPECT_EQ(breaker_.state(), State::kClosed) << "only 1 call in the last 10 s";
}

TEST_F(CircuitBreakerTest, ARetryAfterCoolsTheModelDownForEveryCaller) {
  absl::Status limited = absl::ResourceExhaustedError("HTTP 429");
  SetRetryAfter(limited, absl::Seconds(30));
  Call(limited);  // One call is enough: the upstream said how long to wait.
  EXPECT_EQ(breaker_.state(), State::kOpen);
  EXPECT_THAT(breaker_.Admit().message(), HasSubstr("asked to retry after 30s"));
  clock_.Advance(absl::Seconds(29));
  EXPECT_FALSE(breaker_.Admit().ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(breaker_.Admit().ok());
}

}  // namespace
}  // namespace moa
