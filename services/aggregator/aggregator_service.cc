#include "services/aggregator/aggregator_service.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lib/cluster/generation_stream_reactor.h"
#include "lib/contract/contract.h"
#include "lib/llm/http_status.h"
#include "lib/synthesis/synthesis.h"

namespace moa::aggregator {

absl::Status ValidateAggregateRequest(const v1::AggregateRequest& request,
                                      const AggregatorOptions& options) {
  const config::Limits& limits = options.limits;
  if (request.model().empty()) return absl::InvalidArgumentError("model must not be empty");
  if (options.models.count(request.model()) == 0) {
    return absl::NotFoundError(
        absl::StrCat("model '", request.model(), "' is not defined in the cluster config"));
  }
  if (absl::Status s = contract::ValidateMessages(request.messages()); !s.ok()) return s;
  if (absl::Status s = contract::ValidateParams(request.params()); !s.ok()) return s;
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
  return absl::OkStatus();
}

class AggregateReactor final : public cluster::GenerationStreamReactor {
 public:
  AggregateReactor(AggregatorService* service, grpc::CallbackServerContext* context,
                   const v1::AggregateRequest& request)
      : GenerationStreamReactor(context),
        service_(service),
        model_(request.model()),
        accepted_(absl::Now()) {
    if (absl::Status valid = ValidateAggregateRequest(request, service_->options_); !valid.ok()) {
      Complete(valid);
      return;
    }
    if (request.whole_text()) HoldTextUntilComplete();
    std::vector<synthesis::Reference> refs;
    for (const v1::Reference& r : request.references()) refs.push_back({r.model(), r.text()});
    cluster::GenerationCall call;
    call.model = model_;
    call.messages = synthesis::WithReferences(contract::ToLlmMessages(request.messages()), refs,
                                              service_->options_.instruction);
    call.params = request.params();
    call.whole_text = request.whole_text();
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      call.deadline = absl::FromChrono(context->deadline());
    }
    // Started outside the lock: the backend may answer inside Start.
    auto upstream = service_->proposers_->Start(std::move(call), std::make_shared<Observer>(this));
    bool cancel_now;
    {
      absl::MutexLock lock(&mu_);
      upstream_ = upstream;
      cancel_now = client_gone_;
    }
    if (cancel_now) upstream->Cancel();
  }

 private:
  class Observer final : public cluster::GenerationObserver {
   public:
    explicit Observer(AggregateReactor* reactor) : reactor_(reactor) {}
    void OnDelta(absl::string_view text) override {
      if (!reactor_->first_delta_seen_) {
        reactor_->first_delta_seen_ = true;
        reactor_->service_->metrics_->FirstToken(reactor_->model_,
                                                 absl::Now() - reactor_->accepted_);
      }
      reactor_->PushDelta(text);
    }
    void OnDone(absl::StatusOr<v1::Completion> result) override {
      reactor_->service_->metrics_->Finished(reactor_->model_, llm::OutcomeLabel(result.status()),
                                             absl::Now() - reactor_->accepted_);
      reactor_->Complete(std::move(result));
    }

   private:
    AggregateReactor* reactor_;
  };

  void OnClientGone() override {
    std::shared_ptr<llm::CallHandle> upstream;
    {
      absl::MutexLock lock(&mu_);
      client_gone_ = true;
      upstream = upstream_;
    }
    if (upstream) upstream->Cancel();
  }

  AggregatorService* const service_;
  const std::string model_;
  const absl::Time accepted_;
  bool first_delta_seen_ = false;  // Observer events never run concurrently.
  absl::Mutex mu_;
  std::shared_ptr<llm::CallHandle> upstream_ ABSL_GUARDED_BY(mu_);
  bool client_gone_ ABSL_GUARDED_BY(mu_) = false;
};

AggregatorService::AggregatorService(AggregatorOptions options,
                                     cluster::GenerationBackend* proposers,
                                     telemetry::CallMetrics* metrics)
    : options_(std::move(options)), proposers_(proposers), metrics_(metrics) {}

grpc::ServerWriteReactor<v1::GenerateResponse>* AggregatorService::Aggregate(
    grpc::CallbackServerContext* context, const v1::AggregateRequest* request) {
  return new AggregateReactor(this, context, *request);
}

}  // namespace moa::aggregator
