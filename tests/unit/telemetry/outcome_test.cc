#include "lib/telemetry/outcome.h"

#include <gtest/gtest.h>

namespace moa::telemetry {
namespace {

absl::string_view Name(Outcome o) { return OutcomeName(o); }

TEST(OutcomeTest, EveryOutcomeHasItsLabelInOrder) {
  ASSERT_EQ(kAllOutcomes.size(), kOutcomeCount);
  for (size_t i = 0; i < kAllOutcomes.size(); ++i) {
    EXPECT_EQ(static_cast<size_t>(kAllOutcomes[i]), i);
  }
  EXPECT_EQ(Name(Outcome::kRateLimited), "rate_limited");
  EXPECT_EQ(Name(Outcome::kUpstreamError), "upstream_error");
}

TEST(OutcomeTest, OutcomeLabels) {
  EXPECT_EQ(Name(OutcomeOf(absl::OkStatus())), "ok");
  EXPECT_EQ(Name(OutcomeOf(absl::CancelledError(""))), "cancelled");
  EXPECT_EQ(Name(OutcomeOf(absl::DeadlineExceededError(""))), "deadline");
  EXPECT_EQ(Name(OutcomeOf(absl::ResourceExhaustedError(""))), "rate_limited");
  EXPECT_EQ(Name(OutcomeOf(absl::InvalidArgumentError(""))), "invalid");
  EXPECT_EQ(Name(OutcomeOf(absl::UnavailableError(""))), "unavailable");
  EXPECT_EQ(Name(OutcomeOf(absl::UnauthenticatedError(""))), "upstream_error");
  EXPECT_EQ(Name(OutcomeOf(absl::InternalError(""))), "upstream_error");
}

TEST(OutcomeTest, ACancelAtOrJustBeforeTheDeadlineCountsAsDeadline) {
  absl::Time deadline = absl::FromUnixSeconds(1000);
  absl::Status cancelled = absl::CancelledError("");
  EXPECT_EQ(Name(OutcomeAt(cancelled, deadline, deadline)), "deadline");
  EXPECT_EQ(Name(OutcomeAt(cancelled, deadline, deadline - absl::Milliseconds(100))), "deadline");
  EXPECT_EQ(Name(OutcomeAt(cancelled, deadline, deadline - absl::Seconds(5))), "cancelled");
  EXPECT_EQ(Name(OutcomeAt(cancelled, absl::InfiniteFuture(), deadline)), "cancelled");
  EXPECT_EQ(Name(OutcomeAt(absl::UnavailableError(""), deadline, deadline)), "unavailable");
}

}  // namespace
}  // namespace moa::telemetry
