// A bounded load of Chat requests from a few client threads, for e2e tests
// that break things while requests run.
#ifndef MOA_TESTS_SUPPORT_CHAT_LOAD_H_
#define MOA_TESTS_SUPPORT_CHAT_LOAD_H_

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "moa/v1/orchestrator.grpc.pb.h"

namespace moa::testing {

class ChatLoad {
 public:
  // Starts `concurrency` threads that send `requests` one-question Chats in
  // all, each with `deadline`. The stub must outlive the load.
  ChatLoad(v1::OrchestratorService::Stub* stub, int requests, int concurrency,
           absl::Duration deadline);
  ~ChatLoad();  // Joins.

  int done() const { return done_.load(); }
  // Waits for every request; returns the error messages of those that failed.
  std::vector<std::string> Finish();

 private:
  std::atomic<int> next_{0};
  std::atomic<int> done_{0};
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  std::vector<std::string> failures_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa::testing

#endif  // MOA_TESTS_SUPPORT_CHAT_LOAD_H_
