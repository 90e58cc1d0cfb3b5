// An observer that records everything, for tests of LlmClient users and of
// GenerationBackends (both interfaces deliver the same two events).
#ifndef MOA_TESTS_SUPPORT_RECORDING_OBSERVER_H_
#define MOA_TESTS_SUPPORT_RECORDING_OBSERVER_H_

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "lib/cluster/generation_backend.h"
#include "lib/llm/llm_client.h"

namespace moa::testing {

class RecordingObserver : public llm::StreamObserver, public cluster::GenerationObserver {
 public:
  void OnDelta(absl::string_view text) override {
    absl::MutexLock lock(&mu_);
    deltas_.emplace_back(text);
  }
  void OnRetry(const absl::Status& reason, absl::Duration delay) override {
    absl::MutexLock lock(&mu_);
    retries_.push_back(reason);
  }
  void OnDone(absl::StatusOr<llm::Completion> result) override {
    {
      absl::MutexLock lock(&mu_);
      result_ = std::move(result);
      ++done_calls_;
    }
    done_.Notify();
  }

  bool WaitDone(absl::Duration timeout) { return done_.WaitForNotificationWithTimeout(timeout); }
  std::vector<std::string> deltas() {
    absl::MutexLock lock(&mu_);
    return deltas_;
  }
  std::string text() {
    absl::MutexLock lock(&mu_);
    std::string all;
    for (const auto& d : deltas_) all += d;
    return all;
  }
  std::vector<absl::Status> retries() {
    absl::MutexLock lock(&mu_);
    return retries_;
  }
  absl::StatusOr<llm::Completion> result() {
    absl::MutexLock lock(&mu_);
    return result_;
  }
  int done_calls() {
    absl::MutexLock lock(&mu_);
    return done_calls_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> deltas_;
  std::vector<absl::Status> retries_;
  absl::StatusOr<llm::Completion> result_ = absl::UnknownError("not done");
  int done_calls_ = 0;
  absl::Notification done_;
};

}  // namespace moa::testing

#endif  // MOA_TESTS_SUPPORT_RECORDING_OBSERVER_H_
