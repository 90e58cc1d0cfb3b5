#include "services/orchestrator/engine/admission.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moa::orchestrator {

absl::Status Admission::TryAcquire() {
  if (draining_.load()) {
    return absl::UnavailableError("the orchestrator is shutting down; retry on another replica");
  }
  if (inflight_.fetch_add(1) + 1 > max_) {
    inflight_.fetch_sub(1);
    return absl::ResourceExhaustedError(absl::StrCat("the orchestrator is at its limit of ", max_,
                                                     " concurrent requests; retry later"));
  }
  return absl::OkStatus();
}

void Admission::Release() { inflight_.fetch_sub(1); }

void Admission::Track(const std::shared_ptr<RunningCall>& call) {
  absl::MutexLock lock(&mu_);
  // Amortised clean-up: drop finished calls when the list doubles.
  if (calls_.size() >= 64 && calls_.size() == calls_.capacity()) {
    std::erase_if(calls_, [](const std::weak_ptr<RunningCall>& c) { return c.expired(); });
  }
  calls_.push_back(call);
}

void Admission::BeginDrain() { draining_.store(true); }

int Admission::FinishDrain(absl::Time deadline, absl::Duration cancel_wait) {
  BeginDrain();
  while (inflight_.load() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  std::vector<std::shared_ptr<RunningCall>> running;
  {
    absl::MutexLock lock(&mu_);
    for (auto& weak : calls_) {
      if (auto call = weak.lock()) running.push_back(std::move(call));
    }
    calls_.clear();
  }
  // Cancel outside the lock: a call reports back through its sink.
  // UNAVAILABLE, as for a request refused while draining (a 503 over HTTP):
  // the client may retry on another replica.
  for (auto& call : running) {
    call->Cancel(absl::UnavailableError(
        "the orchestrator is shutting down and the drain's grace ran out; retry on another "
        "replica"));
  }
  absl::Time end = absl::Now() + cancel_wait;
  while (inflight_.load() > 0 && absl::Now() < end) absl::SleepFor(absl::Milliseconds(10));
  return static_cast<int>(running.size());
}

}  // namespace moa::orchestrator
