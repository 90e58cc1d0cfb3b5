// Each client key's limits on the injected clock: hit exactly at their
// numbers, with the retry delay until they would allow the request.
#include "services/orchestrator/key_limits.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/base/retry_after.h"

namespace moa::orchestrator {
namespace {

using ::testing::HasSubstr;

class KeyLimiterTest : public ::testing::Test {
 protected:
  KeyLimiterTest() {
    // 2026-11-26 10:00:00 UTC.
    clock_.Advance(absl::FromUnixSeconds(1795687200) - clock_.Now());
  }

  absl::Status Admit(const ApiKey& key, const std::string& pipeline = "moa") {
    MoaCall::Options o;
    o.pipeline.name = pipeline;
    absl::Status s = limiter_.Admit(key, &o);
    if (s.ok()) {
      EXPECT_EQ(o.key_name, key.name);
      spent_.push_back(o.on_spent);
    }
    return s;
  }
  // The n-th admitted request (0-based) ends.
  void End(size_t n, int64_t tokens, double dollars) {
    spent_.at(n)({.tokens = tokens, .dollars = dollars});
  }

  double Limited(const std::string& key, const std::string& limit) {
    for (const auto& f : registry_.Collect()) {
      if (f.name != "moa_key_limited_total") continue;
      for (const auto& m : f.metric) {
        std::map<std::string, std::string> l;
        for (const auto& p : m.label) l[p.name] = p.value;
        if (l["key"] == key && l["limit"] == limit) return m.counter.value;
      }
    }
    return 0;
  }

  FakeClock clock_;
  prometheus::Registry registry_;
  KeyLimiter limiter_{&clock_, registry_};
  std::vector<std::function<void(const Spending&)>> spent_;
};

TEST_F(KeyLimiterTest, RequestsPerMinuteRefusesTheNPlusFirstUntilTheOldestIsAMinuteOld) {
  ApiKey key{"team-a", "", {}};
  key.limits.requests_per_minute = 3;
  ASSERT_TRUE(Admit(key).ok());
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(Admit(key).ok());
  ASSERT_TRUE(Admit(key).ok());
  absl::Status refused = Admit(key);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("key 'team-a' reached its requests_per_minute limit"));
  EXPECT_EQ(GetRetryAfter(refused), absl::Seconds(50)) << "the first leaves the window then";
  EXPECT_EQ(Limited("team-a", "requests_per_minute"), 1);
  clock_.Advance(absl::Seconds(49));
  EXPECT_FALSE(Admit(key).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(Admit(key).ok());
}

TEST_F(KeyLimiterTest, ConcurrentRequestsCountUntilTheyEnd) {
  ApiKey key{"k", "", {}};
  key.limits.concurrent_requests = 2;
  ASSERT_TRUE(Admit(key).ok());
  ASSERT_TRUE(Admit(key).ok());
  absl::Status refused = Admit(key);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("concurrent_requests"));
  EXPECT_EQ(GetRetryAfter(refused), absl::Seconds(1));
  End(0, 10, 0);
  EXPECT_TRUE(Admit(key).ok());
}

// With no pipeline, no conversation and no max_tokens a request reserves
// kUnboundedAnswerTokens (one call).
TEST_F(KeyLimiterTest, TokensPerMinuteCountWhatEndedRequestsUsed) {
  ApiKey key{"k", "", {}};
  key.limits.tokens_per_minute = 700 + kUnboundedAnswerTokens;
  ASSERT_TRUE(Admit(key).ok());
  End(0, 700, 0);
  ASSERT_TRUE(Admit(key).ok()) << "700 used, the estimate fits exactly";
  clock_.Advance(absl::Seconds(20));
  End(1, 1, 0);
  absl::Status refused = Admit(key);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("tokens_per_minute"));
  EXPECT_EQ(GetRetryAfter(refused), absl::Seconds(40));
  clock_.Advance(absl::Seconds(40));
  EXPECT_TRUE(Admit(key).ok()) << "the 700 left the window";
}

MoaCall::Options Planned(int max_tokens, const std::string& conversation) {
  MoaCall::Options o;
  o.pipeline.name = "moa";
  o.pipeline.layers = {{"a", "b", "c"}};
  o.pipeline.aggregator = "z";
  o.pipeline.params.max_tokens = max_tokens;
  o.conversation = {{llm::Role::kUser, conversation}};
  return o;
}

TEST(EstimateTokensTest, EveryCallReadsTheConversationAndWritesMaxTokensTheFinalReadsTheLayer) {
  // 3 proposers: 3 x (10 + 100); the final: 10 + 100 + 3 x 100.
  EXPECT_EQ(EstimateTokens(Planned(100, std::string(40, 'x'))), 3 * 110 + 410);
  MoaCall::Options two_layers = Planned(100, std::string(40, 'x'));
  two_layers.pipeline.layers.push_back({"a", "b"});
  // Layer 2 reads layer 1's 3 texts; the final reads layer 2's 2.
  EXPECT_EQ(EstimateTokens(two_layers), 3 * 110 + 2 * (110 + 300) + (110 + 200));
}

