#include "lib/telemetry/orchestrator_metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/telemetry/buckets.h"
#include "lib/telemetry/children.h"

namespace moa::telemetry {

void PipelineMetrics::RequestStarted() const { in_flight_->Increment(); }

void PipelineMetrics::RequestFinished(Outcome outcome, absl::Duration duration) const {
  in_flight_->Decrement();
  requests_[static_cast<size_t>(outcome)]->Increment();
  request_duration_[static_cast<size_t>(outcome)]->Observe(absl::ToDoubleSeconds(duration));
}

void PipelineMetrics::AnswerFirstToken(absl::Duration ttft) const {
  answer_ttft_->Observe(absl::ToDoubleSeconds(ttft));
}

void PipelineMetrics::AnswerResumed() const { resumes_->Increment(); }
void PipelineMetrics::EarlyStop() const { early_stops_->Increment(); }

void PipelineMetrics::AnswerSteps(int steps) const { answer_steps_->Observe(steps); }

void PipelineMetrics::StepDone(size_t step, absl::Duration duration) const {
  steps_.at(step).duration->Observe(absl::ToDoubleSeconds(duration));
}

void PipelineMetrics::CallDone(size_t step, size_t call, Outcome outcome,
                               absl::Duration duration) const {
  steps_.at(step).calls.at(call).duration[static_cast<size_t>(outcome)]->Observe(
      absl::ToDoubleSeconds(duration));
}

void PipelineMetrics::CallFirstToken(size_t step, size_t call, absl::Duration ttft) const {
  steps_.at(step).calls.at(call).ttft->Observe(absl::ToDoubleSeconds(ttft));
}

void PipelineMetrics::Tokens(size_t step, size_t call, int64_t prompt, int64_t completion) const {
  const Call& c = steps_.at(step).calls.at(call);
  if (prompt > 0) c.prompt_tokens->Increment(static_cast<double>(prompt));
  if (completion > 0) c.completion_tokens->Increment(static_cast<double>(completion));
}

OrchestratorMetrics::OrchestratorMetrics(prometheus::Registry& registry,
                                         const std::vector<PipelineShape>& pipelines)
    : requests_(prometheus::BuildCounter()
                    .Name("moa_requests_total")
                    .Help("MoA requests by pipeline and final outcome.")
                    .Register(registry)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("moa_request_duration_seconds")
                            .Help("MoA request duration, from accepting it to its last event.")
                            .Register(registry)),
      answer_ttft_(prometheus::BuildHistogram()
                       .Name("moa_answer_time_to_first_token_seconds")
                       .Help("From accepting a request to the first token of its final answer.")
                       .Register(registry)),
      layer_duration_(prometheus::BuildHistogram()
                          .Name("moa_layer_duration_seconds")
                          .Help("Wall time of one layer (all its calls in parallel).")
                          .Register(registry)),
      proposal_duration_(prometheus::BuildHistogram()
                             .Name("moa_proposal_duration_seconds")
                             .Help("One model call of a pipeline, by layer, model, role, outcome.")
                             .Register(registry)),
      proposal_ttft_(prometheus::BuildHistogram()
                         .Name("moa_proposal_time_to_first_token_seconds")
                         .Help("Time to first token of one model call of a pipeline.")
                         .Register(registry)),
      tokens_(prometheus::BuildCounter()
                  .Name("moa_tokens_total")
                  .Help("Tokens used by a pipeline's calls; direction is prompt or completion.")
                  .Register(registry)),
      in_flight_(prometheus::BuildGauge()
                     .Name("moa_requests_in_flight")
                     .Help("MoA requests in flight.")
                     .Register(registry)),
      resumes_(prometheus::BuildCounter()
                   .Name("moa_answer_resumes_total")
                   .Help("Final answers cut mid-stream and continued by another call.")
                   .Register(registry)),
      early_stops_(prometheus::BuildCounter()
                       .Name("moa_early_stops_total")
                       .Help("Answers given by early stop: the answers of a step agreed, so the "
                             "steps after it and the aggregator were skipped.")
                       .Register(registry)),
      answer_steps_(prometheus::BuildHistogram()
                        .Name("moa_answer_steps")
                        .Help("Aggregator calls that wrote one answer: staircase steps, 1 in "
                              "normal streaming.")
                        .Register(registry)),
      cost_(prometheus::BuildCounter()
                .Name("moa_cost_dollars_total")
                .Help("What the upstream calls of requests cost, in dollars: tokens x the "
                      "model's price in the cluster config.")
                .Register(registry)),
      routes_(prometheus::BuildCounter()
                  .Name("moa_routes_total")
                  .Help("Requests that named a route, by the pipeline it chose and how: by a "
                        "rule, by the classifier, or the default.")
                  .Register(registry)),
      skipped_calls_(prometheus::BuildCounter()
                         .Name("moa_skipped_calls_total")
                         .Help("Model calls the pipeline as configured would have made that "
                               "requests did not: a preset's max_proposers, early stop.")
                         .Register(registry)),
      saved_dollars_(prometheus::BuildCounter()
                         .Name("moa_saved_dollars_total")
                         .Help("Estimated cost of the skipped calls: each priced as its "
                               "request's mean call at the skipped model's price (a lower "
                               "bound).")
                         .Register(registry)) {
  for (const PipelineShape& p : pipelines) configured_.emplace_back(p, Build(p));
}

std::shared_ptr<const PipelineMetrics> OrchestratorMetrics::For(const PipelineShape& shape) {
  for (const auto& [configured, metrics] : configured_) {
    if (configured == shape) return metrics;
  }
  std::string key = shape.name;
  for (const auto& layer : shape.layers) absl::StrAppend(&key, "|", absl::StrJoin(layer, ","));
  absl::StrAppend(&key, "|", shape.aggregator, "|", absl::StrJoin(shape.aggregator_fallbacks, ","),
                  "|", absl::StrJoin(shape.steps, ","), "|", shape.terminal);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = inline_.find(key); it != inline_.end()) return it->second;
  }
  // Built outside the lock: Family::Add takes the family's own.
  std::shared_ptr<const PipelineMetrics> built = Build(shape);
  absl::MutexLock lock(&mu_);
  if (inline_.size() < kMaxInlineShapes) inline_.emplace(std::move(key), built);
  return built;
}

