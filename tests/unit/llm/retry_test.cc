#include "lib/llm/retry.h"

#include <gtest/gtest.h>

#include <random>

#include "absl/time/clock.h"
#include "lib/base/retry_after.h"
#include "lib/llm/http_status.h"

namespace moa::llm {
namespace {

TEST(RetryTest, OnlyUnavailableAndRateLimitedAreRetried) {
  RetryPolicy policy;
  std::mt19937_64 rng(1);
  absl::Time now = absl::Now();
  absl::Time far = now + absl::Hours(1);
  EXPECT_TRUE(RetryDelay(policy, 2, absl::UnavailableError(""), now, far, rng));
  EXPECT_TRUE(RetryDelay(policy, 2, absl::ResourceExhaustedError(""), now, far, rng));
  EXPECT_FALSE(RetryDelay(policy, 2, absl::InvalidArgumentError(""), now, far, rng));
  EXPECT_FALSE(RetryDelay(policy, 2, absl::UnauthenticatedError(""), now, far, rng));
  EXPECT_FALSE(RetryDelay(policy, 2, absl::DeadlineExceededError(""), now, far, rng));
  EXPECT_FALSE(RetryDelay(policy, 2, absl::InternalError(""), now, far, rng));
}

TEST(RetryTest, StopsAfterMaxAttempts) {
  RetryPolicy policy;
  policy.max_attempts = 3;
  std::mt19937_64 rng(1);
  absl::Time now = absl::Now();
  EXPECT_TRUE(RetryDelay(policy, 3, absl::UnavailableError(""), now, now + absl::Hours(1), rng));
  EXPECT_FALSE(RetryDelay(policy, 4, absl::UnavailableError(""), now, now + absl::Hours(1), rng));
}

TEST(RetryTest, BackoffGrowsExponentiallyWithJitterUpToTheCap) {
  RetryPolicy policy;
  policy.max_attempts = 20;
  policy.initial_backoff = absl::Milliseconds(100);
  policy.max_backoff = absl::Milliseconds(800);
  std::mt19937_64 rng(7);
  absl::Time now = absl::Now();
  for (int attempt = 2; attempt <= 10; ++attempt) {
    absl::Duration cap =
        std::min(absl::Milliseconds(100) * (1 << (attempt - 2)), absl::Milliseconds(800));
    for (int i = 0; i < 50; ++i) {
      auto d =
          RetryDelay(policy, attempt, absl::UnavailableError(""), now, now + absl::Hours(1), rng);
      ASSERT_TRUE(d);
      EXPECT_GE(*d, cap / 2);
      EXPECT_LE(*d, cap);
    }
  }
}

TEST(RetryTest, RetryAfterIsAFloorAndTooLongOneIsNotWaitedFor) {
  RetryPolicy policy;
  policy.max_retry_after = absl::Seconds(10);
  std::mt19937_64 rng(1);
  absl::Time now = absl::Now();
  absl::Status limited = absl::ResourceExhaustedError("429");
  SetRetryAfter(limited, absl::Seconds(3));
  EXPECT_EQ(RetryDelay(policy, 2, limited, now, now + absl::Hours(1), rng), absl::Seconds(3));
  SetRetryAfter(limited, absl::Seconds(30));
  EXPECT_FALSE(RetryDelay(policy, 2, limited, now, now + absl::Hours(1), rng));
}

TEST(RetryTest, NoRetryThatWouldEndPastTheDeadline) {
  RetryPolicy policy;
  std::mt19937_64 rng(1);
  absl::Time now = absl::Now();
  absl::Status limited = absl::ResourceExhaustedError("429");
  SetRetryAfter(limited, absl::Seconds(3));
  EXPECT_FALSE(RetryDelay(policy, 2, limited, now, now + absl::Seconds(2), rng));
}

TEST(RetryBudgetTest, FailuresSpendTokensSuccessesEarnThemBackSlowly) {
  RetryBudget budget(10, 0.1);
  EXPECT_TRUE(budget.AllowRetry());
  for (int i = 0; i < 4; ++i) budget.OnFailure();
  EXPECT_TRUE(budget.AllowRetry()) << "6 tokens left";
  budget.OnFailure();
  EXPECT_FALSE(budget.AllowRetry()) << "5 left: retries need more than half";
  for (int i = 0; i < 5; ++i) budget.OnFailure();
  EXPECT_DOUBLE_EQ(budget.tokens(), 0);
  for (int i = 0; i < 40; ++i) budget.OnSuccess();
  EXPECT_FALSE(budget.AllowRetry()) << "4 tokens after 40 successes";
  for (int i = 0; i < 20; ++i) budget.OnSuccess();
  EXPECT_TRUE(budget.AllowRetry()) << "6 tokens after 60";
  for (int i = 0; i < 1000; ++i) budget.OnSuccess();
  EXPECT_DOUBLE_EQ(budget.tokens(), 10) << "capped";
  for (int i = 0; i < 1000; ++i) budget.OnFailure();
  EXPECT_DOUBLE_EQ(budget.tokens(), 0) << "floored";
}

}  // namespace
}  // namespace moa::llm
