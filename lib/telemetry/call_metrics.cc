#include "lib/telemetry/call_metrics.h"

#include "lib/telemetry/buckets.h"
#include "lib/telemetry/children.h"

namespace moa::telemetry {

void ModelCallMetrics::Finished(Outcome outcome, absl::Duration duration) const {
  requests_[static_cast<size_t>(outcome)]->Increment();
  durations_[static_cast<size_t>(outcome)]->Observe(absl::ToDoubleSeconds(duration));
}

void ModelCallMetrics::FirstToken(absl::Duration ttft) const {
  ttft_->Observe(absl::ToDoubleSeconds(ttft));
}

CallMetrics::CallMetrics(prometheus::Registry& registry, const std::string& prefix,
                         const std::string& what, const std::vector<std::string>& models)
    : requests_(prometheus::BuildCounter()
                    .Name(prefix + "_requests_total")
                    .Help(what + " by model and final outcome.")
                    .Register(registry)),
      durations_(prometheus::BuildHistogram()
                     .Name(prefix + "_request_duration_seconds")
                     .Help(what + ": duration by model and outcome.")
                     .Register(registry)),
      ttft_(prometheus::BuildHistogram()
                .Name(prefix + "_time_to_first_token_seconds")
                .Help(what + ": time to the first streamed token.")
                .Register(registry)) {
  for (const std::string& m : models) ForModel(m);
}

const ModelCallMetrics* CallMetrics::ForModel(const std::string& model) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = models_.try_emplace(model);
  ModelCallMetrics& m = it->second;
  if (inserted) {
    m.requests_ = CountersPerOutcome(requests_, {{"model", model}});
    m.durations_ = HistogramsPerOutcome(durations_, {{"model", model}}, DurationBuckets());
    m.ttft_ = &ttft_.Add({{"model", model}}, TimeToFirstTokenBuckets());
  }
  return &m;
}

}  // namespace moa::telemetry
