// Load generator for OrchestratorService.Chat against a whole cluster of
// real processes on the simulator: a 3-layer pipeline (two layers of four
// proposers, then the aggregator). Prints:
//   1. MoA requests per second at --latency_scale 0;
//   2. orchestration overhead at p50/p99 with 100 concurrent requests and
//      about 1 s of upstream latency: end-to-end time minus, per layer, the
//      slowest upstream call (from the event timings);
//   3. resident memory of each service with N requests in flight.
// A benchmark, not a test: it prints numbers and asserts nothing.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "lib/llm/curl_llm_client.h"
#include "lib/wire/wire.h"
#include "moa/v1/orchestrator.grpc.pb.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"
#include "tests/support/test_support.h"

ABSL_FLAG(int, throughput_concurrency, 32, "Concurrent requests in the throughput phase.");
ABSL_FLAG(absl::Duration, throughput_time, absl::Seconds(5), "Length of the throughput phase.");
ABSL_FLAG(int, overhead_concurrency, 100, "Concurrent requests in the overhead phase.");
ABSL_FLAG(int, overhead_requests, 500, "Requests in the overhead phase.");
ABSL_FLAG(int, memory_requests, 2000, "Requests in flight in the memory phase.");
ABSL_FLAG(std::vector<std::string>, phases,
          std::vector<std::string>({"throughput", "tls", "overhead", "memory"}),
          "Phases to run (comma-separated): throughput, tls, overhead, memory.");
ABSL_FLAG(absl::Duration, overhead_ramp, absl::Seconds(1),
          "Overhead phase: the clients' first requests are spread over this long (0: all at "
          "once, so every layer of every request ends together).");

namespace moa::bench {
namespace {

constexpr char kPipelines[] =
    "pipelines:\n  moa3:\n    layers: [[a, b, c, d], [a, b, c, d]]\n    aggregator: z\n"
    "default_pipeline: moa3\n";

struct ChatResult {
  bool ok = false;
  absl::Duration total;
  absl::Duration overhead;
  std::string error;
};

// A Chat stream whose result is the end-to-end time and the overhead: the
// total minus, per layer, the slowest proposal and the final answer's time
// (from the events).
ChatStream* StartChat(v1::OrchestratorService::Stub* stub, int i,
                      std::function<void(ChatResult)> done, std::atomic<int>* accepted = nullptr) {
  struct Timings {
    std::map<int, absl::Duration> slowest;
    absl::Duration final_answer;
  };
  auto timings = std::make_shared<Timings>();
  return new ChatStream(
      stub, testing::UserQuestion(absl::StrCat("Benchmark question ", i)),
      [timings, accepted](const v1::ChatEvent& event) {
        if (event.has_accepted() && accepted) accepted->fetch_add(1);
        if (event.has_proposal_done()) {
          int layer = event.proposal_done().ref().layer();
          absl::Duration d = wire::FromProto(event.proposal_done().completion().duration());
          timings->slowest[layer] = std::max(timings->slowest[layer], d);
        }
        if (event.has_summary()) {
          timings->final_answer = wire::FromProto(event.summary().answer().duration());
        }
      },
      [timings, done = std::move(done)](const ChatStream::Result& r) {
        ChatResult result;
        result.ok = r.status.ok();
        result.error = r.status.error_message();
        result.total = r.total;
        result.overhead = r.total - timings->final_answer;
        for (auto& [layer, d] : timings->slowest) result.overhead -= d;
        done(result);
      });
}

std::vector<ChatResult> ClosedLoop(v1::OrchestratorService::Stub* stub, int concurrency, int count,
                                   absl::Time until, absl::Duration ramp = absl::ZeroDuration()) {
  return RunClosedLoop<ChatResult>(
      concurrency, count, until,
      [stub](int i, std::function<void(ChatResult)> done) { StartChat(stub, i, std::move(done)); },
      ramp);
}

std::unique_ptr<moa::testing::LocalCluster> StartCluster(
    const std::string& profiles, double scale, bool simulator_per_model = false,
    std::vector<std::string> orchestrator_flags = {},
    std::shared_ptr<grpc::ChannelCredentials> front_credentials = nullptr) {
  moa::testing::ClusterSpec spec;
  spec.models = {"a", "b", "c", "d", "z"};
  spec.pipelines_yaml = kPipelines;
  spec.sim_profiles_yaml = profiles;
  spec.sim_latency_scale = scale;
  spec.simulator_per_model = simulator_per_model;
  spec.proposer_flags = {"--max_inflight=100000"};
  spec.orchestrator_flags = {"--max_inflight=100000", "--http_port=0"};
  spec.orchestrator_flags.insert(spec.orchestrator_flags.end(), orchestrator_flags.begin(),
                                 orchestrator_flags.end());
  spec.front_credentials = std::move(front_credentials);
  auto cluster = std::make_unique<moa::testing::LocalCluster>(spec);
  if (!cluster->ok()) {
    std::fprintf(stderr, "%s\n", cluster->error().c_str());
    std::exit(1);
  }
  return cluster;
}

// The HTTP door through an OpenAI-compatible streaming client (the same
// libcurl-multi client the proposers use upstream): model = pipeline.
class HttpObserver final : public llm::StreamObserver {
 public:
  explicit HttpObserver(std::function<void(ChatResult)> done) : done_(std::move(done)) {}
  void OnDelta(absl::string_view) override {}
  void OnDone(absl::StatusOr<llm::Completion> r) override {
    ChatResult result;
    result.ok = r.ok();
    result.error = std::string(r.status().message());
    result.total = absl::Now() - start_;
    done_(result);
  }

