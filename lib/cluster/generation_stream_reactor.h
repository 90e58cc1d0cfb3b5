// The server side of a generation stream (ProposerService.Generate with
// GenerateResponse, AggregatorService.Aggregate with AggregateResponse):
// text deltas, then one completion or an error. Both responses have the
// same shape (oneof delta / completion), so one template serves both.
#ifndef MOA_LIB_CLUSTER_GENERATION_STREAM_REACTOR_H_
#define MOA_LIB_CLUSTER_GENERATION_STREAM_REACTOR_H_

#include <atomic>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/server/server_stream_reactor.h"
#include "moa/v1/common.pb.h"

namespace moa::cluster {

// Deltas queued behind a slow write go out as one delta; a completion is
// never merged.
template <typename Response>
struct MergeDeltas {
  bool operator()(Response& last, Response& next) const {
    if (last.event_case() != Response::kDelta || next.event_case() != Response::kDelta) {
      return false;
    }
    last.mutable_delta()->append(next.delta());
    return true;
  }
};

// PushDelta and Complete come from the producer (an upstream's or a child
// call's thread), never concurrently with each other; the stream contract
// (one write in flight, finish once, OnClientGone) is ServerStreamReactor's.
template <typename Response>
class GenerationStreamReactor
    : public server::ServerStreamReactor<Response, MergeDeltas<Response>> {
 public:
  explicit GenerationStreamReactor(grpc::CallbackServerContext* context)
      : server::ServerStreamReactor<Response, MergeDeltas<Response>>(context) {}

  // Queues text for the client (dropped once the client is gone). An empty
  // delta is the first-byte mark: sent once, when nothing came before it,
  // so the caller can tell a model that writes from one that is stuck (the
  // orchestrator's first-token bound) while the text is held, or while the
  // model writes a tool call (which comes whole in the completion).
  void PushDelta(absl::string_view text) {
    if (completed_) return;
    if (text.empty() || hold_text_) {
      if (!first_byte_marked_) {
        first_byte_marked_ = true;
        Response mark;
        mark.set_delta(std::string());
        this->Send(std::move(mark));
      }
      if (hold_text_) held_.append(text.data(), text.size());
      return;
    }
    first_byte_marked_ = true;  // Text marks the first byte itself.
    Response r;
    r.set_delta(std::string(text));
    this->Send(std::move(r));
  }

  // Holds the text back until Complete, then sends it as one delta before
  // the completion. Call before the first PushDelta.
  void HoldTextUntilComplete() { hold_text_ = true; }

  // Ends the stream: an OK completion is sent last; an error finishes with
  // that status. Call once; later calls are ignored.
  void Complete(absl::StatusOr<v1::Completion> result) {
    if (completed_.exchange(true)) return;
    if (!result.ok()) return this->Close(result.status());
    if (!held_.empty()) {
      Response text;
      text.set_delta(std::exchange(held_, std::string()));
      this->Send(std::move(text));
    }
    Response done;
    *done.mutable_completion() = *std::move(result);
    this->Send(std::move(done));
    this->Close(absl::OkStatus());
  }

 protected:
  ~GenerationStreamReactor() override = default;

 private:
  std::atomic<bool> completed_{false};
  bool hold_text_ = false;
  bool first_byte_marked_ = false;
  std::string held_;  // Producer's thread only.
};

}  // namespace moa::cluster

#endif  // MOA_LIB_CLUSTER_GENERATION_STREAM_REACTOR_H_
