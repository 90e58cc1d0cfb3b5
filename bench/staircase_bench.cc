// Staircase streaming against normal streaming on the same cluster of real
// processes (pipeline [[a, b, c, d]] -> z, gRPC Chat): answer time to first
// token and end to end at p50/p99, steps per answer, and the tokens each
// request costs, for the simulator's default profile and a heavy-tailed
// one. A benchmark, not a test: it prints numbers and asserts nothing.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "lib/wire/wire.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"

ABSL_FLAG(int, staircase_requests, 32, "Requests per mode and profile.");
ABSL_FLAG(int, staircase_concurrency, 8, "Concurrent requests.");

namespace moa::bench {
namespace {

struct Outcome {
  bool ok = false;
  double ttft_ms = 0;   // From the start to the first answer delta.
  double total_ms = 0;  // From the start to the end of the stream.
  int steps = 0;
  int64_t prompt_tokens = 0;  // Every call of the request.
  int64_t completion_tokens = 0;
};

void StartCall(v1::OrchestratorService::Stub* stub, const std::string& pipeline, int i,
               std::function<void(Outcome)> done) {
  v1::ChatRequest request = testing::UserQuestion(absl::StrCat("Staircase question ", i));
  request.set_pipeline(pipeline);
  struct State {
    absl::Time start = absl::Now();
    std::optional<absl::Time> first;
    Outcome outcome;
  };
  auto state = std::make_shared<State>();
  new ChatStream(
      stub, std::move(request),
      [state](const v1::ChatEvent& event) {
        if (event.has_answer_delta() && !state->first) state->first = absl::Now();
        if (event.has_summary()) {
          state->outcome.steps = event.summary().answer_steps();
          for (const auto& u : event.summary().usage()) {
            state->outcome.prompt_tokens += u.usage().prompt_tokens();
            state->outcome.completion_tokens += u.usage().completion_tokens();
          }
        }
      },
      [state, done = std::move(done)](const ChatStream::Result& r) {
        Outcome o = state->outcome;
        o.ok = r.status.ok() && state->first.has_value();
        if (state->first) o.ttft_ms = absl::ToDoubleMilliseconds(*state->first - state->start);
        o.total_ms = absl::ToDoubleMilliseconds(r.total);
        done(o);
      });
}

std::unique_ptr<testing::LocalCluster> Start(const std::string& profiles) {
  testing::ClusterSpec spec;
  spec.models = {"a", "b", "c", "d", "z"};
  spec.pipelines_yaml =
      "pipelines:\n  normal: {layers: [[a, b, c, d]], aggregator: z}\n"
      "  staircase: {layers: [[a, b, c, d]], aggregator: z, streaming: staircase}\n"
      "  staircase4: {layers: [[a, b, c, d]], aggregator: z,\n"
      "    streaming: {mode: staircase, first_chunk_tokens: 4}}\n"
      "default_pipeline: normal\n";
  spec.sim_profiles_yaml = profiles;
  spec.proposer_flags = {"--max_inflight=100000"};
  spec.orchestrator_flags = {"--max_inflight=100000"};
  auto cluster = std::make_unique<testing::LocalCluster>(spec);
  if (!cluster->ok()) {
    std::fprintf(stderr, "%s\n", cluster->error().c_str());
    std::exit(1);
  }
  return cluster;
}

struct Stats {
  double ttft50, ttft99, total50, total99, steps, prompt, completion;
  size_t failed;
};

Stats Measure(v1::OrchestratorService::Stub* stub, const std::string& pipeline) {
  const int n = absl::GetFlag(FLAGS_staircase_requests);
  const int conc = absl::GetFlag(FLAGS_staircase_concurrency);
  // Warm-up: connections and the hedging history.
  RunClosedLoop<Outcome>(conc, conc, absl::InfiniteFuture(),
                         [&](int i, std::function<void(Outcome)> done) {
                           StartCall(stub, pipeline, i, std::move(done));
                         });
  auto r = RunClosedLoop<Outcome>(
      conc, n, absl::InfiniteFuture(),
      [&](int i, std::function<void(Outcome)> done) {
        StartCall(stub, pipeline, 1000 + i, std::move(done));
      },
      absl::Seconds(1));
  std::vector<double> ttft, total;
  double steps = 0, prompt = 0, completion = 0;
  for (const Outcome& o : r) {
    if (!o.ok) continue;
    ttft.push_back(o.ttft_ms);
    total.push_back(o.total_ms);
    steps += o.steps;
    prompt += o.prompt_tokens;
    completion += o.completion_tokens;
  }
  double ok = std::max<size_t>(1, ttft.size());
  return {Percentile(ttft, 0.5),
          Percentile(ttft, 0.99),
          Percentile(total, 0.5),
          Percentile(total, 0.99),
          steps / ok,
          prompt / ok,
          completion / ok,
          CountFailed(r)};
}

void Compare(const std::string& name, const std::string& profiles) {
  auto cluster = Start(profiles);
  auto stub = v1::OrchestratorService::NewStub(
      grpc::CreateChannel(cluster->orchestrator_address(), grpc::InsecureChannelCredentials()));
  Stats normal = Measure(stub.get(), "normal");
  Stats stair = Measure(stub.get(), "staircase");
  Stats small = Measure(stub.get(), "staircase4");
  std::printf("%s profile, %d requests per mode at %d concurrent:\n", name.c_str(),
              absl::GetFlag(FLAGS_staircase_requests), absl::GetFlag(FLAGS_staircase_concurrency));
  for (const auto& [mode, s] :
       {std::pair<const char*, Stats>{"normal", normal},
        std::pair<const char*, Stats>{"staircase (first chunk 16 tokens, the default)", stair},
        std::pair<const char*, Stats>{"staircase (first chunk 4 tokens)", small}}) {
    std::printf(
        "  %-47s answer TTFT p50 %6.0f ms p99 %6.0f ms | end to end p50 %6.0f ms p99 %6.0f ms | "
        "%.2f steps | tokens per request: prompt %.0f, completion %.0f | %zu failed\n",
        mode, s.ttft50, s.ttft99, s.total50, s.total99, s.steps, s.prompt, s.completion, s.failed);
  }
  std::printf(
      "  staircase / normal: answer TTFT p50 %.2fx p99 %.2fx, end to end p50 %.2fx, prompt "
      "tokens %.2fx\n",
      stair.ttft50 / normal.ttft50, stair.ttft99 / normal.ttft99, stair.total50 / normal.total50,
      stair.prompt / normal.prompt);
  std::printf("  with a first chunk of 4 tokens: answer TTFT p50 %.2fx p99 %.2fx\n",
              small.ttft50 / normal.ttft50, small.ttft99 / normal.ttft99);
  Summary(absl::StrCat("staircase vs normal, ", name, ": answer TTFT p50"),
          absl::StrFormat("%.0f vs %.0f ms (%.2fx)", stair.ttft50, normal.ttft50,
                          stair.ttft50 / normal.ttft50));
  Summary(absl::StrCat("staircase vs normal, ", name, ": answer TTFT p99"),
          absl::StrFormat("%.0f vs %.0f ms (%.2fx)", stair.ttft99, normal.ttft99,
                          stair.ttft99 / normal.ttft99));
  Summary(absl::StrCat("staircase vs normal, ", name, ": end to end p50"),
          absl::StrFormat("%.0f vs %.0f ms (%.2fx)", stair.total50, normal.total50,
                          stair.total50 / normal.total50));
  Summary(absl::StrCat("staircase vs normal, ", name, ": prompt tokens per request"),
          absl::StrFormat("%.0f vs %.0f (%.2fx; %.1f steps)", stair.prompt, normal.prompt,
                          stair.prompt / normal.prompt, stair.steps));
}

void Run() {
  PrintMachine();
  // The simulator's default profile (deploy/local/sim-profiles.yaml).
  Compare("default",
          "default: {time_to_first_token: {median: 0.3, sigma: 0.3}, tokens_per_second: 60, "
          "answer_tokens: 60}\n");
  // Proposers heavy-tailed (p99 of the time to first token about 5 s); the
  // aggregator steady, as in resilience_bench.
  Compare("heavy-tailed",
          "default: {time_to_first_token: {median: 0.5, sigma: 1.0}, tokens_per_second: 60, "
          "answer_tokens: 60}\n"
          "models:\n  z: {time_to_first_token: 0.3, tokens_per_second: 60, answer_tokens: 60}\n");
  // Long answers (400 tokens, about 7 s): where the proposals' writing time,
  // not their first token, is what the answer waits for.
  Compare("long answers",
          "default: {time_to_first_token: {median: 0.3, sigma: 0.3}, tokens_per_second: 60, "
          "answer_tokens: 400}\n");
}

}  // namespace
}  // namespace moa::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  moa::bench::Run();
  return 0;
}
