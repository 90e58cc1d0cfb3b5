// The server side of a stream of GenerateResponse (ProposerService.Generate,
// AggregatorService.Aggregate): text deltas, then one completion or an error.
#ifndef MOA_LIB_CLUSTER_GENERATION_STREAM_REACTOR_H_
#define MOA_LIB_CLUSTER_GENERATION_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "moa/v1/common.pb.h"

namespace moa::cluster {

// One write is in flight at a time; deltas pushed meanwhile are merged into
// the next message, so a slow reader costs fewer messages and loses nothing.
// PushDelta and Complete may be called from any thread (the upstream's);
// state changes under a mutex and StartWrite / Finish run outside it,
// because gRPC may run a reaction inline. Finish is called once, never with a
// write outstanding; the reactor deletes itself in OnDone.
class GenerationStreamReactor : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  explicit GenerationStreamReactor(grpc::CallbackServerContext* context) : context_(context) {}

  // Queues text for the client (dropped once the client is gone).
  void PushDelta(absl::string_view text);

  // Holds the text back until Complete, then writes it as one delta before
  // the completion. Call before the first PushDelta.
  void HoldTextUntilComplete() {
    absl::MutexLock lock(&mu_);
    hold_text_ = true;
  }

  // Ends the stream: an OK completion is written last, an error finishes with
  // that status (and `retry-after` trailing metadata when it carries one).
  // Call exactly once, also after OnClientGone.
  void Complete(absl::StatusOr<v1::Completion> result);

  void OnWriteDone(bool ok) final;
  void OnCancel() final;
  void OnDone() final;

 protected:
  ~GenerationStreamReactor() override = default;

  // The client cancelled or can no longer be written to: stop the work that
  // feeds this stream. Runs at most once; Complete must still follow.
  virtual void OnClientGone() = 0;
  // Runs in OnDone, just before the reactor deletes itself.
  virtual void OnFinished() {}

  grpc::CallbackServerContext* context() const { return context_; }

 private:
  void Advance();
  void ClientGone();

  grpc::CallbackServerContext* const context_;
  v1::GenerateResponse write_;  // Owned by gRPC while a write is in flight.

  absl::Mutex mu_;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::GenerateResponse> completion_ ABSL_GUARDED_BY(mu_);
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool completed_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool gone_notified_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_text_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace moa::cluster

#endif  // MOA_LIB_CLUSTER_GENERATION_STREAM_REACTOR_H_
