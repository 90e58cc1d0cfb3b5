#include "lib/llm/http_status.h"

#include <gtest/gtest.h>

#include "absl/time/clock.h"

namespace moa::llm {
namespace {

TEST(HttpStatusTest, MapsUpstreamCodesAsDocumented) {
  EXPECT_EQ(StatusFromHttp(400, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromHttp(401, "x").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(StatusFromHttp(403, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromHttp(404, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusFromHttp(408, "x").code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(StatusFromHttp(429, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(StatusFromHttp(500, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromHttp(503, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromHttp(500, "boom").message(), "HTTP 500: boom");
}

TEST(HttpStatusTest, ParsesRetryAfterSecondsAndHttpDates) {
  absl::Time now = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(ParseRetryAfter(" 3 ", now), absl::Seconds(3));
  EXPECT_EQ(ParseRetryAfter("0.5", now), absl::Milliseconds(500));
  // 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT.
  EXPECT_EQ(ParseRetryAfter("Tue, 14 Nov 2023 22:13:30 GMT", now), absl::Seconds(10));
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-1", now), std::nullopt);
}

TEST(HttpStatusTest, RetryAfterTravelsWithTheStatus) {
  absl::Status s = StatusFromHttp(429, "slow down");
  EXPECT_EQ(GetRetryAfter(s), std::nullopt);
  SetRetryAfter(s, absl::Milliseconds(1500));
  EXPECT_EQ(GetRetryAfter(s), absl::Milliseconds(1500));
}

TEST(HttpStatusTest, OutcomeLabels) {
  EXPECT_EQ(OutcomeLabel(absl::OkStatus()), "ok");
  EXPECT_EQ(OutcomeLabel(absl::CancelledError("")), "cancelled");
  EXPECT_EQ(OutcomeLabel(absl::DeadlineExceededError("")), "deadline");
  EXPECT_EQ(OutcomeLabel(absl::ResourceExhaustedError("")), "rate_limited");
  EXPECT_EQ(OutcomeLabel(absl::InvalidArgumentError("")), "invalid");
  EXPECT_EQ(OutcomeLabel(absl::UnavailableError("")), "unavailable");
  EXPECT_EQ(OutcomeLabel(absl::UnauthenticatedError("")), "upstream_error");
  EXPECT_EQ(OutcomeLabel(absl::InternalError("")), "upstream_error");
}

TEST(HttpStatusTest, ACancelAtOrJustBeforeTheDeadlineCountsAsDeadline) {
  absl::Time deadline = absl::FromUnixSeconds(1000);
  absl::Status cancelled = absl::CancelledError("");
  EXPECT_EQ(OutcomeLabelAt(cancelled, deadline, deadline), "deadline");
  EXPECT_EQ(OutcomeLabelAt(cancelled, deadline, deadline - absl::Milliseconds(100)), "deadline");
  EXPECT_EQ(OutcomeLabelAt(cancelled, deadline, deadline - absl::Seconds(5)), "cancelled");
  EXPECT_EQ(OutcomeLabelAt(cancelled, absl::InfiniteFuture(), deadline), "cancelled");
  EXPECT_EQ(OutcomeLabelAt(absl::UnavailableError(""), deadline, deadline), "unavailable");
}

}  // namespace
}  // namespace moa::llm
