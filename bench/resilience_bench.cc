// How a cluster holds up when its models do not: a heavy-tailed upstream
// (the layer policy against the paper's wait-for-all) and a fault soak.
// Prints numbers; never a test. See README, "Performance".
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "bench/bench_util.h"
#include "moa/v1/orchestrator.grpc.pb.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"

ABSL_FLAG(int, tail_requests, 500, "Requests per policy in the heavy-tail phase.");
ABSL_FLAG(int, tail_concurrency, 100, "Concurrent requests in the heavy-tail phase.");
ABSL_FLAG(int, soak_requests, 2000, "Requests in the fault soak.");
ABSL_FLAG(int, soak_concurrency, 20, "Concurrent requests in the fault soak.");
ABSL_FLAG(absl::Duration, soak_deadline, absl::Seconds(30), "Deadline of each soak request.");
ABSL_FLAG(std::string, soak_pipeline, "plain",
          "Pipeline of the fault soak: plain (the default policy, no fallbacks), fast (3 of 4 "
          "then 0.5x median), all, moa (aggregator fallbacks [a, b]).");
ABSL_FLAG(std::vector<std::string>, orchestrator_flags, {},
          "Extra orchestrator flags, comma-separated (e.g. --breaker_min_calls=0).");

namespace moa::bench {
namespace {

struct Outcome {
  bool ok = false;
  bool past_deadline = false;
  double seconds = 0;
  int references = 0;
  std::string error;
};

// A Chat stream on `pipeline`: its status, duration and the references
// layer 1 passed on.
void StartCall(v1::OrchestratorService::Stub* stub, const std::string& pipeline, int i,
               absl::Duration deadline, std::function<void(Outcome)> done) {
  v1::ChatRequest request = testing::UserQuestion(absl::StrCat("Resilience question ", i));
  request.set_pipeline(pipeline);
  const absl::Time due =
      deadline == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + deadline;
  auto references = std::make_shared<int>(0);
  new ChatStream(
      stub, std::move(request),
      [references](const v1::ChatEvent& event) {
        if (event.has_summary() && event.summary().layer_references_size() > 0) {
          *references = event.summary().layer_references(0);
        }
      },
      [references, due, done = std::move(done)](const ChatStream::Result& r) {
        done({r.status.ok(), absl::Now() > due + absl::Milliseconds(100),
              absl::ToDoubleSeconds(r.total), *references, r.status.error_message()});
      },
      due);
}

// An error message with its numbers and durations blanked, so failures of
// one kind count together.
std::string Shape(const std::string& message) {
  std::string out;
  bool in_number = false;
  for (char c : message.substr(0, 160)) {
    const bool digit = (c >= '0' && c <= '9') || (in_number && (c == '.' || c == 'm' || c == 's'));
    if (digit && !in_number) out += '#';
    if (!digit) out += c;
    in_number = digit;
  }
  return out;
}

std::vector<Outcome> Run(v1::OrchestratorService::Stub* stub, const std::string& pipeline,
                         int concurrency, int count, absl::Duration deadline) {
  return RunClosedLoop<Outcome>(concurrency, count, absl::InfiniteFuture(),
                                [=](int i, std::function<void(Outcome)> done) {
                                  StartCall(stub, pipeline, i, deadline, std::move(done));
                                });
}

std::unique_ptr<testing::LocalCluster> Start(const std::string& profiles,
                                             std::vector<std::string> proposer_flags) {
  testing::ClusterSpec spec;
  spec.models = {"a", "b", "c", "d", "z"};
  spec.pipelines_yaml =
      "pipelines:\n  moa: {layers: [[a, b, c, d]], aggregator: z, aggregator_fallbacks: [a, b]}\n"
      "  plain: {layers: [[a, b, c, d]], aggregator: z}\n"
      "  all: {layers: [[a, b, c, d]], aggregator: z, policy: {min_proposals: all}}\n"
      "  two: {layers: [[a, b, c, d]], aggregator: z, policy: {min_proposals: 2}}\n"
      "  fast: {layers: [[a, b, c, d]], aggregator: z,\n"
      "         policy: {min_proposals: 3, straggler_grace_factor: 0.5}}\n"
      "  one: {layers: [[a, b, c, d]], aggregator: z,\n"
      "        policy: {min_proposals: 3, straggler_grace_factor: 1.0}}\n"
      "default_pipeline: moa\n";
  spec.sim_profiles_yaml = profiles;
  spec.proposer_flags = std::move(proposer_flags);
  spec.orchestrator_flags = {"--max_inflight=100000"};
  for (const std::string& f : absl::GetFlag(FLAGS_orchestrator_flags)) {
    spec.orchestrator_flags.push_back(f);
  }
  auto cluster = std::make_unique<testing::LocalCluster>(spec);
  if (!cluster->ok()) {
    std::fprintf(stderr, "%s\n", cluster->error().c_str());
    std::exit(1);
  }
  return cluster;
}

std::unique_ptr<v1::OrchestratorService::Stub> Stub(const std::string& address) {
  return v1::OrchestratorService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

void HeavyTail() {
  if (absl::GetFlag(FLAGS_tail_requests) <= 0) return;
  // Proposers: time to first token lognormal, median 0.5 s, sigma 1.0
  // (p99 about 5 s); the aggregator is steady, to isolate the layer.
  auto cluster = Start(
      "default: {time_to_first_token: {median: 0.5, sigma: 1.0}, "
      "tokens_per_second: 200, answer_tokens: 40}\n"
      "models:\n  z: {time_to_first_token: 0.2, tokens_per_second: 200, answer_tokens: 40}\n",
      {"--max_inflight=100000"});
  auto stub = Stub(cluster->orchestrator_address());
  const int n = absl::GetFlag(FLAGS_tail_requests);
  const int conc = absl::GetFlag(FLAGS_tail_concurrency);
  if (n <= 0) return;
  std::printf(
      "heavy tail: [[a, b, c, d]] -> z, proposers' TTFT lognormal (median 0.5 s, "
      "sigma 1.0), %d requests at %d concurrent\n",
      n, conc);
  const std::map<std::string, std::string> names = {
      {"all", "wait-for-all (paper)"},
      {"moa", "default: every proposal, stuck ones cut"},
      {"fast", "3 of 4, 0.5x median (the earlier default)"},
      {"one", "3 of 4, 1.0x median"},
      {"two", "2 of 4, 0.5x median"}};
  for (const char* pipeline : {"all", "moa", "fast", "one", "two"}) {
    auto r = Run(stub.get(), pipeline, conc, n, absl::InfiniteDuration());
    std::vector<double> secs;
    double refs = 0;
    for (const Outcome& o : r) {
      secs.push_back(o.seconds);
      refs += o.references;
    }
    std::printf("  %-30s p50 %.2f s  p99 %.2f s  mean references %.2f of 4  failed %zu\n",
                names.at(pipeline).c_str(), Percentile(secs, 0.5), Percentile(secs, 0.99),
                refs / r.size(), CountFailed(r));
    Summary(
        absl::StrCat("heavy tail: ", names.at(pipeline)),
        absl::StrFormat("p50 %.2f s, p99 %.2f s", Percentile(secs, 0.5), Percentile(secs, 0.99)));
  }
}

void FaultSoak() {
  const char* faults =
      "faults: {http_500: 0.05, http_429: 0.05, retry_after_seconds: 1, hang: 0.02, "
      "reset: 0.03, malformed: 0.03}";
  auto cluster = Start(absl::StrCat("default: {time_to_first_token: 0.2, tokens_per_second: 200, "
                                    "answer_tokens: 40, ",
                                    faults, "}\n"),
                       {"--max_inflight=100000", "--first_token_timeout=10s"});
  auto stub = Stub(cluster->orchestrator_address());
  const int n = absl::GetFlag(FLAGS_soak_requests);
  if (n <= 0) return;
  const int conc = absl::GetFlag(FLAGS_soak_concurrency);
  const absl::Duration deadline = absl::GetFlag(FLAGS_soak_deadline);
  std::printf(
      "fault soak: every model 5%% 500, 5%% 429 (Retry-After 1 s), 2%% hang, 3%% reset, "
      "3%% malformed; %d requests at %d concurrent, deadline %s, proposers' first-token "
      "timeout 10 s, pipeline %s\n",
      n, conc, absl::FormatDuration(deadline).c_str(), absl::GetFlag(FLAGS_soak_pipeline).c_str());
  const absl::Time start = absl::Now();
  auto r = Run(stub.get(), absl::GetFlag(FLAGS_soak_pipeline), conc, n, deadline);
  const double took = absl::ToDoubleSeconds(absl::Now() - start);
  size_t answered = 0, past_deadline = 0;
  std::map<std::string, int> causes;
  std::vector<double> secs;
  for (const Outcome& o : r) {
    answered += o.ok;
    past_deadline += o.past_deadline;
    if (o.ok) secs.push_back(o.seconds);
    if (!o.ok) ++causes[Shape(o.error)];
  }
  const int64_t upstream_calls = cluster->SimStats()["requests"].get<int64_t>();
  std::printf(
      "  answered %zu of %zu (%.2f%%) in %.0f s; past the deadline %zu; p50 %.2f s, "
      "p99 %.2f s\n",
      answered, r.size(), 100.0 * answered / r.size(), took, past_deadline, Percentile(secs, 0.5),
      Percentile(secs, 0.99));
  Summary(
      "fault soak: answered",
      absl::StrFormat("%.2f%% (p99 %.2f s)", 100.0 * answered / r.size(), Percentile(secs, 0.99)));
  std::printf("  upstream calls %lld: %.2f per answered request (5 without faults)\n",
              static_cast<long long>(upstream_calls),
              answered ? static_cast<double>(upstream_calls) / answered : 0.0);
  for (const auto& [cause, count] : causes) std::printf("  failed %d: %s\n", count, cause.c_str());
}

}  // namespace
}  // namespace moa::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moa::bench::PrintMachine();
  moa::bench::HeavyTail();
  moa::bench::FaultSoak();
  return 0;
}
