// ServerStreamReactor: the server side of every server-streaming RPC of the
// cluster (Generate, Aggregate, Chat), built on WriteQueue.
//
// Contract:
//  - Send() and Close() may be called from any thread (an upstream's, a
//    MoaCall's), never block, and never run gRPC under the reactor's lock:
//    gRPC may run a reaction inline, and the next write may start from
//    inside OnWriteDone.
//  - Messages sent while a write is in flight are merged by `Merge` (see
//    write_queue.h); nothing sent before Close() is lost unless the client
//    is gone.
//  - Close(status) is taken once: an OK stream finishes OK after its last
//    message; an error finishes with that status (and `retry-after`
//    trailing metadata in whole seconds when the status carries a delay).
//    A stream whose client could not be written to finishes CANCELLED.
//  - OnClientGone() runs at most once, when the client cancels or a write
//    fails: stop the work that feeds the stream. Close() must still follow.
//  - The reactor deletes itself in OnDone, after OnFinished().
//  - On the wire it writes bytes (grpc::ByteBuffer): the methods it serves
//    are raw, so a request that is no valid protobuf (garbage, invalid UTF-8
//    in a string) reaches our code and is refused INVALID_ARGUMENT by name
//    (ParseRawRequest, RefusedStream), where gRPC's typed callback handler
//    answers UNIMPLEMENTED with no message.
#ifndef MOA_LIB_SERVER_SERVER_STREAM_REACTOR_H_
#define MOA_LIB_SERVER_SERVER_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "lib/base/write_queue.h"

namespace moa::server {

// The status a stream finishes with, and its retry-after trailing metadata.
// Out of line so the template stays small.
grpc::Status StreamFinalStatus(grpc::CallbackServerContext* context, const absl::Status& status,
                               bool broken);

// The request a raw method received, parsed; INVALID_ARGUMENT naming the
// message type when the bytes are not one.
template <typename Request>
absl::StatusOr<Request> ParseRawRequest(const grpc::ByteBuffer& bytes) {
  Request request;
  grpc::ByteBuffer copy(bytes);  // Shares the slices; the reader consumes its own.
  grpc::Status s = grpc::SerializationTraits<Request>::Deserialize(&copy, &request);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        std::string("the request is not a valid ") + Request::descriptor()->full_name() +
        " (protobuf parse failed; string fields must be valid UTF-8)");
  }
  return request;
}

// A stream refused before any work: finishes at once with `status`.
grpc::ServerWriteReactor<grpc::ByteBuffer>* RefusedStream(const absl::Status& status);

template <typename Message, typename Merge = NoMerge>
class ServerStreamReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit ServerStreamReactor(grpc::CallbackServerContext* context) : context_(context) {}

  void Send(Message message) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      if (!queue_.Push(std::move(message))) return;
      action = DecideLocked();
    }
    Act(action);
  }

  void Close(absl::Status status) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      if (!queue_.Close()) return;
      status_ = std::move(status);
      action = DecideLocked();
    }
    Act(action);
  }

  void OnWriteDone(bool ok) final {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      queue_.WriteDone(ok);
      action = DecideLocked();
    }
    if (!ok) ClientGone();
    Act(action);
  }

  void OnCancel() final { ClientGone(); }

  void OnDone() final {
    OnFinished();
    delete this;
  }

 protected:
  ~ServerStreamReactor() override = default;

  virtual void OnClientGone() = 0;
  virtual void OnFinished() {}

  grpc::CallbackServerContext* context() const { return context_; }

 private:
  using Queue = WriteQueue<Message, Merge>;

  void ClientGone() {
    {
      absl::MutexLock lock(&mu_);
      if (gone_notified_) return;
      gone_notified_ = true;
    }
    OnClientGone();
  }

  // What to do once mu_ is released. The message in flight stays where it
  // is until gRPC reports the write done, so its address may leave the lock.
  struct Action {
    Message* write = nullptr;
    bool finish = false;
    absl::Status status;
    bool broken = false;
  };

  Action DecideLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Action action;
    switch (queue_.Next()) {
      case Queue::Step::kWrite:
        action.write = &queue_.in_flight();
        break;
      case Queue::Step::kFinish:
        action.finish = true;
        action.status = status_;
        action.broken = queue_.broken();
        break;
      case Queue::Step::kNone:
        break;
    }
    return action;
  }

  void Act(const Action& action) {
    if (action.write != nullptr) {
      // One write is in flight at a time, so wire_ is free until it is done.
      bool own = false;
      wire_.Clear();
      grpc::Status s = grpc::SerializationTraits<Message>::Serialize(*action.write, &wire_, &own);
      if (!s.ok()) {
        // Only a message over 2 GiB fails here: handled as a failed write
        // (the stream ends, the producer is told the client is gone).
        OnWriteDone(false);
        return;
      }
      this->StartWrite(&wire_);
    } else if (action.finish) {
      this->Finish(StreamFinalStatus(context_, action.status, action.broken));
    }
  }

  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer wire_;  // The serialized write in flight.
  absl::Mutex mu_;
  Queue queue_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool gone_notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace moa::server

#endif  // MOA_LIB_SERVER_SERVER_STREAM_REACTOR_H_
