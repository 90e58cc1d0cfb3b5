#include "services/orchestrator/orchestrator_service.h"

#include "lib/base/cancel_slot.h"
#include "lib/server/grpc_server.h"
#include "lib/server/server_stream_reactor.h"
#include "lib/server/trace_metadata.h"
#include "services/orchestrator/cluster_view.h"
#include "services/orchestrator/engine/pipeline.h"

namespace moa::orchestrator {

absl::StatusOr<std::shared_ptr<const ApiKey>> CheckGrpcAuth(
    const grpc::CallbackServerContext& context, const ApiKeys& keys) {
  if (!keys.enabled()) return std::shared_ptr<const ApiKey>();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "missing API key: send metadata 'authorization: Bearer <key>'");
  }
  std::shared_ptr<const ApiKey> key =
      keys.Authenticate(absl::string_view(it->second.data(), it->second.size()));
  if (key == nullptr) return absl::UnauthenticatedError("incorrect API key");
  return key;
}

namespace {

// Merge rule of the Chat stream: text of the same stream queued behind a
// slow write goes out as one event.
struct MergeChatText {
  bool operator()(v1::ChatEvent& last, v1::ChatEvent& next) const {
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
};

// One Chat call: the MoaCall's events, streamed.
class ChatReactor final : public server::ServerStreamReactor<v1::ChatEvent, MergeChatText> {
 public:
  ChatReactor(Engine* engine, const ApiKeys& api_keys, KeyLimiter* limiter,
              grpc::CallbackServerContext* context, const v1::ChatRequest& request)
      : ServerStreamReactor(context) {
    // The request's id goes back in the initial metadata, failures included.
    TraceContext trace = server::TraceFromMetadata(*context);
    context->AddInitialMetadata(kRequestIdHeader, trace.request_id);
    absl::StatusOr<std::shared_ptr<const ApiKey>> key = CheckGrpcAuth(*context, api_keys);
    if (!key.ok()) {
      Close(key.status());
      return;
    }
    absl::Time client_deadline = absl::InfiniteFuture();
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      client_deadline = absl::FromChrono(context->deadline());
    }
    auto options =
        engine->Plan(request, client_deadline,
                     *key != nullptr ? Caller{(*key)->name, (*key)->limits.preset} : Caller{});
    if (!options.ok()) {
      Close(options.status());
      return;
    }
    options->trace = std::move(trace);
    auto slot = engine->Admit();
    if (!slot.ok()) {
      Close(slot.status());
      return;
    }
    if (*key != nullptr && limiter != nullptr) {
      // Last before the start: an admitted request always reports back.
      if (absl::Status limited = limiter->Admit(**key, &*options); !limited.ok()) {
        Close(limited);
        return;
      }
    }
    call_.Attach(
        engine->Start(*std::move(slot), *std::move(options), std::make_shared<Sink>(this)));
  }

 private:
  // The MoaCall's sink. The reactor outlives it: it finishes only after the
  // MoaCall's OnFinish, the sink's last call.
  class Sink final : public MoaCallSink {
   public:
    explicit Sink(ChatReactor* reactor) : reactor_(reactor) {}
    void OnEvent(v1::ChatEvent event) override { reactor_->Send(std::move(event)); }
    void OnFinish(absl::Status status) override {
      reactor_->call_.Close();  // The call holds this sink; let it go.
      reactor_->Close(std::move(status));
    }

   private:
    ChatReactor* reactor_;
  };

  void OnClientGone() override { call_.Cancel(); }

  CancelSlot<RunningCall> call_;
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* OrchestratorService::Chat(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  auto parsed = server::ParseRawRequest<v1::ChatRequest>(*request);
  if (!parsed.ok()) return server::RefusedStream(parsed.status());
  return new ChatReactor(engine_, *api_keys_, limiter_, context, *parsed);
}

grpc::ServerUnaryReactor* OrchestratorService::ListPipelines(
    grpc::CallbackServerContext* context, const v1::ListPipelinesRequest* request,
    v1::ListPipelinesResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (auto key = CheckGrpcAuth(*context, *api_keys_); !key.ok()) {
    reactor->Finish(server::ToGrpcStatus(key.status()));
    return reactor;
  }
  *response = DescribePipelines(engine_->config());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace moa::orchestrator
