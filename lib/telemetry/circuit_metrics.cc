#include "lib/telemetry/circuit_metrics.h"

namespace moa::telemetry {

CircuitMetrics::CircuitMetrics(prometheus::Registry& registry,
                               const std::vector<std::pair<std::string, std::string>>& breakers) {
  auto& family = prometheus::BuildGauge()
                     .Name("moa_circuit_state")
                     .Help("Circuit breaker state: 0 closed, 1 open (failing fast), 2 half-open.")
                     .Register(registry);
  for (const auto& [backend, model] : breakers) {
    gauges_[{backend, model}] = &family.Add({{"backend", backend}, {"model", model}});
  }
}

void CircuitMetrics::Set(const std::string& backend, const std::string& model, int state) const {
  auto it = gauges_.find({backend, model});
  if (it != gauges_.end()) it->second->Set(state);
}

}  // namespace moa::telemetry
