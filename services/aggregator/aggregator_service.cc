#include "services/aggregator/aggregator_service.h"

#include "absl/strings/str_cat.h"
#include "lib/base/cancel_slot.h"
#include "lib/cluster/generation_stream_reactor.h"
#include "lib/server/trace_metadata.h"
#include "lib/synthesis/synthesis.h"
#include "lib/telemetry/outcome.h"
#include "lib/wire/wire.h"

namespace moa::aggregator {

absl::StatusOr<cluster::GenerationCall> PlanAggregate(const v1::AggregateRequest& request,
                                                      const AggregatorOptions& options) {
  const config::Limits& limits = options.limits;
  if (request.model().empty()) return absl::InvalidArgumentError("model must not be empty");
  if (options.models.count(request.model()) == 0) {
    return absl::NotFoundError(
        absl::StrCat("model '", request.model(), "' is not defined in the cluster config"));
  }
  absl::StatusOr<std::vector<llm::Message>> messages = wire::ToMessages(request.messages());
  if (!messages.ok()) return messages.status();
  absl::StatusOr<llm::SamplingParams> params = wire::ToParams(request.params());
  if (!params.ok()) return params.status();
  if (request.messages_size() > limits.max_messages) {
    return absl::InvalidArgumentError(absl::StrCat("messages: ", request.messages_size(),
                                                   " messages, over limits.max_messages (",
                                                   limits.max_messages, ")"));
  }
  if (request.references().empty()) {
    return absl::InvalidArgumentError("references: at least one reference is required");
  }
  if (request.references_size() > limits.max_models_per_layer) {
    return absl::InvalidArgumentError(absl::StrCat(
        "references: ", request.references_size(),
        " references, over limits.max_models_per_layer (", limits.max_models_per_layer, ")"));
  }
  for (int i = 0; i < request.references_size(); ++i) {
    const std::string& text = request.references(i).text();
    if (text.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("references[", i, "].text must not be empty"));
    }
    if (static_cast<int64_t>(text.size()) > limits.max_answer_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("references[", i, "].text is ", text.size(),
                                                     " bytes, over limits.max_answer_bytes (",
                                                     limits.max_answer_bytes, ")"));
    }
  }
  std::vector<synthesis::Reference> refs;
  refs.reserve(request.references_size());
  for (const v1::Reference& r : request.references())
    refs.push_back({r.model(), r.text(), r.partial()});
  cluster::GenerationCall call;
  call.model = request.model();
  if (static_cast<int64_t>(request.analysis().size()) > limits.max_answer_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("analysis is ", request.analysis().size(),
                                                   " bytes, over limits.max_answer_bytes (",
                                                   limits.max_answer_bytes, ")"));
  }
  absl::StatusOr<llm::ToolOptions> tools = wire::ToTools(request.tools());
  if (!tools.ok()) return tools.status();
  call.messages = synthesis::WithReferences(
      *messages, refs,
      tools->empty() ? options.instruction
                     : absl::StrCat(options.instruction, " ", synthesis::kToolsNote),
      request.analysis());
  call.params = *std::move(params);
  call.tools = *std::move(tools);
  call.whole_text = request.whole_text();
  if (static_cast<int64_t>(request.continue_from().size()) > limits.max_answer_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("continue_from is ", request.continue_from().size(),
                     " bytes, over limits.max_answer_bytes (", limits.max_answer_bytes, ")"));
  }
  call.continue_from = request.continue_from();
  return call;
}

namespace {

// One Aggregate call: the synthesizing model's answer, through its proposer.
class AggregateReactor final : public cluster::GenerationStreamReactor<v1::AggregateResponse> {
 public:
  AggregateReactor(const AggregatorOptions& options, cluster::GenerationBackend* proposers,
                   telemetry::CallMetrics* metrics, const Clock* clock,
                   grpc::CallbackServerContext* context, const v1::AggregateRequest& request)
      : GenerationStreamReactor(context), clock_(clock), accepted_(clock->Now()) {
    absl::StatusOr<cluster::GenerationCall> call = PlanAggregate(request, options);
    if (!call.ok()) {
      Complete(call.status());
      return;
    }
    model_ = call->model;
    call->trace = server::TraceFromMetadata(*context);
    metrics_ = metrics->ForModel(model_);
    if (call->whole_text) HoldTextUntilComplete();
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      call->deadline = absl::FromChrono(context->deadline());
    }
    upstream_.Attach(proposers->Start(*std::move(call), std::make_shared<Observer>(this)));
  }

 private:
  class Observer final : public cluster::GenerationObserver {
   public:
    explicit Observer(AggregateReactor* reactor) : reactor_(reactor) {}
    void OnDelta(absl::string_view text) override { reactor_->OnUpstreamDelta(text); }
    void OnDone(absl::StatusOr<llm::Completion> result) override {
      reactor_->OnUpstreamDone(std::move(result));
    }

   private:
    AggregateReactor* reactor_;
  };

  void OnUpstreamDelta(absl::string_view text) {
    if (!first_delta_seen_) {
      first_delta_seen_ = true;
      metrics_->FirstToken(clock_->Now() - accepted_);
    }
    PushDelta(text);
  }

  void OnUpstreamDone(absl::StatusOr<llm::Completion> result) {
    upstream_.Close();
    metrics_->Finished(telemetry::OutcomeOf(result.status()), clock_->Now() - accepted_);
    if (!result.ok()) {
      Complete(result.status());
      return;
    }
    v1::Completion completion;
    wire::ToProto(*result, model_, &completion);
    Complete(std::move(completion));
  }

  void OnClientGone() override { upstream_.Cancel(); }

  const Clock* const clock_;
  const absl::Time accepted_;
  // Set before the upstream starts; read by its events.
  std::string model_;
  const telemetry::ModelCallMetrics* metrics_ = nullptr;
  bool first_delta_seen_ = false;  // Upstream events never run concurrently.
  CancelSlot<llm::CallHandle> upstream_;
};

}  // namespace

AggregatorService::AggregatorService(AggregatorOptions options,
                                     cluster::GenerationBackend* proposers,
                                     telemetry::CallMetrics* metrics, const Clock* clock)
    : options_(std::move(options)), proposers_(proposers), metrics_(metrics), clock_(clock) {}

grpc::ServerWriteReactor<grpc::ByteBuffer>* AggregatorService::Aggregate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  auto parsed = server::ParseRawRequest<v1::AggregateRequest>(*request);
  if (!parsed.ok()) return server::RefusedStream(parsed.status());
  return new AggregateReactor(options_, proposers_, metrics_, clock_, context, *parsed);
}

}  // namespace moa::aggregator