// Twenty requests at once: only as many as their reservations fit are
// admitted (the overshoot was 7.6x with tokens counted only at the end),
// and a request that alone may use more than the limit is refused by name.
TEST_F(KeyLimiterTest, TokensPerMinuteAdmitsConcurrentRequestsByTheirReservations) {
  ApiKey key{"k", "", {}};
  key.limits.tokens_per_minute = 1000;
  const int64_t each = EstimateTokens(Planned(50, "What is MoA?"));  // 3 x 53 + 203 = 362.
  ASSERT_EQ(each, 362);
  int admitted = 0;
  std::vector<std::function<void(const Spending&)>> running;
  for (int i = 0; i < 20; ++i) {
    MoaCall::Options o = Planned(50, "What is MoA?");
    if (limiter_.Admit(key, &o).ok()) {
      ++admitted;
      running.push_back(o.on_spent);
    }
  }
  EXPECT_EQ(admitted, 2) << "1000 / 362";
  // They used less than they reserved: the rest is free again.
  running[0]({.tokens = 100, .dollars = 0});
  running[1]({.tokens = 100, .dollars = 0});
  MoaCall::Options again = Planned(50, "What is MoA?");
  EXPECT_TRUE(limiter_.Admit(key, &again).ok());
  MoaCall::Options huge = Planned(4000, "What is MoA?");
  absl::Status refused = limiter_.Admit(key, &huge);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("lower max_tokens"));
  again.on_spent({.tokens = 0, .dollars = 0});
}

TEST_F(KeyLimiterTest, ADailyBudgetRefusesUntilMidnightUtcAndAMonthlyOneUntilTheMonthEnds) {
  ApiKey key{"k", "", {}};
  key.limits.budget_dollars_per_day = 1.0;
  key.limits.budget_dollars_per_month = 1.5;
  ASSERT_TRUE(Admit(key).ok());
  End(0, 100, 0.99);
  ASSERT_TRUE(Admit(key).ok()) << "$0.99 of $1";
  End(1, 100, 0.02);
  absl::Status day = Admit(key);
  EXPECT_THAT(std::string(day.message()), HasSubstr("budget_dollars_per_day"));
  EXPECT_EQ(GetRetryAfter(day), absl::Hours(14)) << "10:00 to midnight";
  clock_.Advance(absl::Hours(14));
  ASSERT_TRUE(Admit(key).ok()) << "a new day";
  End(2, 100, 0.5);
  absl::Status month = Admit(key);
  EXPECT_THAT(std::string(month.message()), HasSubstr("budget_dollars_per_month"));
  EXPECT_EQ(GetRetryAfter(month), absl::Hours(24 * 4)) << "Nov 27 to Dec 1";
  clock_.Advance(absl::Hours(24 * 4));
  EXPECT_TRUE(Admit(key).ok()) << "a new month";
}

TEST_F(KeyLimiterTest, TheBudgetGaugeSaysHowMuchOfEachBudgetIsSpent) {
  ApiKey key{"k", "", {}};
  key.limits.budget_dollars_per_day = 2.0;
  key.limits.budget_dollars_per_month = 10.0;
  ASSERT_TRUE(Admit(key).ok());
  End(0, 10, 1.5);
  std::map<std::string, double> ratio;
  for (const auto& f : registry_.Collect()) {
    if (f.name != "moa_key_budget_used_ratio") continue;
    for (const auto& m : f.metric) {
      for (const auto& l : m.label) {
        if (l.name == "period") ratio[l.value] = m.gauge.value;
      }
    }
  }
  EXPECT_DOUBLE_EQ(ratio["day"], 0.75);
  EXPECT_DOUBLE_EQ(ratio["month"], 0.15);
}

TEST_F(KeyLimiterTest, APipelineOutsideTheKeysListIsPermissionDenied) {
  ApiKey key{"k", "", {}};
  key.limits.pipelines = {"moa", "fast"};
  EXPECT_TRUE(Admit(key, "fast").ok());
  absl::Status refused = Admit(key, "moa-3layer");
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("(allowed: moa, fast)"));
  EXPECT_EQ(Limited("k", "pipelines"), 1);
}

TEST_F(KeyLimiterTest, KeysAreCountedApart) {
  ApiKey a{"a", "", {}}, b{"b", "", {}};
  a.limits.requests_per_minute = 1;
  b.limits.requests_per_minute = 1;
  EXPECT_TRUE(Admit(a).ok());
  EXPECT_TRUE(Admit(b).ok());
  EXPECT_FALSE(Admit(a).ok());
}

}  // namespace
}  // namespace moa::orchestrator
