#include "services/proposer/proposer_service.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lib/base/log.h"
#include "lib/contract/contract.h"
#include "lib/llm/http_status.h"
#include "lib/server/grpc_server.h"

namespace moa::proposer {

// One Generate call. Upstream events arrive on the LLM client's thread and
// gRPC reactions on gRPC's; both only change state under `mu_` and then act
// (StartWrite / Finish) outside it, since gRPC may run a reaction inline.
// Finish is called once, never with a write outstanding; after it, nothing
// but gRPC touches the reactor, which deletes itself in OnDone.
class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  GenerateReactor(ProposerService* service, grpc::CallbackServerContext* context,
                  const v1::GenerateRequest& request)
      : service_(service), context_(context), accepted_(absl::Now()) {
    absl::Status valid = contract::ValidateMessages(request.messages());
    if (valid.ok()) valid = contract::ValidateParams(request.params());
    if (!valid.ok()) {
      Finish(server::ToGrpcStatus(valid));
      return;
    }
    int inflight = service_->inflight_.fetch_add(1) + 1;
    if (inflight > service_->options_.max_inflight) {
      service_->inflight_.fetch_sub(1);
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("model ", service_->options_.model, " is at its limit of ",
                                       service_->options_.max_inflight,
                                       " concurrent requests; retry later")));
      return;
    }
    counted_ = true;
    service_->metrics_->RequestStarted();

    llm::ChatRequest chat;
    chat.messages = contract::ToLlmMessages(request.messages());
    chat.params = contract::ToLlmParams(request.params());
    if (context_->deadline() != std::chrono::system_clock::time_point::max()) {
      chat.deadline = absl::FromChrono(context_->deadline());
    }
    auto observer = std::make_shared<Observer>(this);
    absl::MutexLock lock(&mu_);
    upstream_ = service_->client_->Start(std::move(chat), std::move(observer));
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok) broken_ = true;
    }
    if (!ok) CancelUpstream();  // The client is gone; stop the upstream too.
    Advance();
  }

  void OnCancel() override { CancelUpstream(); }

  void OnDone() override {
    if (counted_) service_->inflight_.fetch_sub(1);
    delete this;
  }

 private:
  // Receives upstream events; forwards them to the reactor, which outlives it
  // because the reactor only finishes after the upstream's OnDone.
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

  void CancelUpstream() {
    std::shared_ptr<llm::CallHandle> upstream;
    {
      absl::MutexLock lock(&mu_);
      upstream = upstream_;
    }
    if (upstream) upstream->Cancel();
  }

  void OnUpstreamDelta(absl::string_view text) {
    absl::Time now = absl::Now();
    if (!first_delta_seen_) {
      first_delta_seen_ = true;
      service_->metrics_->FirstToken(now - accepted_);
    } else {
      service_->metrics_->InterToken(now - last_delta_);
    }
    last_delta_ = now;
    {
      absl::MutexLock lock(&mu_);
      if (broken_) return;
      pending_.append(text.data(), text.size());
    }
    Advance();
  }

  void OnUpstreamDone(absl::StatusOr<llm::Completion> result) {
    absl::Status status = result.status();
    absl::Time now = absl::Now();
    const std::string& model = service_->options_.model;
    absl::string_view outcome = llm::OutcomeLabel(status);
    if (status.code() == absl::StatusCode::kCancelled &&
        absl::FromChrono(context_->deadline()) <= now) {
      outcome = "deadline";
    }
    service_->metrics_->RequestFinished(outcome, now - accepted_);
    if (result.ok()) {
      service_->metrics_->Tokens(result->usage.prompt_tokens, result->usage.completion_tokens);
    } else if (status.code() != absl::StatusCode::kCancelled) {
      LogWarning("moa-proposer", "model ", model, ": request failed: ",
                 absl::StatusCodeToString(status.code()), ": ", status.message());
    }
    {
      absl::MutexLock lock(&mu_);
      upstream_done_ = true;
      if (result.ok()) {
        contract::ToProto(*result, model, completion_.mutable_completion());
      } else {
        final_status_ = absl::Status(status.code(), absl::StrCat("model ", model, ": ",
                                                                 status.message()));
        retry_after_ = llm::GetRetryAfter(status);
      }
    }
    Advance();
  }

  // Starts the next write, or finishes, if nothing is in flight.
  void Advance() {
    enum class Action { kNone, kWrite, kFinish } action = Action::kNone;
    {
      absl::MutexLock lock(&mu_);
      if (write_in_flight_ || finished_) return;
      if (!broken_ && !pending_.empty()) {
        write_.set_delta(std::move(pending_));
        pending_.clear();
        action = Action::kWrite;
      } else if (upstream_done_ && !broken_ && final_status_.ok() && !completion_sent_) {
        write_ = std::move(completion_);
        completion_sent_ = true;
        action = Action::kWrite;
      } else if (upstream_done_) {
        finished_ = true;
        action = Action::kFinish;
      }
      if (action == Action::kWrite) write_in_flight_ = true;
    }
    if (action == Action::kWrite) {
      StartWrite(&write_);
    } else if (action == Action::kFinish) {
      if (retry_after_) {
        context_->AddTrailingMetadata(
            "retry-after", absl::StrCat(absl::ToInt64Seconds(absl::Ceil(*retry_after_,
                                                                         absl::Seconds(1)))));
      }
      Finish(server::ToGrpcStatus(final_status_));
    }
  }

  ProposerService* const service_;
  grpc::CallbackServerContext* const context_;
  const absl::Time accepted_;
  bool counted_ = false;

  // Only touched from the upstream thread, one event at a time.
  bool first_delta_seen_ = false;
  absl::Time last_delta_;

  absl::Mutex mu_;
  std::shared_ptr<llm::CallHandle> upstream_ ABSL_GUARDED_BY(mu_);
  std::string pending_ ABSL_GUARDED_BY(mu_);
  v1::GenerateResponse write_;  // Owned by gRPC while a write is in flight.
  v1::GenerateResponse completion_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool upstream_done_ ABSL_GUARDED_BY(mu_) = false;
  bool completion_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Duration> retry_after_ ABSL_GUARDED_BY(mu_);
};

ProposerService::ProposerService(ProposerOptions options, llm::LlmClient* client,
                                 telemetry::UpstreamMetrics* metrics)
    : options_(std::move(options)), client_(client), metrics_(metrics) {}

grpc::ServerWriteReactor<v1::GenerateResponse>* ProposerService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return new GenerateReactor(this, context, *request);
}

}  // namespace moa::proposer
