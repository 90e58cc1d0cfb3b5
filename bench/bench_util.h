// Small helpers shared by the benchmarks.
#ifndef MOA_BENCH_BENCH_UTIL_H_
#define MOA_BENCH_BENCH_UTIL_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "moa/v1/orchestrator.grpc.pb.h"
#include "tests/support/test_support.h"

namespace moa::bench {

// Waits for "<prefix> <number>" in a process's log; exits the benchmark if
// it never comes.
int WaitForLoggedPort(moa::testing::Process& p, const std::string& prefix);

// VmRSS of a process in KiB.
long ResidentKb(pid_t pid);
// CPU time (user + system) the process has used so far, in seconds.
double CpuSeconds(pid_t pid);

// q in [0, 1]; sorts a copy.
double Percentile(std::vector<double> values, double q);

template <typename T>
size_t CountFailed(const std::vector<T>& results) {
  size_t n = 0;
  for (const auto& r : results) n += !r.ok;
  return n;
}

// Prints the CPU model and core count, so numbers can be compared.
void PrintMachine();

// One row of `make bench`'s summary table: a tab-separated line
// "SUMMARY\t<what>\t<value>" that bench/run-benchmarks.sh collects.
void Summary(const std::string& what, const std::string& value);

// One OrchestratorService.Chat stream on the callback API (no thread per
// stream), shared by the benchmarks: `on_event` sees every event, `on_done`
// the final status and the time from the start. Deletes itself after
// `on_done` unless KeepAfterDone() was called (then the caller deletes it,
// and Cancel stays safe until then).
class ChatStream final : public grpc::ClientReadReactor<v1::ChatEvent> {
 public:
  struct Result {
    grpc::Status status;
    absl::Duration total;
  };
  ChatStream(v1::OrchestratorService::Stub* stub, v1::ChatRequest request,
             std::function<void(const v1::ChatEvent&)> on_event,
             std::function<void(const Result&)> on_done,
             absl::Time deadline = absl::InfiniteFuture())
      : request_(std::move(request)),
        on_event_(std::move(on_event)),
        on_done_(std::move(on_done)),
        start_(absl::Now()) {
    if (deadline != absl::InfiniteFuture()) ctx_.set_deadline(absl::ToChronoTime(deadline));
    stub->async()->Chat(&ctx_, &request_, this);
    StartRead(&event_);
    StartCall();
  }
  void Cancel() { ctx_.TryCancel(); }
  void KeepAfterDone() { keep_ = true; }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (on_event_) on_event_(event_);
    StartRead(&event_);
  }
  void OnDone(const grpc::Status& s) override {
    on_done_({s, absl::Now() - start_});
    if (!keep_) delete this;
  }

 private:
  grpc::ClientContext ctx_;
  v1::ChatRequest request_;
  v1::ChatEvent event_;
  std::function<void(const v1::ChatEvent&)> on_event_;
  std::function<void(const Result&)> on_done_;
  const absl::Time start_;
  bool keep_ = false;
};

// Keeps `concurrency` calls going until `count` have started or `until`
// passes, then waits for all of them. `start(i, done)` starts call i and
// must call `done(result)` once, from any thread. The loop's state is
// shared with the callbacks, so it lives until the last one returns.
template <typename Result>
std::vector<Result> RunClosedLoop(int concurrency, int count, absl::Time until,
                                  std::function<void(int, std::function<void(Result)>)> start,
                                  absl::Duration ramp = absl::ZeroDuration()) {
  struct State {
    absl::Mutex mu;
    std::vector<Result> results;
    int started = 0;
    int finished = 0;
    bool stopped = false;
    bool notified = false;
    absl::Notification all_done;
    int count;
    absl::Time until;
    std::function<void(int, std::function<void(Result)>)> start;
  };
  auto state = std::make_shared<State>();
  state->count = count;
  state->until = until;
  state->start = std::move(start);
  struct Loop {
    static void StartOne(const std::shared_ptr<State>& s) {
      int i;
      {
        absl::MutexLock lock(&s->mu);
        if (s->stopped || s->started >= s->count || absl::Now() >= s->until) {
          s->stopped = true;
          if (s->finished == s->started && !s->notified) {
            s->notified = true;
            s->all_done.Notify();
          }
          return;
        }
        i = s->started++;
      }
      s->start(i, [s](Result r) {
        {
          absl::MutexLock lock(&s->mu);
          s->results.push_back(std::move(r));
          ++s->finished;
        }
        StartOne(s);
      });
    }
  };
  for (int c = 0; c < concurrency; ++c) {
    // Spread over `ramp`: clients that all start at once stay in lockstep
    // when every call takes the same time.
    if (c > 0 && ramp > absl::ZeroDuration()) absl::SleepFor(ramp / concurrency);
    Loop::StartOne(state);
  }
  state->all_done.WaitForNotification();
  absl::MutexLock lock(&state->mu);
  return state->results;
}

}  // namespace moa::bench

#endif  // MOA_BENCH_BENCH_UTIL_H_
