#include "services/orchestrator/orchestrator_service.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lib/contract/contract.h"
#include "lib/server/grpc_server.h"

namespace moa::orchestrator {

absl::StatusOr<ResolvedPipeline> ValidateChatRequest(const v1::ChatRequest& request,
                                                     const config::ClusterConfig& config) {
  const config::Limits& limits = config.limits;
  if (int64_t size = static_cast<int64_t>(request.ByteSizeLong());
      size > limits.max_request_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("messages: the request is ", size,
                                                   " bytes, over limits.max_request_bytes (",
                                                   limits.max_request_bytes, ")"));
  }
  if (request.messages_size() > limits.max_messages) {
    return absl::InvalidArgumentError(absl::StrCat("messages: ", request.messages_size(),
                                                   " messages, over limits.max_messages (",
                                                   limits.max_messages, ")"));
  }
  if (absl::Status s = contract::ValidateMessages(request.messages()); !s.ok()) return s;
  if (absl::Status s = contract::ValidateParams(request.params()); !s.ok()) return s;
  return ResolvePipeline(request, config);
}

absl::Status CheckGrpcAuth(const grpc::CallbackServerContext& context, const ApiKeys& keys) {
  if (!keys.enabled()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "missing API key: send metadata 'authorization: Bearer <key>'");
  }
  if (!keys.CheckAuthorization(absl::string_view(it->second.data(), it->second.size()))) {
    return absl::UnauthenticatedError("incorrect API key");
  }
  return absl::OkStatus();
}

namespace {

// Appends `next` to `last` when both carry text for the same stream, so
// events queued behind a slow write go out as one message.
bool MergeInto(v1::ChatEvent& last, const v1::ChatEvent& next) {
  if (last.has_answer_delta() && next.has_answer_delta()) {
    last.mutable_answer_delta()->append(next.answer_delta());
    return true;
  }
  if (last.has_proposal_delta() && next.has_proposal_delta() &&
      last.proposal_delta().ref().layer() == next.proposal_delta().ref().layer() &&
      last.proposal_delta().ref().model() == next.proposal_delta().ref().model()) {
    last.mutable_proposal_delta()->mutable_text()->append(next.proposal_delta().text());
    return true;
  }
  return false;
}

}  // namespace

