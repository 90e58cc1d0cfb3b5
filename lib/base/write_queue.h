// WriteQueue: the one rule every stream we serve follows. One write is in
// flight at a time; messages pushed meanwhile queue behind it, merged into
// the last queued one where the merge rule allows, so a slow reader costs
// fewer, larger writes and loses nothing; the stream finishes exactly once,
// after everything queued before Close() was written.
//
// It only decides; it never calls out. Its owner calls it under the owner's
// lock (or on the owner's one thread), then performs the Step that Next()
// returned after releasing the lock:
//
//   { lock; queue.Push(m); step = queue.Next(); }
//   if (step == kWrite) StartWrite(&queue.in_flight());
//   if (step == kFinish) Finish(...);
//   ...and when the write completes: { lock; queue.WriteDone(ok); step = queue.Next(); }
//
// A failed write breaks the stream: what is queued is dropped, later pushes
// are ignored, and the stream finishes as soon as it is closed.
#ifndef MOA_LIB_BASE_WRITE_QUEUE_H_
#define MOA_LIB_BASE_WRITE_QUEUE_H_

#include <deque>
#include <string>
#include <utility>

namespace moa {

// Merge rule that never merges: every message is written on its own.
struct NoMerge {
  template <typename Message>
  bool operator()(Message&, Message&) const {
    return false;
  }
};

// Merge rule for byte streams: everything queued goes out in one write.
struct AppendBytes {
  bool operator()(std::string& last, std::string& next) const {
    last += next;
    return true;
  }
};

// `Merge` is a callable `bool(Message& last, Message& next)` that folds
// `next` into `last` and returns true, or returns false to keep them apart.
template <typename Message, typename Merge = NoMerge>
class WriteQueue {
 public:
  enum class Step { kNone, kWrite, kFinish };

  // Queues `message` unless the stream is closed or broken; returns whether
  // it was taken.
  bool Push(Message message) {
    if (closed_ || broken_) return false;
    if (queue_.empty() || !Merge()(queue_.back(), message)) queue_.push_back(std::move(message));
    return true;
  }

  // Nothing more will be pushed; the stream finishes once the queue is
  // written. Returns false when it was already closed.
  bool Close() {
    if (closed_) return false;
    closed_ = true;
    return true;
  }

  // The write in flight ended; `ok` false means the peer can no longer be
  // written to.
  void WriteDone(bool ok) {
    writing_ = false;
    if (!ok) {
      broken_ = true;
      queue_.clear();
    }
  }

  // The peer is gone (noticed other than by a failed write): drop what is
  // queued and write nothing more. A write in flight keeps its message.
  void Break() {
    broken_ = true;
    queue_.clear();
  }

  // What the owner must do now: start writing in_flight(), finish the
  // stream (returned exactly once), or nothing.
  Step Next() {
    if (writing_ || finished_) return Step::kNone;
    if (!queue_.empty()) {
      in_flight_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      return Step::kWrite;
    }
    if (closed_) {
      finished_ = true;
      return Step::kFinish;
    }
    return Step::kNone;
  }

  // Opens the next stream on the same connection (HTTP keep-alive carries
  // one response after another). Call when nothing is in flight: after
  // kFinish, or before the first message.
  void Reopen() { closed_ = finished_ = false; }

  // The message being written after Next() returned kWrite; it stays put
  // until WriteDone, so its address may be handed to an asynchronous write.
  Message& in_flight() { return in_flight_; }

  bool broken() const { return broken_; }
  bool finished() const { return finished_; }
  bool writing() const { return writing_; }
  bool idle() const { return !writing_ && queue_.empty(); }

 private:
  std::deque<Message> queue_;
  Message in_flight_{};
  bool writing_ = false;
  bool closed_ = false;
  bool broken_ = false;
  bool finished_ = false;
};

}  // namespace moa

#endif  // MOA_LIB_BASE_WRITE_QUEUE_H_
