#include "services/proposer/proposer_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lib/base/log.h"
#include "lib/cluster/generation_stream_reactor.h"
#include "lib/contract/contract.h"
#include "lib/llm/http_status.h"

namespace moa::proposer {

namespace {

// The longest prefix of `text` of at most `max` bytes that ends on a UTF-8
// character boundary (proto3 strings must stay valid UTF-8).
absl::string_view Utf8Prefix(absl::string_view text, size_t max) {
  if (text.size() <= max) return text;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace

// One Generate call: validates, takes an in-flight slot, starts the upstream
// call and forwards its events to the stream.
class GenerateReactor final : public cluster::GenerationStreamReactor {
 public:
  GenerateReactor(ProposerService* service, grpc::CallbackServerContext* context,
                  const v1::GenerateRequest& request)
      : GenerationStreamReactor(context), service_(service), accepted_(absl::Now()) {
    absl::Status valid = contract::ValidateMessages(request.messages());
    if (valid.ok()) valid = contract::ValidateParams(request.params());
    if (!valid.ok()) {
      Complete(valid);
      return;
    }
    const ProposerOptions& options = service_->options_;
    if (service_->inflight_.fetch_add(1) + 1 > options.max_inflight) {
      service_->inflight_.fetch_sub(1);
      Complete(absl::ResourceExhaustedError(
          absl::StrCat("model ", options.model, " is at its limit of ", options.max_inflight,
                       " concurrent requests; retry later")));
      return;
    }
    counted_ = true;
    service_->metrics_->RequestStarted();
    if (request.whole_text()) HoldTextUntilComplete();

    llm::ChatRequest chat;
    chat.messages = contract::ToLlmMessages(request.messages());
    chat.params = contract::ToLlmParams(request.params());
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      chat.deadline = absl::FromChrono(context->deadline());
    }
    // Started outside the lock: a client may answer inside Start.
    auto upstream = service_->client_->Start(std::move(chat), std::make_shared<Observer>(this));
    bool cancel_now;
    {
      absl::MutexLock lock(&mu_);
      upstream_ = upstream;
      cancel_now = cancel_requested_;
    }
    if (cancel_now) upstream->Cancel();
  }

 private:
  // Upstream events, on the LLM client's thread. The reactor outlives it:
  // it only finishes after the upstream's OnDone.
  class Observer final : public llm::StreamObserver {
   public:
    explicit Observer(GenerateReactor* reactor) : reactor_(reactor) {}
    void OnDelta(absl::string_view text) override { reactor_->OnUpstreamDelta(text); }
    void OnRetry(const absl::Status& reason, absl::Duration delay) override {
      reactor_->service_->metrics_->Retry(llm::OutcomeLabel(reason));
      LogDebug("moa-proposer", "model ", reactor_->service_->options_.model, ": retrying in ",
               absl::FormatDuration(delay), " after ", reason.message());
    }
    void OnDone(absl::StatusOr<llm::Completion> result) override {
      reactor_->OnUpstreamDone(std::move(result));
    }

   private:
    GenerateReactor* reactor_;
  };

  void OnClientGone() override { CancelUpstream(); }

  // Ends the upstream call: the client left, or the answer reached
  // max_answer_bytes. Before Start has returned, the constructor does it.
  void CancelUpstream() {
    std::shared_ptr<llm::CallHandle> upstream;
    {
      absl::MutexLock lock(&mu_);
      cancel_requested_ = true;
      upstream = upstream_;
    }
    if (upstream) upstream->Cancel();
  }

  void OnFinished() override {
    if (counted_) service_->inflight_.fetch_sub(1);
  }

  void OnUpstreamDelta(absl::string_view text) {
    if (answer_cut_) return;  // Deltas that raced the cancel.
    const int64_t room = service_->options_.max_answer_bytes - answer_bytes_;
    if (static_cast<int64_t>(text.size()) > room) {
      text = Utf8Prefix(text, static_cast<size_t>(std::max<int64_t>(room, 0)));
      answer_cut_ = true;
      CancelUpstream();
    }
    answer_bytes_ += static_cast<int64_t>(text.size());
    if (text.empty()) return;
    absl::Time now = absl::Now();
    if (!first_delta_seen_) {
      first_delta_seen_ = true;
      first_delta_at_ = now;
      service_->metrics_->FirstToken(now - accepted_);
    } else {
      service_->metrics_->InterToken(now - last_delta_);
    }
    last_delta_ = now;
    PushDelta(text);
  }

  void OnUpstreamDone(absl::StatusOr<llm::Completion> result) {
    absl::Time now = absl::Now();
    const std::string& model = service_->options_.model;
    if (answer_cut_ && !result.ok() && result.status().code() == absl::StatusCode::kCancelled) {
      // Our own cut, not the caller's cancel: the answer ends as if at max_tokens.
      llm::Completion cut;
      cut.finish_reason = "length";
      cut.duration = now - accepted_;
      cut.time_to_first_token = first_delta_seen_ ? first_delta_at_ - accepted_ : cut.duration;
      result = cut;
    }
    absl::Status status = result.status();
    absl::string_view outcome =
        llm::OutcomeLabelAt(status, absl::FromChrono(context()->deadline()), now);
    service_->metrics_->RequestFinished(outcome, now - accepted_);
    if (result.ok()) {
      service_->metrics_->Tokens(result->usage.prompt_tokens, result->usage.completion_tokens);
      v1::Completion completion;
      contract::ToProto(*result, model, &completion);
      Complete(std::move(completion));
      return;
    }
    if (status.code() != absl::StatusCode::kCancelled) {
      LogWarning("moa-proposer", "model ", model,
                 ": request failed: ", absl::StatusCodeToString(status.code()), ": ",
                 status.message());
    }
    absl::Status named(status.code(), absl::StrCat("model ", model, ": ", status.message()));
    if (auto retry_after = llm::GetRetryAfter(status)) llm::SetRetryAfter(named, *retry_after);
    Complete(std::move(named));
  }

  ProposerService* const service_;
  const absl::Time accepted_;
  bool counted_ = false;

  // Upstream thread only, one event at a time.
  bool first_delta_seen_ = false;
  absl::Time first_delta_at_;
  absl::Time last_delta_;
  int64_t answer_bytes_ = 0;
  bool answer_cut_ = false;

  absl::Mutex mu_;
  std::shared_ptr<llm::CallHandle> upstream_ ABSL_GUARDED_BY(mu_);
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
};

ProposerService::ProposerService(ProposerOptions options, llm::LlmClient* client,
                                 telemetry::UpstreamMetrics* metrics)
    : options_(std::move(options)), client_(client), metrics_(metrics) {}

grpc::ServerWriteReactor<v1::GenerateResponse>* ProposerService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return new GenerateReactor(this, context, *request);
}

}  // namespace moa::proposer