 private:
  std::function<void(ChatResult)> done_;
  absl::Time start_ = absl::Now();
};

// `ca_file` set: over HTTPS, trusting it.
std::unique_ptr<llm::CurlLlmClient> HttpClient(int port, const std::string& ca_file = "") {
  llm::UpstreamOptions o;
  o.base_url = absl::StrCat(ca_file.empty() ? "http" : "https", "://localhost:", port, "/v1");
  o.ca_file = ca_file;
  o.model = "moa3";
  o.retry.max_attempts = 1;
  return *llm::CurlLlmClient::Create(o);
}

std::vector<ChatResult> ClosedLoopHttp(llm::LlmClient* client, int concurrency, int count,
                                       absl::Time until,
                                       absl::Duration ramp = absl::ZeroDuration()) {
  return RunClosedLoop<ChatResult>(
      concurrency, count, until,
      [client](int i, std::function<void(ChatResult)> done) {
        llm::ChatRequest req;
        req.messages = {{llm::Role::kUser, absl::StrCat("Benchmark question ", i)}};
        client->Start(req, std::make_shared<HttpObserver>(std::move(done)));
      },
      ramp);
}

std::unique_ptr<v1::OrchestratorService::Stub> Stub(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return v1::OrchestratorService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

bool Phase(absl::string_view name) {
  for (const std::string& p : absl::GetFlag(FLAGS_phases)) {
    if (p == name) return true;
  }
  return false;
}

void Run() {
  PrintMachine();
  std::printf(
      "pipeline: 3 layers (4 proposers, 4 proposers, aggregator) = 9 model calls per "
      "request\n");
  if (Phase("throughput")) {
    auto cluster = StartCluster(
        "default: {time_to_first_token: 0.1, tokens_per_second: 100, answer_tokens: 50}\n", 0);
    auto stub = Stub(cluster->orchestrator_address());
    int conc = absl::GetFlag(FLAGS_throughput_concurrency);
    ClosedLoop(stub.get(), conc, 100, absl::InfiniteFuture());  // Warm-up.
    absl::Time start = absl::Now();
    auto r = ClosedLoop(stub.get(), conc, 1 << 30, start + absl::GetFlag(FLAGS_throughput_time));
    double secs = absl::ToDoubleSeconds(absl::Now() - start);
    std::printf(
        "throughput (latency_scale 0, 50-token answers, %d concurrent): %.0f MoA "
        "requests/s (%zu requests, %zu failed, %.0f model calls/s)\n",
        conc, r.size() / secs, r.size(), CountFailed(r), 9 * r.size() / secs);
    Summary("moa: requests/s at latency_scale 0 (9 calls each)",
            absl::StrFormat("%.0f (%.0f model calls/s)", r.size() / secs, 9 * r.size() / secs));
    auto http = HttpClient(cluster->orchestrator_http_port());
    start = absl::Now();
    auto h =
        ClosedLoopHttp(http.get(), conc, 1 << 30, start + absl::GetFlag(FLAGS_throughput_time));
    secs = absl::ToDoubleSeconds(absl::Now() - start);
    std::printf(
        "  same load through the HTTP door (streaming): %.0f MoA requests/s (%zu "
        "requests, %zu failed)\n",
        h.size() / secs, h.size(), CountFailed(h));
  }
  if (Phase("tls")) {
    // The HTTP door in plaintext and over TLS (the orchestrator's
    // --tls_cert_file), each with the same load: streamed MoA requests on
    // kept-alive connections, then new connections one after another
    // (GET /healthz, a TLS handshake each).
    const std::string dir = absl::StrCat("/tmp/moa-bench-tls-", getpid());
    std::filesystem::create_directories(dir);
    if (!moa::testing::MakeThrowawayCa(dir, "ca")) {
      std::fprintf(stderr, "openssl could not make a CA in %s\n", dir.c_str());
      std::exit(1);
    }
    const std::string profile =
        "default: {time_to_first_token: 0.1, tokens_per_second: 100, answer_tokens: 50}\n";
    int conc = absl::GetFlag(FLAGS_throughput_concurrency);
    for (bool tls : {false, true}) {
      std::shared_ptr<grpc::ChannelCredentials> front;
      if (tls) {
        std::ifstream in(dir + "/ca.crt");
        std::stringstream pem;
        pem << in.rdbuf();
        grpc::SslCredentialsOptions o;
        o.pem_root_certs = pem.str();
        front = grpc::SslCredentials(o);
      }
      auto cluster =
          StartCluster(profile, 0, false,
                       tls ? std::vector<std::string>{"--tls_cert_file=" + dir + "/ca-leaf.crt",
                                                      "--tls_key_file=" + dir + "/ca-leaf.key"}
                           : std::vector<std::string>{},
                       front);
      const int port = cluster->orchestrator_http_port();
      const std::string ca = tls ? dir + "/ca.crt" : "";
      auto http = HttpClient(port, ca);
      ClosedLoopHttp(http.get(), conc, 100, absl::InfiniteFuture());  // Warm-up.
      absl::Time start = absl::Now();
      auto h =
          ClosedLoopHttp(http.get(), conc, 1 << 30, start + absl::GetFlag(FLAGS_throughput_time));
      double secs = absl::ToDoubleSeconds(absl::Now() - start);
      const int kConnections = 300;
      int connected = 0;
      absl::Time connect_start = absl::Now();
      for (int i = 0; i < kConnections; ++i) {
        auto r = moa::testing::HttpRequest(
            "GET", absl::StrCat(tls ? "https" : "http", "://localhost:", port, "/healthz"), "", {},
            ca);
        connected += r.status == 200 ? 1 : 0;
      }
      double connect_secs = absl::ToDoubleSeconds(absl::Now() - connect_start);
      std::printf(
          "HTTP door %s: %.0f streamed MoA requests/s on kept-alive connections (%zu, %zu "
          "failed); %.0f new connections/s one at a time (%d of %d answered)\n",
          tls ? "over TLS" : "plaintext", h.size() / secs, h.size(), CountFailed(h),
          kConnections / connect_secs, connected, kConnections);
      Summary(tls ? "moa: HTTPS door requests/s, new connections/s"
                  : "moa: HTTP door requests/s, new connections/s",
              absl::StrFormat("%.0f, %.0f", h.size() / secs, kConnections / connect_secs));
    }
    std::filesystem::remove_all(dir);
  }
  if (Phase("overhead")) {
    // About 1 s per upstream call: 0.2 s to the first token, 40 tokens at 50/s.
    auto cluster = StartCluster(
        "default: {time_to_first_token: 0.2, tokens_per_second: 50, answer_tokens: 40}\n", 1);
    auto stub = Stub(cluster->orchestrator_address());
    int conc = absl::GetFlag(FLAGS_overhead_concurrency);
    // Warm-up: the first `conc` requests open every connection (client to
    // orchestrator, orchestrator to proposers, proposers to the simulator)
    // and would otherwise be the p99.
    absl::Duration ramp = absl::GetFlag(FLAGS_overhead_ramp);
    ClosedLoop(stub.get(), conc, conc, absl::InfiniteFuture());
    std::map<std::string, double> cpu_before;
    for (auto& [name, pid] : cluster->Pids()) cpu_before[name] = CpuSeconds(pid);
    absl::Time phase_start = absl::Now();
    auto r = ClosedLoop(stub.get(), conc, absl::GetFlag(FLAGS_overhead_requests),
                        absl::InfiniteFuture(), ramp);
    double phase_seconds = absl::ToDoubleSeconds(absl::Now() - phase_start);
    std::map<std::string, double> cpu_used;
    for (auto& [name, pid] : cluster->Pids()) cpu_used[name] = CpuSeconds(pid) - cpu_before[name];
    std::vector<double> overhead, total;
    for (const auto& x : r) {
      if (!x.ok) continue;
      overhead.push_back(absl::ToDoubleMilliseconds(x.overhead));
      total.push_back(absl::ToDoubleMilliseconds(x.total));
    }
    std::printf(
        "orchestration overhead (~1 s per upstream call, %d concurrent started over %s, %zu "
        "requests, %zu failed):\n  end to end p50 %.0f ms p99 %.0f ms; overhead p50 %.1f ms p99 "
        "%.1f ms\n",
        conc, absl::FormatDuration(ramp).c_str(), r.size(), CountFailed(r), Percentile(total, 0.5),
        Percentile(total, 0.99), Percentile(overhead, 0.5), Percentile(overhead, 0.99));
    // Where the machine's time goes: CPU per MoA request per service.
    double all = 0;
    std::string per_service;
    for (auto& [name, cpu] : cpu_used) {
      all += cpu;
      per_service += absl::StrFormat(" %s %.2f", name, 1000 * cpu / r.size());
    }
    std::printf("  CPU per request (ms):%s; all services %.0f%% of 2 cores\n", per_service.c_str(),
                100 * all / phase_seconds / 2);
    auto http = HttpClient(cluster->orchestrator_http_port());
    auto h = ClosedLoopHttp(http.get(), conc, absl::GetFlag(FLAGS_overhead_requests),
                            absl::InfiniteFuture(), ramp);
    std::vector<double> http_total;
    for (const auto& x : h) {
      if (x.ok) http_total.push_back(absl::ToDoubleMilliseconds(x.total));
    }
    Summary(absl::StrCat("moa: overhead, ", conc, " concurrent, ~1 s calls, 3 layers"),
            absl::StrFormat("p50 %.1f ms, p99 %.1f ms", Percentile(overhead, 0.5),
                            Percentile(overhead, 0.99)));
    Summary("moa: CPU per request, all services",
            absl::StrFormat("%.1f ms", 1000 * all / r.size()));
    std::printf(
        "  HTTP door at the same load: end to end p50 %.0f ms p99 %.0f ms (%zu failed); "
        "added vs gRPC p50 %+.1f ms p99 %+.1f ms\n",
        Percentile(http_total, 0.5), Percentile(http_total, 0.99), CountFailed(h),
        Percentile(http_total, 0.5) - Percentile(total, 0.5),
        Percentile(http_total, 0.99) - Percentile(total, 0.99));
  }
  if (Phase("memory")) {
    // A simulator per model: 10,000 requests are 40,000 upstream streams,
    // more than one simulator process can hold (see ClusterSpec). Slow
    // tokens (0.5/s): at 4/s, 40,000 streams are 160,000 tokens/s, more than
    // the simulators alone can send on two cores.
    auto cluster = StartCluster(
        "default: {time_to_first_token: 0.5, tokens_per_second: 0.5, answer_tokens: 200}\n", 1,
        /*simulator_per_model=*/true);
    auto stub = Stub(cluster->orchestrator_address());
    std::map<std::string, long> idle;
    for (auto& [name, pid] : cluster->Pids()) idle[name] = ResidentKb(pid);
    int n = absl::GetFlag(FLAGS_memory_requests);
    std::atomic<int> accepted{0}, finished{0};
    std::vector<ChatStream*> calls;
    for (int i = 0; i < n; ++i) {
      calls.push_back(StartChat(
          stub.get(), i, [&](ChatResult) { ++finished; }, &accepted));
      calls.back()->KeepAfterDone();
    }
    const absl::Time ramp_start = absl::Now();
    absl::Time deadline = ramp_start + absl::Seconds(60);
    int64_t in_flight_upstream = 0;
    nlohmann::json stats;
    while (absl::Now() < deadline) {
      stats = cluster->SimStats();
      in_flight_upstream =
          stats.value("by_outcome", nlohmann::json::object()).value("in_progress", 0);
      if (accepted.load() >= n && in_flight_upstream >= 4 * n) break;
      absl::SleepFor(absl::Milliseconds(500));
    }
    std::printf(
        "resident memory with %d MoA requests in flight (%d accepted, %ld upstream "
        "streams open after %.1f s; simulator requests by outcome %s):\n",
        n, accepted.load(), static_cast<long>(in_flight_upstream),
        absl::ToDoubleSeconds(absl::Now() - ramp_start),
        stats.value("by_outcome", nlohmann::json::object()).dump().c_str());
    long largest = 0;
    std::string largest_name;
    for (auto& [name, pid] : cluster->Pids()) {
      long busy = ResidentKb(pid);
      std::printf("  %-14s idle %6.1f MiB, busy %6.1f MiB\n", name.c_str(), idle[name] / 1024.0,
                  busy / 1024.0);
      if (name.rfind("upstream-sim", 0) != 0 && busy > largest) {
        largest = busy;
        largest_name = name;
      }
    }
    Summary(absl::StrCat("moa: largest service with ", n, " requests in flight"),
            absl::StrFormat("%s %.1f MiB", largest_name, largest / 1024.0));
    for (ChatStream* c : calls) c->Cancel();
    while (finished.load() < n) absl::SleepFor(absl::Milliseconds(20));
    for (ChatStream* c : calls) delete c;
  }
}

}  // namespace
}  // namespace moa::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  moa::bench::Run();
  return 0;
}
