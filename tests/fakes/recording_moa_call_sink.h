// A MoaCallSink that records a call's events and its one finish, for
// tests of MoaCall against fake backends.
#ifndef MOA_TESTS_FAKES_RECORDING_MOA_CALL_SINK_H_
#define MOA_TESTS_FAKES_RECORDING_MOA_CALL_SINK_H_

#include <gtest/gtest.h>

#include <vector>

#include "absl/synchronization/mutex.h"
#include "services/orchestrator/engine/moa_call.h"

namespace moa::testing {

class RecordingSink : public orchestrator::MoaCallSink {
 public:
  void OnEvent(v1::ChatEvent event) override {
    absl::MutexLock lock(&mu_);
    ASSERT_FALSE(finished_) << "no event after OnFinish";
    events_.push_back(std::move(event));
  }
  void OnFinish(absl::Status status) override {
    absl::MutexLock lock(&mu_);
    ++finishes_;
    finished_ = true;
    status_ = status;
  }
  std::vector<v1::ChatEvent> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  absl::Status status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  int finishes() {
    absl::MutexLock lock(&mu_);
    return finishes_;
  }
  bool finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::ChatEvent> events_;
  bool finished_ = false;
  int finishes_ = 0;
  absl::Status status_ = absl::UnknownError("not finished");
};

}  // namespace moa::testing

#endif  // MOA_TESTS_FAKES_RECORDING_MOA_CALL_SINK_H_
