#include "lib/base/retry_after.h"

#include <gtest/gtest.h>

namespace moa {
namespace {

TEST(RetryAfterTest, ParsesRetryAfterSecondsAndHttpDates) {
  absl::Time now = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(ParseRetryAfter(" 3 ", now), absl::Seconds(3));
  EXPECT_EQ(ParseRetryAfter("0.5", now), absl::Milliseconds(500));
  // 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT.
  EXPECT_EQ(ParseRetryAfter("Tue, 14 Nov 2023 22:13:30 GMT", now), absl::Seconds(10));
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-1", now), std::nullopt);
}

TEST(RetryAfterTest, RetryAfterTravelsWithTheStatus) {
  absl::Status s = absl::ResourceExhaustedError("slow down");
  EXPECT_EQ(GetRetryAfter(s), std::nullopt);
  SetRetryAfter(s, absl::Milliseconds(1500));
  EXPECT_EQ(GetRetryAfter(s), absl::Milliseconds(1500));
}

}  // namespace
}  // namespace moa
