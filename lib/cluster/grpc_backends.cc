#include "lib/cluster/grpc_backends.h"

#include <grpcpp/alarm.h>

#include <algorithm>
#include <atomic>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/base/retry_after.h"
#include "lib/server/grpc_server.h"
#include "lib/server/trace_metadata.h"
#include "lib/wire/wire.h"

namespace moa::cluster {
namespace {

// The ClientContext lives in a shared object so the handle can cancel the
// call at any time, even after the reactor has deleted itself (TryCancel on
// a finished call does nothing).
struct CallContext {
  grpc::ClientContext context;
  std::shared_ptr<grpc::Channel> channel;
  // Set when the connect wait ran out before the channel was ready.
  std::atomic<bool> unreachable{false};
  // Only for a call that starts while its channel is not ready; set before
  // the call starts, so OnDone sees it without a lock.
  std::optional<grpc::Alarm> connect_alarm;
};

class Handle final : public llm::CallHandle {
 public:
  explicit Handle(std::shared_ptr<CallContext> ctx) : ctx_(std::move(ctx)) {}
  void Cancel() override { ctx_->context.TryCancel(); }

 private:
  std::shared_ptr<CallContext> ctx_;
};

// Reads one generation stream (GenerateResponse or AggregateResponse) and
// forwards it to the observer.
template <typename Response>
class StreamReader final : public grpc::ClientReadReactor<Response> {
 public:
  // `request` is kept until OnDone, as gRPC requires.
  StreamReader(std::shared_ptr<CallContext> ctx, std::shared_ptr<GenerationObserver> observer,
               std::unique_ptr<google::protobuf::Message> request, std::string what,
               absl::Time deadline)
      : ctx_(std::move(ctx)),
        observer_(std::move(observer)),
        request_(std::move(request)),
        what_(std::move(what)),
        deadline_(deadline) {}

  // `connect_wait`: how long the call may wait for a connection (see
  // ChannelOptions) before it is cancelled and reported UNAVAILABLE.
  void Begin(absl::Duration connect_wait) {
    if (ctx_->channel->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
      std::shared_ptr<CallContext> ctx = ctx_;
      absl::Time at = std::min(absl::Now() + connect_wait, deadline_);
      ctx->connect_alarm.emplace();
      ctx->connect_alarm->Set(absl::ToChronoTime(at), [ctx](bool fired) {
        // A call waiting for a connection is queued until the channel is
        // ready; once ready, the call has been sent and goes on.
        if (fired && ctx->channel->GetState(false) != GRPC_CHANNEL_READY) {
          ctx->unreachable = true;
          ctx->context.TryCancel();
        }
      });
    }
    this->StartRead(&response_);
    this->StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows.
    if (response_.has_completion()) {
      completion_ = response_.completion();
    } else if (response_.has_delta()) {
      // Empty: the first-byte mark of a whole-text call (no text yet).
      observer_->OnDelta(response_.delta());
    }
    this->StartRead(&response_);
  }

  // The trailers our services add to an error (see StreamFinalStatus): the
  // retry delay and whether the failure is the model's own.
  absl::Status WithTrailers(absl::Status status) const {
    const auto& trailers = ctx_->context.GetServerTrailingMetadata();
    if (trailers.find("moa-from-upstream") != trailers.end()) MarkFromUpstream(status);
    if (auto it = trailers.find("retry-after"); it != trailers.end()) {
      int64_t seconds;
      if (absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &seconds) &&
          seconds >= 0 && seconds <= 3600) {
        SetRetryAfter(status, absl::Seconds(seconds));
      }
    }
    return status;
  }

  void OnDone(const grpc::Status& status) override {
    if (ctx_->connect_alarm) ctx_->connect_alarm->Cancel();
    if (status.ok() && completion_) {
      absl::StatusOr<llm::Completion> completion = wire::FromProto(*completion_);
      if (!completion.ok()) {
        completion = absl::InternalError(
            absl::StrCat(what_, " sent a malformed completion: ", completion.status().message()));
      }
      observer_->OnDone(std::move(completion));
    } else if (status.ok()) {
      observer_->OnDone(absl::InternalError("stream ended without a completion"));
    } else if (ctx_->unreachable) {
      observer_->OnDone(absl::UnavailableError(
          absl::StrCat("could not connect to ", what_, " (down or restarting)")));
    } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
               absl::StrContains(status.error_message(), "larger than max")) {
      // gRPC's own size check between two of our services: not a rate limit,
      // and retrying cannot help. The limits section should prevent it.
      observer_->OnDone(absl::InternalError(
          absl::StrCat("a message to or from ", what_,
                       " exceeded the cluster's message size limit: ", status.error_message())));
    } else {
      observer_->OnDone(WithTrailers(server::FromGrpcStatus(status)));
    }
    delete this;
  }

