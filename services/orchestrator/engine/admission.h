// Admission shared by both servers (gRPC and HTTP): a slot per MoA request,
// the registry of running requests, and the drain that both servers share.
#ifndef MOA_SERVICES_ORCHESTRATOR_ADMISSION_H_
#define MOA_SERVICES_ORCHESTRATOR_ADMISSION_H_

#include <atomic>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/orchestrator/engine/moa_call.h"

namespace moa::orchestrator {

class Admission {
 public:
  // One request's slot: given back when destroyed or Release()d. Move-only.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : admission_(std::exchange(other.admission_, nullptr)) {}
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        Release();
        admission_ = std::exchange(other.admission_, nullptr);
      }
      return *this;
    }
    ~Slot() { Release(); }
    void Release() {
      if (auto* a = std::exchange(admission_, nullptr)) a->Release();
    }

   private:
    friend class Admission;
    explicit Slot(Admission* admission) : admission_(admission) {}
    Admission* admission_ = nullptr;
  };

  explicit Admission(int max_inflight) : max_(max_inflight) {}

  // TryAcquire as a slot that gives itself back.
  absl::StatusOr<Slot> Acquire() {
    if (absl::Status s = TryAcquire(); !s.ok()) return s;
    return Slot(this);
  }

  // OK and a slot taken; RESOURCE_EXHAUSTED when `max_inflight` requests are
  // running; UNAVAILABLE once the drain has begun. Thread-safe.
  absl::Status TryAcquire();
  void Release();
  // Remembers a running request so the drain can cancel it after the grace.
  void Track(const std::shared_ptr<RunningCall>& call);

  // Both servers refuse new requests from now on. Idempotent.
  void BeginDrain();
  bool draining() const { return draining_.load(); }
  // Waits until no request runs or `deadline` passes; then cancels what
  // still runs and waits up to `cancel_wait` for those to report back.
  // Returns the number of requests it cancelled.
  int FinishDrain(absl::Time deadline, absl::Duration cancel_wait = absl::Milliseconds(800));

  int inflight() const { return inflight_.load(); }
  int max() const { return max_; }

 private:
  const int max_;
  std::atomic<int> inflight_{0};
  std::atomic<bool> draining_{false};
  absl::Mutex mu_;
  std::vector<std::weak_ptr<RunningCall>> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ADMISSION_H_
