// The proposer's per-model upstream metrics (moa_upstream_*).
#ifndef MOA_LIB_TELEMETRY_UPSTREAM_METRICS_H_
#define MOA_LIB_TELEMETRY_UPSTREAM_METRICS_H_

#include <string>

#include "absl/time/time.h"
#include "lib/telemetry/outcome.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace moa::telemetry {

// Builds the families in `registry` at construction (bad names throw there,
// at start-up) with every child of the given model created up front.
// Thread-safe: every method may be called from any thread.
class UpstreamMetrics {
 public:
  UpstreamMetrics(prometheus::Registry& registry, const std::string& model);

  void RequestStarted();
  void RequestFinished(Outcome outcome, absl::Duration duration);
  void FirstToken(absl::Duration time_to_first_token);
  void InterToken(absl::Duration gap);
  // Reasoning tokens are also in completion_tokens; their series says how
  // many of those were thinking.
  void Tokens(int64_t prompt_tokens, int64_t completion_tokens, int64_t reasoning_tokens = 0);
  // `reason` is the outcome of the failed attempt; only rate_limited and
  // unavailable are retried, so only they are counted.
  void Retry(Outcome reason);

 private:
  PerOutcome<prometheus::Counter> requests_;
  PerOutcome<prometheus::Histogram> durations_;
  PerOutcome<prometheus::Counter> retries_{};
  prometheus::Histogram* time_to_first_token_;
  prometheus::Histogram* inter_token_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* completion_tokens_;
  prometheus::Counter* reasoning_tokens_;
  prometheus::Gauge* inflight_;
};

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_UPSTREAM_METRICS_H_
