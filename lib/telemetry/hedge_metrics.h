// moa_hedges_total{backend,model,result}: hedged calls started (result
// "started") and those the hedge won (result "won").
#ifndef MOA_LIB_TELEMETRY_HEDGE_METRICS_H_
#define MOA_LIB_TELEMETRY_HEDGE_METRICS_H_

#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace moa::telemetry {

class HedgeMetrics {
 public:
  // Children for every (backend, model) pair, up front.
  HedgeMetrics(prometheus::Registry& registry,
               const std::vector<std::pair<std::string, std::string>>& pairs);
  // Thread-safe; an unknown pair is ignored.
  void Count(const std::string& backend, const std::string& model, bool won) const;

 private:
  std::map<std::tuple<std::string, std::string, bool>, prometheus::Counter*> counters_;
};

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_HEDGE_METRICS_H_
