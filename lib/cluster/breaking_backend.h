// BreakingBackend: a GenerationBackend that puts a CircuitBreaker in front
// of each model of another one, so a model known to be down fails at once
// (counted as a failed proposal) instead of holding a layer up. It counts
// the model's own failures (marked by its proposer, see MarkFromUpstream),
// not those of the path to it, which gRPC and the retries handle.
#ifndef MOA_LIB_CLUSTER_BREAKING_BACKEND_H_
#define MOA_LIB_CLUSTER_BREAKING_BACKEND_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lib/base/circuit_breaker.h"
#include "lib/cluster/generation_backend.h"

namespace moa::cluster {

class BreakingBackend final : public GenerationBackend {
 public:
  using OnChange = std::function<void(const std::string& model, CircuitBreaker::State)>;

  // A breaker for each of `models` (calls to other models pass through).
  // `inner` and `clock` must outlive this; `on_change` may be empty.
  BreakingBackend(GenerationBackend* inner, const std::vector<std::string>& models,
                  BreakerOptions options, const Clock* clock, OnChange on_change = {});

  std::shared_ptr<llm::CallHandle> Start(GenerationCall call,
                                         std::shared_ptr<GenerationObserver> observer) override;
  // Counts as the model's failure: a model that hangs opens its breaker.
  void ReportStuck(const std::string& model) override;
  // The state of `model`'s breaker; nullopt for a model without one.
  std::optional<CircuitBreaker::State> StateOf(const std::string& model) const;

 private:
  GenerationBackend* const inner_;
  std::map<std::string, std::unique_ptr<CircuitBreaker>, std::less<>> breakers_;
};

}  // namespace moa::cluster

#endif  // MOA_LIB_CLUSTER_BREAKING_BACKEND_H_
