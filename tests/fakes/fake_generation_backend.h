// A GenerationBackend that answers from a script, for testing the MoA logic
// without sockets.
#ifndef MOA_TESTS_FAKES_FAKE_GENERATION_BACKEND_H_
#define MOA_TESTS_FAKES_FAKE_GENERATION_BACKEND_H_

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "lib/cluster/generation_backend.h"

namespace moa::testing {

class FakeGenerationBackend : public cluster::GenerationBackend {
 public:
  struct Reply {
    std::vector<std::string> deltas;
    absl::StatusOr<llm::Completion> result;
    bool hold = false;  // Do not answer until Release() (or a cancel).
  };
  using Script = std::function<Reply(const cluster::GenerationCall&)>;

  explicit FakeGenerationBackend(Script script) : script_(std::move(script)) {}

  // Answers synchronously from inside Start, which a real backend may also do.
  std::shared_ptr<llm::CallHandle> Start(
      cluster::GenerationCall call,
      std::shared_ptr<cluster::GenerationObserver> observer) override {
    Reply reply = script_(call);
    auto handle = std::make_shared<Handle>(observer);
    {
      absl::MutexLock lock(&mu_);
      calls_.push_back(call);
      handles_.push_back(handle);
    }
    if (!reply.hold) {
      for (const auto& d : reply.deltas) observer->OnDelta(d);
      handle->Done(std::move(reply.result));
    }
    return handle;
  }

  // Sends text of held call number `index` (in Start order) now.
  void Stream(size_t index, const std::vector<std::string>& deltas) {
    HandleAt(index)->Deliver(deltas, std::nullopt);
  }
  // Answers held call number `index` now: its text, then its end.
  void Answer(size_t index, const std::vector<std::string>& deltas,
              absl::StatusOr<llm::Completion> result) {
    HandleAt(index)->Deliver(deltas, std::move(result));
  }

  std::vector<cluster::GenerationCall> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // Models reported stuck by a caller (GenerationBackend::ReportStuck).
  void ReportStuck(const std::string& model) override {
    absl::MutexLock lock(&mu_);
    stuck_.push_back(model);
  }
  std::vector<std::string> stuck() {
    absl::MutexLock lock(&mu_);
    return stuck_;
  }
  int cancelled() {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (auto& h : handles_) n += h->was_cancelled();
    return n;
  }

  // A finished answer; the model is the caller's (GenerationCall::model).
  static llm::Completion Ok(const std::string& /*model*/ = "", int prompt = 3, int completion = 5) {
    llm::Completion c;
    c.finish_reason = "stop";
    c.usage.prompt_tokens = prompt;
    c.usage.completion_tokens = completion;
    return c;
  }

 private:
  class Handle : public llm::CallHandle {
   public:
    explicit Handle(std::shared_ptr<cluster::GenerationObserver> observer)
        : observer_(std::move(observer)) {}
    void Cancel() override {
      {
        absl::MutexLock lock(&mu_);
        cancelled_ = true;
      }
      Done(absl::CancelledError("cancelled"));
    }
    void Deliver(const std::vector<std::string>& deltas,
                 std::optional<absl::StatusOr<llm::Completion>> result) {
      std::shared_ptr<cluster::GenerationObserver> observer;
      {
        absl::MutexLock lock(&mu_);
        observer = observer_;
      }
      if (observer == nullptr) return;  // Already ended.
      for (const auto& d : deltas) observer->OnDelta(d);
      if (result) Done(*std::move(result));
    }
    void Done(absl::StatusOr<llm::Completion> result) {
      std::shared_ptr<cluster::GenerationObserver> observer;
      {
        absl::MutexLock lock(&mu_);
        observer = std::move(observer_);
      }
      if (observer) observer->OnDone(std::move(result));
    }
    bool was_cancelled() {
      absl::MutexLock lock(&mu_);
      return cancelled_;
    }

   private:
    absl::Mutex mu_;
    std::shared_ptr<cluster::GenerationObserver> observer_;
    bool cancelled_ = false;
  };

  std::shared_ptr<Handle> HandleAt(size_t index) {
    absl::MutexLock lock(&mu_);
    return handles_.at(index);
  }

  Script script_;
  absl::Mutex mu_;
  std::vector<cluster::GenerationCall> calls_;
  std::vector<std::shared_ptr<Handle>> handles_;
  std::vector<std::string> stuck_;
};

}  // namespace moa::testing

#endif  // MOA_TESTS_FAKES_FAKE_GENERATION_BACKEND_H_
