#include "lib/telemetry/hedge_metrics.h"

namespace moa::telemetry {

HedgeMetrics::HedgeMetrics(prometheus::Registry& registry,
                           const std::vector<std::pair<std::string, std::string>>& pairs) {
  auto& family = prometheus::BuildCounter()
                     .Name("moa_hedges_total")
                     .Help("Hedged calls: started, and won by the hedge.")
                     .Register(registry);
  for (const auto& [backend, model] : pairs) {
    for (bool won : {false, true}) {
      counters_[{backend, model, won}] = &family.Add(
          {{"backend", backend}, {"model", model}, {"result", won ? "won" : "started"}});
    }
  }
}

void HedgeMetrics::Count(const std::string& backend, const std::string& model, bool won) const {
  auto it = counters_.find({backend, model, won});
  if (it != counters_.end()) it->second->Increment();
}

}  // namespace moa::telemetry