 private:
  std::shared_ptr<CallContext> ctx_;
  std::shared_ptr<GenerationObserver> observer_;
  std::unique_ptr<google::protobuf::Message> request_;
  const std::string what_;
  const absl::Time deadline_;
  Response response_;
  std::optional<v1::Completion> completion_;
};

std::shared_ptr<CallContext> NewContext(absl::Time deadline,
                                        std::shared_ptr<grpc::Channel> channel) {
  auto ctx = std::make_shared<CallContext>();
  ctx->channel = std::move(channel);
  if (deadline != absl::InfiniteFuture()) ctx->context.set_deadline(absl::ToChronoTime(deadline));
  // Wait for a (re)connection instead of failing at once; the connect wait
  // in StreamReader bounds it.
  ctx->context.set_wait_for_ready(true);
  return ctx;
}

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
  args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  const int max_backoff_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options.max_reconnect_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(100, max_backoff_ms));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(100, max_backoff_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  // Keep idle connections to proposers warm; fail fast when one is gone.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  // No gRPC-level retries: our calls stream, and a failed child call is
  // decided by the layer policy, hedging and fallbacks. The retry filter
  // also keeps several KiB of state in every call's arena.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // Identity only, as on every server (lib/server/grpc_server.cc): an answer
  // in gzip would be inflated whole before the size limit is checked.
  args.SetInt(GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET, 1 << GRPC_COMPRESS_NONE);
  return grpc::CreateCustomChannel(
      target, options.credentials ? options.credentials : grpc::InsecureChannelCredentials(), args);
}

ProposerBackend::ProposerBackend(const config::ClusterConfig& config, ChannelOptions options)
    : options_(options) {
  for (const config::ModelConfig& m : config.models) {
    auto channel = MakeChannel(m.endpoint, options_);
    proposers_[m.name] = {channel, v1::ProposerService::NewStub(channel)};
  }
}

std::shared_ptr<grpc::Channel> ProposerBackend::ChannelFor(const std::string& model) const {
  auto it = proposers_.find(model);
  return it == proposers_.end() ? nullptr : it->second.channel;
}

std::shared_ptr<llm::CallHandle> ProposerBackend::Start(
    GenerationCall call, std::shared_ptr<GenerationObserver> observer) {
  auto it = proposers_.find(call.model);
  if (it == proposers_.end()) {
    observer->OnDone(absl::NotFoundError(
        absl::StrCat("model ", call.model, " is not defined in the cluster config")));
    return llm::EndedCall();
  }
  auto ctx = NewContext(call.deadline, it->second.channel);
  server::AddTraceMetadata(call.trace, &ctx->context);
  auto request = std::make_unique<v1::GenerateRequest>();
  wire::ToProto(call.messages, request->mutable_messages());
  wire::ToProto(call.params, request->mutable_params());
  request->set_whole_text(call.whole_text);
  request->set_continue_from(call.continue_from);
  wire::ToProto(call.tools, request->mutable_tools());
  const v1::GenerateRequest* request_ptr = request.get();
  auto* reader = new StreamReader<v1::GenerateResponse>(
      ctx, std::move(observer), std::move(request),
      absl::StrCat("the proposer of model ", call.model), call.deadline);
  it->second.stub->async()->Generate(&ctx->context, request_ptr, reader);
  reader->Begin(options_.connect_wait);
  return std::make_shared<Handle>(ctx);
}

AggregatorBackend::AggregatorBackend(const std::string& endpoint, ChannelOptions options)
    : options_(options),
      channel_(MakeChannel(endpoint, options_)),
      stub_(v1::AggregatorService::NewStub(channel_)) {}

std::shared_ptr<llm::CallHandle> AggregatorBackend::Start(
    GenerationCall call, std::shared_ptr<GenerationObserver> observer) {
  auto ctx = NewContext(call.deadline, channel_);
  server::AddTraceMetadata(call.trace, &ctx->context);
  auto request = std::make_unique<v1::AggregateRequest>();
  request->set_model(call.model);
  wire::ToProto(call.messages, request->mutable_messages());
  for (const synthesis::Reference& r : call.references) {
    v1::Reference* ref = request->add_references();
    ref->set_model(r.model);
    ref->set_text(r.text);
    ref->set_partial(r.partial);
  }
  wire::ToProto(call.params, request->mutable_params());
  request->set_whole_text(call.whole_text);
  request->set_continue_from(call.continue_from);
  request->set_analysis(call.analysis);
  wire::ToProto(call.tools, request->mutable_tools());
  const v1::AggregateRequest* request_ptr = request.get();
  auto* reader = new StreamReader<v1::AggregateResponse>(
      ctx, std::move(observer), std::move(request), "the aggregator", call.deadline);
  stub_->async()->Aggregate(&ctx->context, request_ptr, reader);
  reader->Begin(options_.connect_wait);
  return std::make_shared<Handle>(ctx);
}

}  // namespace moa::cluster
