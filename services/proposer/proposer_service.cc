#include "services/proposer/proposer_service.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/base/cancel_slot.h"
#include "lib/base/circuit_breaker.h"
#include "lib/base/log.h"
#include "lib/base/retry_after.h"
#include "lib/base/utf8.h"
#include "lib/cluster/generation_stream_reactor.h"
#include "lib/server/trace_metadata.h"
#include "lib/telemetry/outcome.h"
#include "lib/wire/wire.h"

namespace moa::proposer {

namespace {

// Adds the answer so far to the conversation in the upstream's way.
void AskToContinue(llm::Continuation how, const std::string& answer_so_far,
                   llm::ChatRequest* chat) {
  switch (how) {
    case llm::Continuation::kPrefill:
    case llm::Continuation::kVllm:
      chat->messages.push_back({llm::Role::kAssistant, answer_so_far});
      chat->continue_final_message = how == llm::Continuation::kVllm;
      return;
    case llm::Continuation::kInstruction:
      chat->messages.push_back(
          {llm::Role::kUser, absl::StrCat(llm::kContinueInstruction, answer_so_far)});
      return;
  }
}

// What every Generate call of the service shares; outlives the calls.
struct Shared {
  const ProposerOptions& options;
  llm::LlmClient* client;
  telemetry::UpstreamMetrics* metrics;
  const Clock* clock;
  std::atomic<int>& inflight;
};

// One Generate call: validates, takes an in-flight slot, starts the upstream
// call and forwards its events to the stream.
class GenerateReactor final : public cluster::GenerationStreamReactor<v1::GenerateResponse> {
 public:
  GenerateReactor(Shared shared, grpc::CallbackServerContext* context,
                  const v1::GenerateRequest& request)
      : GenerationStreamReactor(context),
        shared_(shared),
        trace_(server::TraceFromMetadata(*context)),
        accepted_(shared.clock->Now()) {
    llm::ChatRequest chat;
    chat.trace = trace_;
    if (request.messages_size() > shared_.options.max_messages) {
      Complete(absl::InvalidArgumentError(absl::StrCat("messages: ", request.messages_size(),
                                                       " messages, over limits.max_messages (",
                                                       shared_.options.max_messages, ")")));
      return;
    }
    absl::StatusOr<std::vector<llm::Message>> messages = wire::ToMessages(request.messages());
    if (!messages.ok()) {
      Complete(messages.status());
      return;
    }
    absl::StatusOr<llm::SamplingParams> params = wire::ToParams(request.params());
    if (!params.ok()) {
      Complete(params.status());
      return;
    }
    absl::StatusOr<llm::ToolOptions> tools = wire::ToTools(request.tools());
    if (!tools.ok()) {
      Complete(tools.status());
      return;
    }
    chat.messages = *std::move(messages);
    chat.params = *std::move(params);
    chat.tools = *std::move(tools);
    if (static_cast<int64_t>(request.continue_from().size()) > shared_.options.max_answer_bytes) {
      Complete(absl::InvalidArgumentError(absl::StrCat(
          "continue_from is ", request.continue_from().size(),
          " bytes, over limits.max_answer_bytes (", shared_.options.max_answer_bytes, ")")));
      return;
    }
    if (!request.continue_from().empty()) {
      AskToContinue(shared_.options.continuation, request.continue_from(), &chat);
    }
    const ProposerOptions& options = shared_.options;
    if (shared_.inflight.fetch_add(1) + 1 > options.max_inflight) {
      shared_.inflight.fetch_sub(1);
      Complete(absl::ResourceExhaustedError(
          absl::StrCat("model ", options.model, " is at its limit of ", options.max_inflight,
                       " concurrent requests; retry later")));
      return;
    }
    counted_.store(true);
    shared_.metrics->RequestStarted();
    if (request.whole_text()) HoldTextUntilComplete();
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      // gRPC's deadline is wall-clock time; the client's timers compare it
      // with the same clock this service was given.
      chat.deadline = absl::FromChrono(context->deadline());
    }
    upstream_.Attach(shared_.client->Start(std::move(chat), std::make_shared<Observer>(this)));
  }

 private:
  // Upstream events, on the LLM client's thread. The reactor outlives it:
  // it only finishes after the upstream's OnDone.
  class Observer final : public llm::StreamObserver {
   public:
    explicit Observer(GenerateReactor* reactor) : reactor_(reactor) {}
    void OnDelta(absl::string_view text) override { reactor_->OnUpstreamDelta(text); }
    void OnProgress() override { reactor_->OnUpstreamProgress(); }
    void OnRetry(const absl::Status& reason, absl::Duration delay) override {
      reactor_->shared_.metrics->Retry(telemetry::OutcomeOf(reason));
      LogDebug("moa-proposer", "model ", reactor_->shared_.options.model, ": retrying in ",
               absl::FormatDuration(delay), " after ", reason.message());
    }
    void OnDone(absl::StatusOr<llm::Completion> result) override {
      reactor_->OnUpstreamDone(std::move(result));
    }

