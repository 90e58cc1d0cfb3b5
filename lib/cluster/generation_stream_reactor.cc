#include "lib/cluster/generation_stream_reactor.h"

#include "absl/strings/str_cat.h"
#include "lib/llm/http_status.h"
#include "lib/server/grpc_server.h"

namespace moa::cluster {

void GenerationStreamReactor::PushDelta(absl::string_view text) {
  {
    absl::MutexLock lock(&mu_);
    if (broken_ || completed_) return;
    pending_.append(text.data(), text.size());
  }
  Advance();
}

void GenerationStreamReactor::Complete(absl::StatusOr<v1::Completion> result) {
  {
    absl::MutexLock lock(&mu_);
    if (completed_) return;
    completed_ = true;
    if (result.ok()) {
      completion_.emplace();
      *completion_->mutable_completion() = *std::move(result);
    } else {
      final_status_ = result.status();
    }
  }
  Advance();
}

void GenerationStreamReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (!ok) broken_ = true;
  }
  if (!ok) ClientGone();
  Advance();
}

void GenerationStreamReactor::OnCancel() { ClientGone(); }

void GenerationStreamReactor::OnDone() {
  OnFinished();
  delete this;
}

void GenerationStreamReactor::ClientGone() {
  {
    absl::MutexLock lock(&mu_);
    if (gone_notified_) return;
    gone_notified_ = true;
  }
  OnClientGone();
}

void GenerationStreamReactor::Advance() {
  enum class Action { kNone, kWrite, kFinish } action = Action::kNone;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (write_in_flight_ || finished_) return;
    if (!broken_ && !pending_.empty() && (!hold_text_ || completed_)) {
      write_.Clear();
      write_.set_delta(std::move(pending_));
      pending_.clear();
      action = Action::kWrite;
    } else if (completed_ && !broken_ && completion_) {
      write_ = *std::move(completion_);
      completion_.reset();
      action = Action::kWrite;
    } else if (completed_) {
      finished_ = true;
      status = broken_ && final_status_.ok() ? absl::CancelledError("the client went away")
                                             : final_status_;
      action = Action::kFinish;
    }
    if (action == Action::kWrite) write_in_flight_ = true;
  }
  if (action == Action::kWrite) {
    StartWrite(&write_);
  } else if (action == Action::kFinish) {
    if (auto retry_after = llm::GetRetryAfter(status)) {
      context_->AddTrailingMetadata(
          "retry-after",
          absl::StrCat(absl::ToInt64Seconds(absl::Ceil(*retry_after, absl::Seconds(1)))));
    }
    Finish(server::ToGrpcStatus(status));
  }
}

}  // namespace moa::cluster
