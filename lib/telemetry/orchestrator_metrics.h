// The orchestrator's metrics (moa_*): per pipeline, layer, model and role.
#ifndef MOA_LIB_TELEMETRY_ORCHESTRATOR_METRICS_H_
#define MOA_LIB_TELEMETRY_ORCHESTRATOR_METRICS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace moa::telemetry {

// Thread-safe. Label sets are bounded by the config (pipelines, their
// layers and models; inline specs count as pipeline "inline"); children
// are created on first use, and up front for the configured pipelines.
class OrchestratorMetrics {
 public:
  struct PipelineShape {
    std::string name;
    std::vector<std::vector<std::string>> layers;
    std::string aggregator;
  };

  OrchestratorMetrics(prometheus::Registry& registry, const std::vector<PipelineShape>& pipelines);

  void RequestStarted(const std::string& pipeline);
  void RequestFinished(const std::string& pipeline, absl::string_view outcome,
                       absl::Duration duration);
  void AnswerFirstToken(const std::string& pipeline, absl::Duration ttft);
  // `layer` is "1", "2", ... or "final".
  void LayerDone(const std::string& pipeline, const std::string& layer, absl::Duration d);
  // `role` is "proposer" or "aggregator".
  void ProposalDone(const std::string& pipeline, const std::string& layer, const std::string& model,
                    const std::string& role, absl::string_view outcome, absl::Duration d);
  void ProposalFirstToken(const std::string& pipeline, const std::string& layer,
                          const std::string& model, const std::string& role, absl::Duration ttft);
  void Tokens(const std::string& pipeline, const std::string& model, int64_t prompt,
              int64_t completion);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Histogram>& answer_ttft_;
  prometheus::Family<prometheus::Histogram>& layer_duration_;
  prometheus::Family<prometheus::Histogram>& proposal_duration_;
  prometheus::Family<prometheus::Histogram>& proposal_ttft_;
  prometheus::Family<prometheus::Counter>& tokens_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
};

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_ORCHESTRATOR_METRICS_H_
