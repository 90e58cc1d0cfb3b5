#include "lib/telemetry/upstream_metrics.h"

#include "lib/telemetry/buckets.h"
#include "lib/telemetry/children.h"

namespace moa::telemetry {

UpstreamMetrics::UpstreamMetrics(prometheus::Registry& registry, const std::string& model) {
  auto& requests = prometheus::BuildCounter()
                       .Name("moa_upstream_requests_total")
                       .Help("Upstream chat-completion calls by model and final outcome.")
                       .Register(registry);
  auto& durations = prometheus::BuildHistogram()
                        .Name("moa_upstream_request_duration_seconds")
                        .Help("Upstream call duration, retries included, by model and outcome.")
                        .Register(registry);
  auto& ttft = prometheus::BuildHistogram()
                   .Name("moa_upstream_time_to_first_token_seconds")
                   .Help("Time from accepting a call to its first streamed token.")
                   .Register(registry);
  auto& inter_token = prometheus::BuildHistogram()
                          .Name("moa_upstream_inter_token_latency_seconds")
                          .Help("Gap between consecutive streamed pieces of text.")
                          .Register(registry);
  auto& tokens = prometheus::BuildCounter()
                     .Name("moa_upstream_tokens_total")
                     .Help(
                         "Tokens as reported by the upstream; direction is prompt, completion or "
                         "reasoning (the part of completion a reasoning model spent thinking).")
                     .Register(registry);
  auto& inflight = prometheus::BuildGauge()
                       .Name("moa_upstream_inflight")
                       .Help("Upstream calls in flight.")
                       .Register(registry);
  auto& retries = prometheus::BuildCounter()
                      .Name("moa_upstream_retries_total")
                      .Help("Upstream attempts retried, by the outcome of the failed attempt.")
                      .Register(registry);
  requests_ = CountersPerOutcome(requests, {{"model", model}});
  durations_ = HistogramsPerOutcome(durations, {{"model", model}}, DurationBuckets());
  for (Outcome reason : {Outcome::kRateLimited, Outcome::kUnavailable}) {
    retries_[static_cast<size_t>(reason)] =
        &retries.Add({{"model", model}, {"reason", std::string(OutcomeName(reason))}});
  }
  time_to_first_token_ = &ttft.Add({{"model", model}}, TimeToFirstTokenBuckets());
  inter_token_ = &inter_token.Add({{"model", model}}, InterTokenBuckets());
  prompt_tokens_ = &tokens.Add({{"model", model}, {"direction", "prompt"}});
  completion_tokens_ = &tokens.Add({{"model", model}, {"direction", "completion"}});
  reasoning_tokens_ = &tokens.Add({{"model", model}, {"direction", "reasoning"}});
  inflight_ = &inflight.Add({{"model", model}});
}

void UpstreamMetrics::RequestStarted() { inflight_->Increment(); }

void UpstreamMetrics::RequestFinished(Outcome outcome, absl::Duration duration) {
  inflight_->Decrement();
  requests_[static_cast<size_t>(outcome)]->Increment();
  durations_[static_cast<size_t>(outcome)]->Observe(absl::ToDoubleSeconds(duration));
}

void UpstreamMetrics::FirstToken(absl::Duration d) {
  time_to_first_token_->Observe(absl::ToDoubleSeconds(d));
}

void UpstreamMetrics::InterToken(absl::Duration gap) {
  inter_token_->Observe(absl::ToDoubleSeconds(gap));
}

void UpstreamMetrics::Tokens(int64_t prompt_tokens, int64_t completion_tokens,
                             int64_t reasoning_tokens) {
  if (prompt_tokens > 0) prompt_tokens_->Increment(static_cast<double>(prompt_tokens));
  if (completion_tokens > 0) completion_tokens_->Increment(static_cast<double>(completion_tokens));
  if (reasoning_tokens > 0) reasoning_tokens_->Increment(static_cast<double>(reasoning_tokens));
}

void UpstreamMetrics::Retry(Outcome reason) {
  if (prometheus::Counter* c = retries_[static_cast<size_t>(reason)]) c->Increment();
}

}  // namespace moa::telemetry
