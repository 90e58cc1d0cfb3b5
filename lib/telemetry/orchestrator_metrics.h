// The orchestrator's metrics (moa_*): per pipeline, layer, model and role.
#ifndef MOA_LIB_TELEMETRY_ORCHESTRATOR_METRICS_H_
#define MOA_LIB_TELEMETRY_ORCHESTRATOR_METRICS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/telemetry/outcome.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace moa::telemetry {

struct PipelineShape {
  std::string name;
  std::vector<std::vector<std::string>> layers;
  std::string aggregator;
  std::vector<std::string> aggregator_fallbacks = {};  // Calls 1.. of the final step.
  // Each layer's step kind (the `step` label: propose, synthesize, rank,
  // ...); missing ones are "propose" for the first layer, then "synthesize".
  std::vector<std::string> steps = {};
  std::string terminal = "aggregate";  // The final step's kind; a vote has no calls.
  bool operator==(const PipelineShape& o) const {
    return name == o.name && layers == o.layers && aggregator == o.aggregator &&
           aggregator_fallbacks == o.aggregator_fallbacks && steps == o.steps &&
           terminal == o.terminal;
  }
};

// Every child one request of a pipeline touches, resolved when the request
// starts. Steps are the layers (0-based) and then the final answer (step
// layers.size()); calls are indexed by their model's place in the step.
// Immutable and thread-safe; methods touch only their child.
class PipelineMetrics {
 public:
  void RequestStarted() const;
  void RequestFinished(Outcome outcome, absl::Duration duration) const;
  void AnswerFirstToken(absl::Duration ttft) const;
  // The final answer was cut mid-stream and is being continued.
  void AnswerResumed() const;
  // Aggregator calls that wrote one answer (staircase steps; 1 otherwise).
  void AnswerSteps(int steps) const;
  // The pipeline's early_stop answered with agreed answers, skipping the
  // steps after them and the aggregator.
  void EarlyStop() const;
  void StepDone(size_t step, absl::Duration duration) const;
  void CallDone(size_t step, size_t call, Outcome outcome, absl::Duration duration) const;
  void CallFirstToken(size_t step, size_t call, absl::Duration ttft) const;
  void Tokens(size_t step, size_t call, int64_t prompt, int64_t completion) const;

 private:
  friend class OrchestratorMetrics;
  struct Call {
    PerOutcome<prometheus::Histogram> duration{};
    prometheus::Histogram* ttft = nullptr;
    prometheus::Counter* prompt_tokens = nullptr;
    prometheus::Counter* completion_tokens = nullptr;
  };
  struct Step {
    prometheus::Histogram* duration = nullptr;
    std::vector<Call> calls;
  };
  prometheus::Gauge* in_flight_ = nullptr;
  PerOutcome<prometheus::Counter> requests_{};
  PerOutcome<prometheus::Histogram> request_duration_{};
  prometheus::Histogram* answer_ttft_ = nullptr;
  prometheus::Counter* resumes_ = nullptr;
  prometheus::Counter* early_stops_ = nullptr;
  prometheus::Histogram* answer_steps_ = nullptr;
  std::vector<Step> steps_;
};

// Label sets are bounded by the config (pipelines, their layers and models;
// inline specs count as pipeline "inline"). Thread-safe.
class OrchestratorMetrics {
 public:
  // Builds the children of the configured pipelines up front.
  OrchestratorMetrics(prometheus::Registry& registry, const std::vector<PipelineShape>& pipelines);

  // The children for one request: a configured pipeline's are shared; an
  // inline spec's are resolved on its shape's first request and kept (at
  // most kMaxInlineShapes shapes; past that, resolved per request).
  std::shared_ptr<const PipelineMetrics> For(const PipelineShape& shape);

  // Adds to moa_cost_dollars_total{model,key}. Each (model, key) child is
  // built on its first use and kept: the label set is bounded by the
  // config's models and the client keys.
  void AddCost(const std::string& model, const std::string& key, double dollars);

  // Adds one to moa_routes_total{route,pipeline,by}: a request that named a
  // route ran `pipeline`, chosen `by` rule, classifier or default. Bounded
  // by the config's routes and pipelines.
  void Routed(const std::string& route, const std::string& pipeline, const std::string& by);

  // Adds to moa_skipped_calls_total{pipeline} and moa_saved_dollars_total
  // {pipeline}: calls a preset or early stop left out of one request, and
  // their estimated cost (Summary.saved_dollars).
  void Saved(const std::string& pipeline, int calls, double dollars);

 private:
  std::shared_ptr<const PipelineMetrics> Build(const PipelineShape& shape);

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Histogram>& answer_ttft_;
  prometheus::Family<prometheus::Histogram>& layer_duration_;
  prometheus::Family<prometheus::Histogram>& proposal_duration_;
  prometheus::Family<prometheus::Histogram>& proposal_ttft_;
  prometheus::Family<prometheus::Counter>& tokens_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  prometheus::Family<prometheus::Counter>& resumes_;
  prometheus::Family<prometheus::Counter>& early_stops_;
  prometheus::Family<prometheus::Histogram>& answer_steps_;
  prometheus::Family<prometheus::Counter>& cost_;
  prometheus::Family<prometheus::Counter>& routes_;
  prometheus::Family<prometheus::Counter>& skipped_calls_;
  prometheus::Family<prometheus::Counter>& saved_dollars_;
  // Written only in the constructor.
  std::vector<std::pair<PipelineShape, std::shared_ptr<const PipelineMetrics>>> configured_;
  static constexpr size_t kMaxInlineShapes = 256;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const PipelineMetrics>> inline_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, prometheus::Counter*> cost_children_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_ORCHESTRATOR_METRICS_H_
