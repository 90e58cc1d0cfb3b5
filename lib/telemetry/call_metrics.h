// Per-model call metrics for services that call models through the cluster
// (the aggregator): requests, duration and time to first token.
#ifndef MOA_LIB_TELEMETRY_CALL_METRICS_H_
#define MOA_LIB_TELEMETRY_CALL_METRICS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace moa::telemetry {

// Families `<prefix>_requests_total{model,outcome}`,
// `<prefix>_request_duration_seconds{model,outcome}` and
// `<prefix>_time_to_first_token_seconds{model}`. Children of `models` are
// created up front; other models are added on first use. Thread-safe.
class CallMetrics {
 public:
  CallMetrics(prometheus::Registry& registry, const std::string& prefix, const std::string& what,
              const std::vector<std::string>& models);

  void Finished(const std::string& model, absl::string_view outcome, absl::Duration duration);
  void FirstToken(const std::string& model, absl::Duration ttft);

 private:
  struct PerModel {
    std::map<std::string, prometheus::Counter*, std::less<>> requests;
    std::map<std::string, prometheus::Histogram*, std::less<>> durations;
    prometheus::Histogram* ttft;
  };
  PerModel& For(const std::string& model);

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  absl::Mutex mu_;
  std::map<std::string, PerModel> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_CALL_METRICS_H_
