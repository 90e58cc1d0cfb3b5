// Streams through one moa-proposer from moa-upstream-sim, both run as real
// processes on loopback, and prints:
//   1. streams per second through the proposer at --latency_scale 0
//      (and straight from the simulator with the same HTTP client, for scale);
//   2. added latency: end-to-end p50/p99 through the proposer minus the same
//      straight from the simulator, at a fixed concurrency;
//   3. resident memory of the proposer and the simulator with N concurrent
//      streams in flight.
// It is a benchmark, not a test: it asserts nothing and only prints numbers.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <regex>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "lib/llm/curl_llm_client.h"
#include "moa/v1/proposer.grpc.pb.h"
#include "tests/support/test_support.h"

ABSL_FLAG(std::string, bin_dir, "build", "Build folder holding the binaries.");
ABSL_FLAG(int, throughput_concurrency, 64, "Concurrent streams in the throughput phase.");
ABSL_FLAG(absl::Duration, throughput_time, absl::Seconds(5), "Length of the throughput phase.");
ABSL_FLAG(int, latency_concurrency, 50, "Concurrent streams in the latency phase.");
ABSL_FLAG(int, latency_requests, 300, "Requests per path in the latency phase.");
ABSL_FLAG(int, memory_streams, 2000, "Concurrent streams in the memory phase.");

namespace moa::bench {
namespace {

using moa::testing::Process;

struct CallResult {
  bool ok = false;
  absl::Duration total;
  absl::Duration ttft;
};

// Streamed messages received by every StreamCall (the CPU-per-token figure).
std::atomic<int64_t> tokens_seen{0};

// One Generate stream, callback API: no thread per stream.
class StreamCall final : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  StreamCall(v1::ProposerService::Stub* stub, const v1::GenerateRequest& req,
             std::function<void(CallResult)> done, std::atomic<int>* first_deltas = nullptr)
      : req_(req), done_(std::move(done)), first_deltas_(first_deltas), start_(absl::Now()) {
    stub->async()->Generate(&ctx_, &req_, this);
    StartRead(&resp_);
    StartCall();
  }
  void Cancel() { ctx_.TryCancel(); }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    tokens_seen.fetch_add(1, std::memory_order_relaxed);
    if (!got_first_) {
      got_first_ = true;
      ttft_ = absl::Now() - start_;
      if (first_deltas_) first_deltas_->fetch_add(1);
    }
    StartRead(&resp_);
  }
  void OnDone(const grpc::Status& s) override {
    done_({s.ok(), absl::Now() - start_, ttft_});
    if (!keep_) delete this;
  }
  // The caller deletes the call after its OnDone (so Cancel stays safe).
  void KeepAfterDone() { keep_ = true; }

 private:
  grpc::ClientContext ctx_;
  v1::GenerateRequest req_;
  v1::GenerateResponse resp_;
  std::function<void(CallResult)> done_;
  std::atomic<int>* first_deltas_;
  absl::Time start_;
  absl::Duration ttft_;
  bool got_first_ = false;
  bool keep_ = false;
};

v1::GenerateRequest Question(int i) {
  v1::GenerateRequest req;
  auto* m = req.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content(absl::StrCat("Benchmark question number ", i));
  return req;
}

std::vector<CallResult> ClosedLoopGrpc(v1::ProposerService::Stub* stub, int concurrency, int count,
                                       absl::Time until) {
  return RunClosedLoop<CallResult>(concurrency, count, until,
                                   [stub](int i, std::function<void(CallResult)> done) {
                                     new StreamCall(stub, Question(i), std::move(done));
                                   });
}

class Observer final : public llm::StreamObserver {
 public:
  explicit Observer(std::function<void(CallResult)> done) : done_(std::move(done)) {}
  void OnDelta(absl::string_view) override {
    if (!first_) first_ = absl::Now();
  }
  void OnDone(absl::StatusOr<llm::Completion> r) override {
    absl::Time now = absl::Now();
    done_({r.ok(), now - start_, (first_ ? *first_ : now) - start_});
  }

 private:
  std::function<void(CallResult)> done_;
  absl::Time start_ = absl::Now();
  std::optional<absl::Time> first_;
};

