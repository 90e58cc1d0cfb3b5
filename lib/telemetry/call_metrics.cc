#include "lib/telemetry/call_metrics.h"

#include "lib/telemetry/buckets.h"

namespace moa::telemetry {

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
  for (const std::string& m : models) For(m);
}

CallMetrics::PerModel& CallMetrics::For(const std::string& model) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it != models_.end()) return it->second;
  PerModel& p = models_[model];
  for (absl::string_view outcome : kOutcomes) {
    std::string o(outcome);
    p.requests[o] = &requests_.Add({{"model", model}, {"outcome", o}});
    p.durations[o] = &durations_.Add({{"model", model}, {"outcome", o}}, DurationBuckets());
  }
  p.ttft = &ttft_.Add({{"model", model}}, TimeToFirstTokenBuckets());
  return p;
}

void CallMetrics::Finished(const std::string& model, absl::string_view outcome,
                           absl::Duration duration) {
  PerModel& p = For(model);
  auto it = p.requests.find(outcome);
  if (it == p.requests.end()) outcome = "upstream_error";
  p.requests.find(outcome)->second->Increment();
  p.durations.find(outcome)->second->Observe(absl::ToDoubleSeconds(duration));
}

void CallMetrics::FirstToken(const std::string& model, absl::Duration ttft) {
  For(model).ttft->Observe(absl::ToDoubleSeconds(ttft));
}

}  // namespace moa::telemetry