void OrchestratorMetrics::AddCost(const std::string& model, const std::string& key,
                                  double dollars) {
  prometheus::Counter* counter = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto it = cost_children_.find({model, key});
    if (it != cost_children_.end()) counter = it->second;
  }
  if (counter == nullptr) {
    // Family::Add returns the same child for the same labels, so a race
    // between two first uses is harmless.
    counter = &cost_.Add({{"model", model}, {"key", key}});
    absl::MutexLock lock(&mu_);
    cost_children_.emplace(std::make_pair(model, key), counter);
  }
  counter->Increment(dollars);
}

void OrchestratorMetrics::Routed(const std::string& route, const std::string& pipeline,
                                 const std::string& by) {
  // Family::Add is thread-safe and returns the existing child.
  routes_.Add({{"route", route}, {"pipeline", pipeline}, {"by", by}}).Increment();
}

void OrchestratorMetrics::Saved(const std::string& pipeline, int calls, double dollars) {
  skipped_calls_.Add({{"pipeline", pipeline}}).Increment(calls);
  saved_dollars_.Add({{"pipeline", pipeline}}).Increment(dollars);
}

std::shared_ptr<const PipelineMetrics> OrchestratorMetrics::Build(const PipelineShape& shape) {
  auto m = std::make_shared<PipelineMetrics>();
  const Labels pipeline = {{"pipeline", shape.name}};
  m->in_flight_ = &in_flight_.Add(pipeline);
  m->requests_ = CountersPerOutcome(requests_, pipeline);
  m->request_duration_ = HistogramsPerOutcome(request_duration_, pipeline, DurationBuckets());
  m->answer_ttft_ = &answer_ttft_.Add(pipeline, TimeToFirstTokenBuckets());
  m->resumes_ = &resumes_.Add(pipeline);
  m->early_stops_ = &early_stops_.Add(pipeline);
  static const std::vector<double> kStepBuckets = {1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32};
  m->answer_steps_ = &answer_steps_.Add(pipeline, kStepBuckets);
  auto add_step = [&](const std::string& layer, const std::string& kind,
                      const std::vector<std::string>& models, const std::string& role) {
    PipelineMetrics::Step step;
    step.duration = &layer_duration_.Add(
        {{"pipeline", shape.name}, {"layer", layer}, {"step", kind}}, DurationBuckets());
    for (const std::string& model : models) {
      PipelineMetrics::Call call;
      Labels labels = {{"pipeline", shape.name},
                       {"layer", layer},
                       {"step", kind},
                       {"model", model},
                       {"role", role}};
      call.duration = HistogramsPerOutcome(proposal_duration_, labels, DurationBuckets());
      call.ttft = &proposal_ttft_.Add(labels, TimeToFirstTokenBuckets());
      call.prompt_tokens =
          &tokens_.Add({{"pipeline", shape.name}, {"model", model}, {"direction", "prompt"}});
      call.completion_tokens =
          &tokens_.Add({{"pipeline", shape.name}, {"model", model}, {"direction", "completion"}});
      step.calls.push_back(call);
    }
    m->steps_.push_back(std::move(step));
  };
  for (size_t i = 0; i < shape.layers.size(); ++i) {
    std::string kind = i < shape.steps.size() ? shape.steps[i] : i == 0 ? "propose" : "synthesize";
    add_step(std::to_string(i + 1), kind, shape.layers[i], "proposer");
  }
  std::vector<std::string> finals;
  if (shape.terminal == "aggregate") {
    finals = {shape.aggregator};
    finals.insert(finals.end(), shape.aggregator_fallbacks.begin(),
                  shape.aggregator_fallbacks.end());
  }
  add_step("final", shape.terminal, finals, "aggregator");
  return m;
}

}  // namespace moa::telemetry