std::vector<CallResult> ClosedLoopDirect(llm::LlmClient* client, int concurrency, int count,
                                         absl::Time until) {
  return RunClosedLoop<CallResult>(
      concurrency, count, until, [client](int i, std::function<void(CallResult)> done) {
        llm::ChatRequest req;
        req.messages = {{llm::Role::kUser, absl::StrCat("Benchmark question number ", i)}};
        client->Start(req, std::make_shared<Observer>(std::move(done)));
      });
}

struct Cluster {
  std::unique_ptr<Process> sim;
  std::unique_ptr<Process> proposer;
  int sim_port = 0;
  int proposer_port = 0;
  std::unique_ptr<v1::ProposerService::Stub> stub;
  std::unique_ptr<llm::CurlLlmClient> direct;
};

Cluster StartCluster(const std::string& bin, const std::string& profiles, double scale) {
  Cluster c;
  c.sim = std::make_unique<Process>(
      std::vector<std::string>{bin + "/tools/upstream-sim/moa-upstream-sim", "--port=0",
                               "--profiles=" + profiles, absl::StrCat("--latency_scale=", scale)});
  c.sim_port = WaitForLoggedPort(*c.sim, "on port");
  c.proposer = std::make_unique<Process>(std::vector<std::string>{
      bin + "/services/proposer/moa-proposer", "--host=127.0.0.1", "--port=0", "--metrics_port=0",
      "--model=bench", "--max_inflight=100000",
      absl::StrCat("--upstream_url=http://127.0.0.1:", c.sim_port, "/v1")});
  c.proposer_port = WaitForLoggedPort(*c.proposer, "serving gRPC on port");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  c.stub = v1::ProposerService::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", c.proposer_port), grpc::InsecureChannelCredentials(), args));
  llm::UpstreamOptions up;
  up.base_url = absl::StrCat("http://127.0.0.1:", c.sim_port, "/v1");
  up.model = "bench";
  c.direct = *llm::CurlLlmClient::Create(up);
  return c;
}

