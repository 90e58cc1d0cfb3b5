// moa_circuit_state{backend,model}: each circuit breaker's state (0 closed,
// 1 open, 2 half-open). `backend` is where the breaker sits: "upstream" in a
// proposer, "proposer" or "aggregator" in the orchestrator.
#ifndef MOA_LIB_TELEMETRY_CIRCUIT_METRICS_H_
#define MOA_LIB_TELEMETRY_CIRCUIT_METRICS_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace moa::telemetry {

class CircuitMetrics {
 public:
  // Children for every (backend, model) pair, at 0 (closed), up front.
  CircuitMetrics(prometheus::Registry& registry,
                 const std::vector<std::pair<std::string, std::string>>& breakers);
  // Thread-safe; an unknown pair is ignored.
  void Set(const std::string& backend, const std::string& model, int state) const;

 private:
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> gauges_;  // Built once.
};

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_CIRCUIT_METRICS_H_
