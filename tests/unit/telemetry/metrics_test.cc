// Metric children are resolved once and kept; the outcome label set comes
// from one place and every outcome's child exists before its first use.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "lib/telemetry/buckets.h"
#include "lib/telemetry/call_metrics.h"
#include "lib/telemetry/orchestrator_metrics.h"
#include "lib/telemetry/upstream_metrics.h"
#include "prometheus/registry.h"

namespace moa::telemetry {
namespace {

// The value of one series: a counter's value or a histogram's sample count.
// -1 when the series does not exist.
double Value(prometheus::Registry& registry, const std::string& family,
             const std::map<std::string, std::string>& labels) {
  for (const auto& f : registry.Collect()) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      if (have != labels) continue;
      if (f.type == prometheus::MetricType::Histogram) {
        return static_cast<double>(m.histogram.sample_count);
      }
      if (f.type == prometheus::MetricType::Gauge) return m.gauge.value;
      return m.counter.value;
    }
  }
  return -1;
}

TEST(OrchestratorMetricsTest, AConfiguredPipelineHasEveryChildBeforeItsFirstRequest) {
  prometheus::Registry registry;
  OrchestratorMetrics metrics(registry, {{"moa", {{"a", "b"}}, "agg"}});
  for (Outcome o : kAllOutcomes) {
    std::string outcome(OutcomeName(o));
    EXPECT_EQ(Value(registry, "moa_requests_total", {{"pipeline", "moa"}, {"outcome", outcome}}), 0)
        << outcome;
    EXPECT_EQ(Value(registry, "moa_proposal_duration_seconds",
                    {{"pipeline", "moa"},
                     {"layer", "1"},
                     {"step", "propose"},
                     {"model", "b"},
                     {"role", "proposer"},
                     {"outcome", outcome}}),
              0)
        << outcome;
  }
  EXPECT_EQ(Value(registry, "moa_layer_duration_seconds",
                  {{"pipeline", "moa"}, {"layer", "final"}, {"step", "aggregate"}}),
            0);
}

TEST(OrchestratorMetricsTest, AConfiguredPipelinesChildrenAreSharedAndAnInlineOnesBuilt) {
  prometheus::Registry registry;
  PipelineShape moa{"moa", {{"a"}}, "agg"};
  OrchestratorMetrics metrics(registry, {moa});
  EXPECT_EQ(metrics.For(moa), metrics.For(moa)) << "resolved once, at start-up";
  PipelineShape inline_spec{"inline", {{"a"}, {"a"}}, "agg"};
  auto children = metrics.For(inline_spec);
  EXPECT_EQ(children, metrics.For(inline_spec)) << "an inline shape's children are kept too";
  children->RequestStarted();
  children->CallDone(1, 0, Outcome::kDeadline, absl::Seconds(1));
  children->Tokens(2, 0, 10, 4);
  children->RequestFinished(Outcome::kOk, absl::Seconds(2));
  EXPECT_EQ(Value(registry, "moa_proposal_duration_seconds",
                  {{"pipeline", "inline"},
                   {"layer", "2"},
                   {"step", "synthesize"},
                   {"model", "a"},
                   {"role", "proposer"},
                   {"outcome", "deadline"}}),
            1);
  EXPECT_EQ(Value(registry, "moa_tokens_total",
                  {{"pipeline", "inline"}, {"model", "agg"}, {"direction", "prompt"}}),
            10);
  EXPECT_EQ(Value(registry, "moa_requests_total", {{"pipeline", "inline"}, {"outcome", "ok"}}), 1);
  EXPECT_EQ(Value(registry, "moa_requests_in_flight", {{"pipeline", "inline"}}), 0);
}

TEST(CallMetricsTest, AModelsChildrenAreResolvedOnceAndKept) {
  prometheus::Registry registry;
  CallMetrics metrics(registry, "moa_aggregator", "Aggregations", {"a"});
  const ModelCallMetrics* a = metrics.ForModel("a");
  EXPECT_EQ(a, metrics.ForModel("a"));
  a->Finished(Outcome::kRateLimited, absl::Milliseconds(5));
  a->FirstToken(absl::Milliseconds(1));
  EXPECT_EQ(Value(registry, "moa_aggregator_requests_total",
                  {{"model", "a"}, {"outcome", "rate_limited"}}),
            1);
  EXPECT_EQ(Value(registry, "moa_aggregator_requests_total", {{"model", "b"}, {"outcome", "ok"}}),
            -1)
      << "another model's children appear on its first call";
  metrics.ForModel("b");
  EXPECT_EQ(Value(registry, "moa_aggregator_requests_total", {{"model", "b"}, {"outcome", "ok"}}),
            0);
}

TEST(UpstreamMetricsTest, OnlyRetryableOutcomesCountAsRetries) {
  prometheus::Registry registry;
  UpstreamMetrics metrics(registry, "m");
  metrics.Retry(Outcome::kRateLimited);
  metrics.Retry(Outcome::kInvalid);  // Never retried: not counted, no series.
  EXPECT_EQ(
      Value(registry, "moa_upstream_retries_total", {{"model", "m"}, {"reason", "rate_limited"}}),
      1);
  EXPECT_EQ(Value(registry, "moa_upstream_retries_total", {{"model", "m"}, {"reason", "invalid"}}),
            -1);
  metrics.RequestStarted();
  metrics.RequestFinished(Outcome::kUnavailable, absl::Seconds(1));
  EXPECT_EQ(
      Value(registry, "moa_upstream_requests_total", {{"model", "m"}, {"outcome", "unavailable"}}),
      1);
  EXPECT_EQ(Value(registry, "moa_upstream_inflight", {{"model", "m"}}), 0);
}

}  // namespace
}  // namespace moa::telemetry

namespace moa::telemetry {
namespace {

// Where MoA lives (0.5-30 s per request or call, 0.05-10 s to a first
// token), neighbouring bucket edges are at most a third apart from 1 s up
// and at most half apart below.
TEST(BucketsTest, ResolveWhereMoaLives) {
  auto check = [](const std::vector<double>& b, double from, double to) {
    ASSERT_TRUE(std::is_sorted(b.begin(), b.end()));
    for (size_t i = 1; i < b.size(); ++i) {
      if (b[i - 1] < from || b[i] > to) continue;
      EXPECT_LE(b[i] / b[i - 1], 1.5 + 1e-9) << b[i - 1] << " -> " << b[i];
      if (b[i - 1] >= 1) {
        EXPECT_LE(b[i] / b[i - 1], 1.34) << b[i - 1] << " -> " << b[i];
      }
    }
    EXPECT_LE(b.front(), from);
    EXPECT_GE(b.back(), to);
  };
  check(DurationBuckets(), 0.5, 30);
  check(TimeToFirstTokenBuckets(), 0.05, 10);
}

}  // namespace
}  // namespace moa::telemetry