void Run() {
  std::string bin = absl::GetFlag(FLAGS_bin_dir);
  std::string profiles = "/tmp/moa-proposer-bench-profiles.yaml";
  PrintMachine();

  // 1. Throughput at latency scale 0.
  std::ofstream(profiles) << "default: {time_to_first_token: 0.1, tokens_per_second: 100, "
                             "answer_tokens: 50}\n";
  {
    Cluster c = StartCluster(bin, profiles, 0);
    int conc = absl::GetFlag(FLAGS_throughput_concurrency);
    absl::Duration t = absl::GetFlag(FLAGS_throughput_time);
    ClosedLoopGrpc(c.stub.get(), conc, 200, absl::InfiniteFuture());  // Warm-up.
    absl::Time start = absl::Now();
    auto via = ClosedLoopGrpc(c.stub.get(), conc, 1 << 30, start + t);
    double via_rate = via.size() / absl::ToDoubleSeconds(absl::Now() - start);
    start = absl::Now();
    auto direct = ClosedLoopDirect(c.direct.get(), conc, 1 << 30, start + t);
    double direct_rate = direct.size() / absl::ToDoubleSeconds(absl::Now() - start);
    std::printf("throughput (latency_scale 0, 50-token answers, %d concurrent):\n", conc);
    std::printf("  via proposer:        %8.0f streams/s (%zu streams, %zu failed)\n", via_rate,
                via.size(), CountFailed(via));
    std::printf("  direct to simulator: %8.0f streams/s (same HTTP client, for scale)\n",
                direct_rate);
    Summary("proposer: streams/s at latency_scale 0",
            absl::StrFormat("%.0f (direct to the simulator %.0f)", via_rate, direct_rate));
  }

  // 2. Added latency at realistic timings.
  std::ofstream(profiles) << "default: {time_to_first_token: 0.2, tokens_per_second: 100, "
                             "answer_tokens: 50}\n";
  {
    Cluster c = StartCluster(bin, profiles, 1);
    int conc = absl::GetFlag(FLAGS_latency_concurrency);
    int n = absl::GetFlag(FLAGS_latency_requests);
    auto direct = ClosedLoopDirect(c.direct.get(), conc, n, absl::InfiniteFuture());
    auto via = ClosedLoopGrpc(c.stub.get(), conc, n, absl::InfiniteFuture());
    auto pct = [](std::vector<CallResult> v, bool ttft, double q) {
      std::vector<double> ms;
      for (auto& r : v) ms.push_back(absl::ToDoubleMilliseconds(ttft ? r.ttft : r.total));
      return Percentile(ms, q);
    };
    std::printf("added latency (ttft 0.2 s, 100 tokens/s, 50 tokens, %d concurrent, %d each):\n",
                conc, n);
    for (bool ttft : {true, false}) {
      const char* what = ttft ? "time to first token" : "end to end";
      double d50 = pct(direct, ttft, 0.5), v50 = pct(via, ttft, 0.5);
      double d99 = pct(direct, ttft, 0.99), v99 = pct(via, ttft, 0.99);
      std::printf(
          "  %-19s direct p50 %7.2f ms p99 %7.2f ms | via proposer p50 %7.2f ms p99 "
          "%7.2f ms | added p50 %+6.2f ms p99 %+6.2f ms\n",
          what, d50, d99, v50, v99, v50 - d50, v99 - d99);
      Summary(absl::StrCat("proposer: added ", what),
              absl::StrFormat("p50 %+.2f ms, p99 %+.2f ms", v50 - d50, v99 - d99));
    }
  }

  // 3. Resident memory with many streams in flight.
  std::ofstream(profiles) << "default: {time_to_first_token: 0.5, tokens_per_second: 2, "
                             "answer_tokens: 400}\n";
  {
    Cluster c = StartCluster(bin, profiles, 1);
    long proposer_idle = ResidentKb(c.proposer->pid());
    long sim_idle = ResidentKb(c.sim->pid());
    int n = absl::GetFlag(FLAGS_memory_streams);
    std::atomic<int> streaming{0}, finished{0};
    std::vector<StreamCall*> calls;
    for (int i = 0; i < n; ++i) {
      calls.push_back(new StreamCall(
          c.stub.get(), Question(i), [&](CallResult) { ++finished; }, &streaming));
      calls.back()->KeepAfterDone();
    }
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (streaming.load() < n && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
    absl::SleepFor(absl::Seconds(1));
    long proposer_busy = ResidentKb(c.proposer->pid());
    long sim_busy = ResidentKb(c.sim->pid());
    // CPU per token while every stream is open: the upstream event loop's cost
    // per wake-up must not grow with the streams in flight.
    std::atomic<int64_t>* tokens = &tokens_seen;
    int64_t tokens_before = tokens->load();
    double cpu_before = CpuSeconds(c.proposer->pid());
    absl::Time window_start = absl::Now();
    absl::SleepFor(absl::Seconds(5));
    double cpu = CpuSeconds(c.proposer->pid()) - cpu_before;
    double window = absl::ToDoubleSeconds(absl::Now() - window_start);
    int64_t window_tokens = tokens->load() - tokens_before;
    std::printf("resident memory with %d streams in flight (%d streaming):\n", n, streaming.load());
    std::printf("  moa-proposer:     idle %6.1f MiB, busy %6.1f MiB (%.1f KiB per stream)\n",
                proposer_idle / 1024.0, proposer_busy / 1024.0,
                double(proposer_busy - proposer_idle) / n);
    std::printf("  moa-upstream-sim: idle %6.1f MiB, busy %6.1f MiB\n", sim_idle / 1024.0,
                sim_busy / 1024.0);
    std::printf(
        "  moa-proposer CPU with them open: %.0f%% of a core, %.0f tokens/s streamed, %.1f us "
        "per token\n",
        100 * cpu / window, window_tokens / window,
        window_tokens > 0 ? 1e6 * cpu / static_cast<double>(window_tokens) : 0.0);
    Summary(absl::StrCat("proposer: memory per stream, ", n, " streams"),
            absl::StrFormat("%.1f KiB", double(proposer_busy - proposer_idle) / n));
    Summary(
        absl::StrCat("proposer: CPU per streamed token, ", n, " streams open"),
        absl::StrFormat("%.1f us",
                        window_tokens > 0 ? 1e6 * cpu / static_cast<double>(window_tokens) : 0.0));
    for (StreamCall* call : calls) call->Cancel();
    while (finished.load() < n) absl::SleepFor(absl::Milliseconds(20));
    for (StreamCall* call : calls) delete call;
  }
  std::remove(profiles.c_str());
}

}  // namespace
}  // namespace moa::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  moa::bench::Run();
  return 0;
}
