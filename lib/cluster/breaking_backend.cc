#include "lib/cluster/breaking_backend.h"

#include "lib/base/retry_after.h"

namespace moa::cluster {
namespace {

// Tells the breaker how the call ended, then passes the end on.
class Recorder final : public GenerationObserver {
 public:
  Recorder(CircuitBreaker* breaker, std::shared_ptr<GenerationObserver> inner)
      : breaker_(breaker), inner_(std::move(inner)) {}
  void OnDelta(absl::string_view text) override { inner_->OnDelta(text); }
  void OnDone(absl::StatusOr<llm::Completion> result) override {
    // Only the model's own failures count; a failure of the path to it (a
    // replica of ours restarting, a reset between services) is gRPC's to
    // route around and the caller's to retry, and counts neither way.
    if (result.ok() || IsFromUpstream(result.status())) {
      breaker_->Record(result.status());
    } else {
      breaker_->Record(absl::CancelledError("not the model's failure"));
    }
    inner_->OnDone(std::move(result));
  }

 private:
  CircuitBreaker* const breaker_;
  const std::shared_ptr<GenerationObserver> inner_;
};

}  // namespace

BreakingBackend::BreakingBackend(GenerationBackend* inner, const std::vector<std::string>& models,
                                 BreakerOptions options, const Clock* clock, OnChange on_change)
    : inner_(inner) {
  for (const std::string& m : models) {
    std::function<void(CircuitBreaker::State)> notify;
    if (on_change) notify = [on_change, m](CircuitBreaker::State s) { on_change(m, s); };
    breakers_[m] =
        std::make_unique<CircuitBreaker>("model " + m, options, clock, std::move(notify));
  }
}

std::optional<CircuitBreaker::State> BreakingBackend::StateOf(const std::string& model) const {
  auto it = breakers_.find(model);
  if (it == breakers_.end()) return std::nullopt;
  return it->second->state();
}

std::shared_ptr<llm::CallHandle> BreakingBackend::Start(
    GenerationCall call, std::shared_ptr<GenerationObserver> observer) {
  auto it = breakers_.find(call.model);
  if (it == breakers_.end()) return inner_->Start(std::move(call), std::move(observer));
  CircuitBreaker* breaker = it->second.get();
  if (absl::Status admitted = breaker->Admit(); !admitted.ok()) {
    observer->OnDone(std::move(admitted));
    return llm::EndedCall();
  }
  return inner_->Start(std::move(call), std::make_shared<Recorder>(breaker, std::move(observer)));
}

void BreakingBackend::ReportStuck(const std::string& model) {
  if (auto it = breakers_.find(model); it != breakers_.end()) {
    it->second->Record(absl::DeadlineExceededError("no first token within its bound"));
  }
  inner_->ReportStuck(model);
}

}  // namespace moa::cluster