   private:
    GenerateReactor* reactor_;
  };

  // The client left: end the upstream call.
  void OnClientGone() override { upstream_.Cancel(); }

  void OnFinished() override { ReleaseSlot(); }

  // The concurrency limit counts upstream calls: the slot is given back when
  // the upstream call ends, not when the caller has read the answer (a
  // caller that never reads held the model's whole concurrency until its
  // deadline). What the answer still holds here is bounded by its cap.
  void ReleaseSlot() {
    if (counted_.exchange(false)) shared_.inflight.fetch_sub(1);
  }

  void OnUpstreamDelta(absl::string_view text) {
    if (answer_cut_) return;  // Deltas that raced the cancel.
    const int64_t room = shared_.options.max_answer_bytes - answer_bytes_;
    if (static_cast<int64_t>(text.size()) > room) {
      text = Utf8Prefix(text, static_cast<size_t>(std::max<int64_t>(room, 0)));
      answer_cut_ = true;
      upstream_.Cancel();  // The answer reached max_answer_bytes.
    }
    answer_bytes_ += static_cast<int64_t>(text.size());
    if (text.empty()) return;
    absl::Time now = shared_.clock->Now();
    if (!first_delta_seen_) {
      first_delta_seen_ = true;
      first_delta_at_ = now;
      shared_.metrics->FirstToken(now - accepted_);
    } else {
      shared_.metrics->InterToken(now - last_delta_);
    }
    last_delta_ = now;
    PushDelta(text);
  }

  // A tool call being written: the first byte, when nothing came before.
  void OnUpstreamProgress() {
    if (answer_cut_ || first_delta_seen_) return;
    first_delta_seen_ = true;
    first_delta_at_ = shared_.clock->Now();
    last_delta_ = first_delta_at_;
    shared_.metrics->FirstToken(first_delta_at_ - accepted_);
    PushDelta("");
  }

  void OnUpstreamDone(absl::StatusOr<llm::Completion> result) {
    upstream_.Close();
    ReleaseSlot();
    absl::Time now = shared_.clock->Now();
    const std::string& model = shared_.options.model;
    if (answer_cut_ && !result.ok() && result.status().code() == absl::StatusCode::kCancelled) {
      // Our own cut, not the caller's cancel: the answer ends as if at max_tokens.
      llm::Completion cut;
      cut.finish_reason = "length";
      cut.duration = now - accepted_;
      cut.time_to_first_token = first_delta_seen_ ? first_delta_at_ - accepted_ : cut.duration;
      result = cut;
    }
    absl::Status status = result.status();
    shared_.metrics->RequestFinished(
        telemetry::OutcomeAt(status, absl::FromChrono(context()->deadline()), now),
        now - accepted_);
    if (result.ok()) {
      shared_.metrics->Tokens(result->usage.prompt_tokens, result->usage.completion_tokens,
                              result->usage.reasoning_tokens);
      v1::Completion completion;
      wire::ToProto(*result, model, &completion);
      Complete(std::move(completion));
      return;
    }
    if (status.code() != absl::StatusCode::kCancelled) {
      LogFor(LogLevel::kWarning, "moa-proposer", {{"request_id", trace_.request_id}}, "model ",
             model, ": request failed: ", absl::StatusCodeToString(status.code()), ": ",
             status.message());
    }
    absl::Status named(status.code(), absl::StrCat("model ", model, ": ", status.message()));
    if (auto retry_after = GetRetryAfter(status)) SetRetryAfter(named, *retry_after);
    // Whatever the upstream client ends with is the model's path, not ours
    // (a cancel is no failure, so it is not marked; nor is our breaker's
    // refusal, made without calling the model).
    if (status.code() != absl::StatusCode::kCancelled && !IsBreakerRefusal(status)) {
      MarkFromUpstream(named);
    }
    Complete(std::move(named));
  }

  const Shared shared_;
  const TraceContext trace_;
  const absl::Time accepted_;
  std::atomic<bool> counted_{false};

  // Upstream thread only, one event at a time.
  bool first_delta_seen_ = false;
  absl::Time first_delta_at_;
  absl::Time last_delta_;
  int64_t answer_bytes_ = 0;
  bool answer_cut_ = false;

  CancelSlot<llm::CallHandle> upstream_;
};

}  // namespace

ProposerService::ProposerService(ProposerOptions options, llm::LlmClient* client,
                                 telemetry::UpstreamMetrics* metrics, const Clock* clock)
    : options_(std::move(options)), client_(client), metrics_(metrics), clock_(clock) {}

grpc::ServerWriteReactor<grpc::ByteBuffer>* ProposerService::Generate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  auto parsed = server::ParseRawRequest<v1::GenerateRequest>(*request);
  if (!parsed.ok()) return server::RefusedStream(parsed.status());
  return new GenerateReactor({options_, client_, metrics_, clock_, inflight_}, context, *parsed);
}

}  // namespace moa::proposer
