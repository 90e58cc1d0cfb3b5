// The interface through which the cluster talks to one LLM. The only
// implementation that speaks HTTP is CurlLlmClient; tests use fakes.
#ifndef MOA_LIB_LLM_LLM_CLIENT_H_
#define MOA_LIB_LLM_LLM_CLIENT_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/llm/types.h"

namespace moa::llm {

// Receives the events of one call. Every call gets zero or more OnDelta and
// OnRetry, then exactly one OnDone, all from the client's event thread and
// never concurrently. Implementations must not block.
class StreamObserver {
 public:
  virtual ~StreamObserver() = default;
  // The next piece of generated text (never empty).
  virtual void OnDelta(absl::string_view text) = 0;
  // The model wrote something that is not text (a piece of a tool call,
  // which comes whole in the completion): it is writing, not stuck.
  virtual void OnProgress() {}
  // An attempt failed before any delta; another starts after `delay`.
  virtual void OnRetry(const absl::Status& reason, absl::Duration delay) {}
  // The call ended: a completion, or the error. CANCELLED after Cancel().
  virtual void OnDone(absl::StatusOr<Completion> result) = 0;
};

// Cancels one call. Thread-safe, idempotent, never blocks; the observer
// still gets its OnDone (CANCELLED) unless the call had already ended.
class CallHandle {
 public:
  virtual ~CallHandle() = default;
  virtual void Cancel() = 0;
};

class LlmClient {
 public:
  virtual ~LlmClient() = default;
  // Starts a streamed chat completion. Thread-safe; returns at once.
  virtual std::shared_ptr<CallHandle> Start(ChatRequest request,
                                            std::shared_ptr<StreamObserver> observer) = 0;
};

// The handle of a call that ended before it started (refused at once, its
// OnDone already delivered): Cancel does nothing.
inline std::shared_ptr<CallHandle> EndedCall() {
  class Ended final : public CallHandle {
   public:
    void Cancel() override {}
  };
  static const auto ended = std::make_shared<Ended>();
  return ended;
}

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_LLM_CLIENT_H_
