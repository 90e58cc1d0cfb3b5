#include "lib/telemetry/orchestrator_metrics.h"

#include "lib/telemetry/buckets.h"

namespace moa::telemetry {

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
                     .Register(registry)) {
  for (const PipelineShape& p : pipelines) {
    in_flight_.Add({{"pipeline", p.name}});
    answer_ttft_.Add({{"pipeline", p.name}}, TimeToFirstTokenBuckets());
    for (absl::string_view outcome : kOutcomes) {
      requests_.Add({{"pipeline", p.name}, {"outcome", std::string(outcome)}});
      request_duration_.Add({{"pipeline", p.name}, {"outcome", std::string(outcome)}},
                            DurationBuckets());
    }
    for (size_t i = 0; i < p.layers.size(); ++i) {
      std::string layer = std::to_string(i + 1);
      layer_duration_.Add({{"pipeline", p.name}, {"layer", layer}}, DurationBuckets());
      for (const std::string& m : p.layers[i]) {
        proposal_duration_.Add({{"pipeline", p.name},
                                {"layer", layer},
                                {"model", m},
                                {"role", "proposer"},
                                {"outcome", "ok"}},
                               DurationBuckets());
        proposal_ttft_.Add(
            {{"pipeline", p.name}, {"layer", layer}, {"model", m}, {"role", "proposer"}},
            TimeToFirstTokenBuckets());
      }
    }
    layer_duration_.Add({{"pipeline", p.name}, {"layer", "final"}}, DurationBuckets());
    proposal_duration_.Add({{"pipeline", p.name},
                            {"layer", "final"},
                            {"model", p.aggregator},
                            {"role", "aggregator"},
                            {"outcome", "ok"}},
                           DurationBuckets());
    proposal_ttft_.Add(
        {{"pipeline", p.name}, {"layer", "final"}, {"model", p.aggregator}, {"role", "aggregator"}},
        TimeToFirstTokenBuckets());
  }
}

void OrchestratorMetrics::RequestStarted(const std::string& pipeline) {
  in_flight_.Add({{"pipeline", pipeline}}).Increment();
}

void OrchestratorMetrics::RequestFinished(const std::string& pipeline, absl::string_view outcome,
                                          absl::Duration duration) {
  in_flight_.Add({{"pipeline", pipeline}}).Decrement();
  requests_.Add({{"pipeline", pipeline}, {"outcome", std::string(outcome)}}).Increment();
  request_duration_
      .Add({{"pipeline", pipeline}, {"outcome", std::string(outcome)}}, DurationBuckets())
      .Observe(absl::ToDoubleSeconds(duration));
}

void OrchestratorMetrics::AnswerFirstToken(const std::string& pipeline, absl::Duration ttft) {
  answer_ttft_.Add({{"pipeline", pipeline}}, TimeToFirstTokenBuckets())
      .Observe(absl::ToDoubleSeconds(ttft));
}

void OrchestratorMetrics::LayerDone(const std::string& pipeline, const std::string& layer,
                                    absl::Duration d) {
  layer_duration_.Add({{"pipeline", pipeline}, {"layer", layer}}, DurationBuckets())
      .Observe(absl::ToDoubleSeconds(d));
}

void OrchestratorMetrics::ProposalDone(const std::string& pipeline, const std::string& layer,
                                       const std::string& model, const std::string& role,
                                       absl::string_view outcome, absl::Duration d) {
  proposal_duration_
      .Add({{"pipeline", pipeline},
            {"layer", layer},
            {"model", model},
            {"role", role},
            {"outcome", std::string(outcome)}},
           DurationBuckets())
      .Observe(absl::ToDoubleSeconds(d));
}

void OrchestratorMetrics::ProposalFirstToken(const std::string& pipeline, const std::string& layer,
                                             const std::string& model, const std::string& role,
                                             absl::Duration ttft) {
  proposal_ttft_
      .Add({{"pipeline", pipeline}, {"layer", layer}, {"model", model}, {"role", role}},
           TimeToFirstTokenBuckets())
      .Observe(absl::ToDoubleSeconds(ttft));
}

void OrchestratorMetrics::Tokens(const std::string& pipeline, const std::string& model,
                                 int64_t prompt, int64_t completion) {
  if (prompt > 0) {
    tokens_.Add({{"pipeline", pipeline}, {"model", model}, {"direction", "prompt"}})
        .Increment(static_cast<double>(prompt));
  }
  if (completion > 0) {
    tokens_.Add({{"pipeline", pipeline}, {"model", model}, {"direction", "completion"}})
        .Increment(static_cast<double>(completion));
  }
}

}  // namespace moa::telemetry