// One Chat call: streams a MoaCall's events with one write in flight.
class ChatReactor final : public grpc::ServerWriteReactor<v1::ChatEvent> {
 public:
  ChatReactor(OrchestratorService* service, grpc::CallbackServerContext* context,
              const v1::ChatRequest& request)
      : service_(service) {
    if (absl::Status auth = CheckGrpcAuth(*context, *service_->api_keys_); !auth.ok()) {
      Finish(server::ToGrpcStatus(auth));
      return;
    }
    auto pipeline = ValidateChatRequest(request, *service_->config_);
    if (!pipeline.ok()) {
      Finish(server::ToGrpcStatus(pipeline.status()));
      return;
    }
    if (absl::Status admitted = service_->admission_->TryAcquire(); !admitted.ok()) {
      Finish(server::ToGrpcStatus(admitted));
      return;
    }
    admitted_ = true;
    MoaCall::Options options;
    options.pipeline = *std::move(pipeline);
    options.conversation = contract::ToLlmMessages(request.messages());
    options.stream_proposals = request.stream_proposals();
    options.deadline = absl::Now() + service_->options_.request_timeout;
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      options.deadline = std::min(options.deadline, absl::FromChrono(context->deadline()));
    }
    auto call = MoaCall::Start(std::move(options), service_->backends_, service_->metrics_,
                               std::make_shared<Sink>(this));
    bool cancel_now;
    {
      absl::MutexLock lock(&mu_);
      call_ = call;
      cancel_now = cancel_pending_;
    }
    if (cancel_now) call->Cancel();
    service_->admission_->Track(call);
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok) broken_ = true;
    }
    if (!ok) CancelCall();
    Advance();
  }

  void OnCancel() override { CancelCall(); }

  void OnDone() override {
    if (admitted_) service_->admission_->Release();
    delete this;
  }

 private:
  // The MoaCall's sink. The reactor outlives it: it finishes only after the
  // MoaCall's OnFinish, the sink's last call.
  class Sink final : public MoaCallSink {
   public:
    explicit Sink(ChatReactor* reactor) : reactor_(reactor) {}
    void OnEvent(v1::ChatEvent event) override { reactor_->Enqueue(std::move(event)); }
    void OnFinish(absl::Status status) override { reactor_->CallFinished(std::move(status)); }

   private:
    ChatReactor* reactor_;
  };

  void CancelCall() {
    std::shared_ptr<MoaCall> call;
    {
      absl::MutexLock lock(&mu_);
      if (!call_) {
        cancel_pending_ = true;  // OnCancel before the constructor stored the call.
        return;
      }
      call = call_;
    }
    call->Cancel();
  }

  void Enqueue(v1::ChatEvent event) {
    {
      absl::MutexLock lock(&mu_);
      if (broken_) return;
      if (queue_.empty() || !MergeInto(queue_.back(), event)) queue_.push_back(std::move(event));
    }
    Advance();
  }

  void CallFinished(absl::Status status) {
    {
      absl::MutexLock lock(&mu_);
      final_status_ = std::move(status);
      call_finished_ = true;
    }
    Advance();
  }

  void Advance() {
    enum class Action { kNone, kWrite, kFinish } action = Action::kNone;
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (write_in_flight_ || finished_) return;
      if (!broken_ && !queue_.empty()) {
        write_ = std::move(queue_.front());
        queue_.pop_front();
        write_in_flight_ = true;
        action = Action::kWrite;
      } else if (call_finished_) {
        finished_ = true;
        status = final_status_;
        action = Action::kFinish;
      }
    }
    if (action == Action::kWrite) {
      StartWrite(&write_);
    } else if (action == Action::kFinish) {
      Finish(server::ToGrpcStatus(status));
    }
  }

  OrchestratorService* const service_;
  bool admitted_ = false;
  v1::ChatEvent write_;  // Owned by gRPC while a write is in flight.

  absl::Mutex mu_;
  std::shared_ptr<MoaCall> call_ ABSL_GUARDED_BY(mu_);
  bool cancel_pending_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::ChatEvent> queue_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool call_finished_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
};

OrchestratorService::OrchestratorService(OrchestratorOptions options,
                                         const config::ClusterConfig* config, MoaBackends backends,
                                         telemetry::OrchestratorMetrics* metrics,
                                         Admission* admission, const ApiKeys* api_keys)
    : options_(options),
      config_(config),
      backends_(backends),
      metrics_(metrics),
      admission_(admission),
      api_keys_(api_keys) {}

grpc::ServerWriteReactor<v1::ChatEvent>* OrchestratorService::Chat(
    grpc::CallbackServerContext* context, const v1::ChatRequest* request) {
  return new ChatReactor(this, context, *request);
}

grpc::ServerUnaryReactor* OrchestratorService::ListPipelines(
    grpc::CallbackServerContext* context, const v1::ListPipelinesRequest* request,
    v1::ListPipelinesResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (absl::Status auth = CheckGrpcAuth(*context, *api_keys_); !auth.ok()) {
    reactor->Finish(server::ToGrpcStatus(auth));
    return reactor;
  }
  for (const config::PipelineConfig& p : config_->pipelines) {
    v1::PipelineInfo* info = response->add_pipelines();
    info->set_name(p.name);
    for (const auto& layer : p.layers) {
      auto* l = info->add_layers();
      for (const auto& m : layer) l->add_models(m);
    }
    info->set_aggregator(p.aggregator);
    *info->mutable_params() = MergeParams(&p, v1::SamplingParams());
    info->set_is_default(p.name == config_->default_pipeline);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace moa::orchestrator
