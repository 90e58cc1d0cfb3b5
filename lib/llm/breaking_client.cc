#include "lib/llm/breaking_client.h"

namespace moa::llm {
namespace {

// Tells the breaker how the call ended, then passes every event on.
class Recorder final : public StreamObserver {
 public:
  Recorder(CircuitBreaker* breaker, std::shared_ptr<StreamObserver> inner)
      : breaker_(breaker), inner_(std::move(inner)) {}
  void OnDelta(absl::string_view text) override { inner_->OnDelta(text); }
  void OnProgress() override { inner_->OnProgress(); }
  void OnRetry(const absl::Status& reason, absl::Duration delay) override {
    inner_->OnRetry(reason, delay);
  }
  void OnDone(absl::StatusOr<Completion> result) override {
    breaker_->Record(result.status());
    inner_->OnDone(std::move(result));
  }

 private:
  CircuitBreaker* const breaker_;
  const std::shared_ptr<StreamObserver> inner_;
};

}  // namespace

std::shared_ptr<CallHandle> BreakingClient::Start(ChatRequest request,
                                                  std::shared_ptr<StreamObserver> observer) {
  if (absl::Status admitted = breaker_->Admit(); !admitted.ok()) {
    observer->OnDone(std::move(admitted));
    return EndedCall();
  }
  return inner_->Start(std::move(request),
                       std::make_shared<Recorder>(breaker_, std::move(observer)));
}

}  // namespace moa::llm
