// Per-model call metrics for services that call models through the cluster
// (the aggregator): requests, duration and time to first token.
#ifndef MOA_LIB_TELEMETRY_CALL_METRICS_H_
#define MOA_LIB_TELEMETRY_CALL_METRICS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/telemetry/outcome.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace moa::telemetry {

// One model's children; obtained once per call, used without a lookup.
class ModelCallMetrics {
 public:
  void Finished(Outcome outcome, absl::Duration duration) const;
  void FirstToken(absl::Duration ttft) const;

 private:
  friend class CallMetrics;
  PerOutcome<prometheus::Counter> requests_{};
  PerOutcome<prometheus::Histogram> durations_{};
  prometheus::Histogram* ttft_ = nullptr;
};

// Families `<prefix>_requests_total{model,outcome}`,
// `<prefix>_request_duration_seconds{model,outcome}` and
// `<prefix>_time_to_first_token_seconds{model}`. Children of `models` are
// created up front; another model's on its first call. Thread-safe.
class CallMetrics {
 public:
  CallMetrics(prometheus::Registry& registry, const std::string& prefix, const std::string& what,
              const std::vector<std::string>& models);

  // The model's children; the pointer stays valid as long as this object.
  const ModelCallMetrics* ForModel(const std::string& model);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  absl::Mutex mu_;
  std::map<std::string, ModelCallMetrics, std::less<>> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_CALL_METRICS_H_
