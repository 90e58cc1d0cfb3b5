// CancelSlot: holds the handle of work that was started outside a lock (a
// callee may answer from inside its Start), so that a cancel which arrives
// before the handle is stored is not lost, and the cancel itself runs
// outside the lock. `Handle` needs a thread-safe, idempotent Cancel().
#ifndef MOA_LIB_BASE_CANCEL_SLOT_H_
#define MOA_LIB_BASE_CANCEL_SLOT_H_

#include <memory>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace moa {

template <typename Handle>
class CancelSlot {
 public:
  // Keeps the handle; cancels it at once when Cancel() came first. After
  // Close() the handle is not kept (nor cancelled).
  void Attach(std::shared_ptr<Handle> handle) {
    bool cancel_now = false;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) {
        cancel_now = true;
      } else if (!closed_) {
        handle_ = handle;
      }
    }
    if (cancel_now) handle->Cancel();
  }

  // Cancels the attached work, or the work attached later. Idempotent.
  void Cancel() {
    std::shared_ptr<Handle> handle;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      cancelled_ = true;
      handle = std::move(handle_);
    }
    if (handle) handle->Cancel();
  }

  // The work ended: drop the handle (it may hold its owner, a cycle) and
  // ignore later cancels.
  void Close() {
    std::shared_ptr<Handle> handle;
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
      handle = std::move(handle_);
    }
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<Handle> handle_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace moa

#endif  // MOA_LIB_BASE_CANCEL_SLOT_H_
