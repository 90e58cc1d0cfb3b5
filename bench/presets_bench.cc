// Presets against the full pipeline on the same cluster of real processes:
// a two-layer panel of four proposers and an aggregator, with prices, whose
// proposers agree (all answer "Paris.") on a share of the questions and
// write their own words on the rest. Per preset: model calls, tokens and
// dollars per answer, the estimated saving, answer time to first token and
// end to end at p50/p99. A benchmark, not a test: it prints numbers and
// asserts nothing.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"

ABSL_FLAG(int, presets_requests, 48, "Requests per preset (the same questions for each).");
ABSL_FLAG(int, presets_concurrency, 8, "Concurrent requests.");
ABSL_FLAG(double, presets_agree_share, 0.6,
          "Share of the questions on which every proposer gives the same answer.");

namespace moa::bench {
namespace {

struct Outcome {
  bool ok = false;
  double ttft_ms = 0;
  double total_ms = 0;
  int calls = 0;  // Proposer calls started and final-answer steps.
  int64_t tokens = 0;
  double dollars = 0;
  double saved_dollars = 0;
  int skipped = 0;
  bool early_stop = false;
};

void StartCall(v1::OrchestratorService::Stub* stub, const std::string& preset, int i,
               std::function<void(Outcome)> done) {
  v1::ChatRequest request = testing::UserQuestion(absl::StrCat("Question ", i, "?"));
  request.set_pipeline("panel");
  request.set_preset(preset);
  struct State {
    absl::Time start = absl::Now();
    std::optional<absl::Time> first;
    Outcome outcome;
  };
  auto state = std::make_shared<State>();
  new ChatStream(
      stub, std::move(request),
      [state](const v1::ChatEvent& event) {
        Outcome& o = state->outcome;
        if (event.has_answer_delta() && !state->first) state->first = absl::Now();
        if (event.has_proposal_started()) ++o.calls;
        if (event.has_step_applied() && event.step_applied().kind() == "early_stop") {
          o.early_stop = true;
        }
        if (event.has_summary()) {
          const v1::Summary& s = event.summary();
          o.calls += s.answer_steps();
          for (const auto& u : s.usage()) {
            o.tokens += u.usage().prompt_tokens() + u.usage().completion_tokens();
          }
          o.dollars = s.cost_dollars();
          o.saved_dollars = s.saved_dollars();
          o.skipped = s.skipped_calls();
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

struct Stats {
  double calls, tokens, dollars, saved, early_stops, ttft50, ttft99, total50, total99;
  size_t failed;
};

Stats Measure(v1::OrchestratorService::Stub* stub, const std::string& preset) {
  const int n = absl::GetFlag(FLAGS_presets_requests);
  const int conc = absl::GetFlag(FLAGS_presets_concurrency);
  auto r = RunClosedLoop<Outcome>(
      conc, n, absl::InfiniteFuture(),
      [&](int i, std::function<void(Outcome)> done) {
        StartCall(stub, preset, i, std::move(done));
      },
      absl::Seconds(1));
  std::vector<double> ttft, total;
  Stats s{};
  for (const Outcome& o : r) {
    if (!o.ok) continue;
    ttft.push_back(o.ttft_ms);
    total.push_back(o.total_ms);
    s.calls += o.calls;
    s.tokens += static_cast<double>(o.tokens);
    s.dollars += o.dollars;
    s.saved += o.saved_dollars;
    s.early_stops += o.early_stop ? 1 : 0;
  }
  const double ok = std::max<size_t>(1, ttft.size());
  s.calls /= ok;
  s.tokens /= ok;
  s.dollars /= ok;
  s.saved /= ok;
  s.early_stops /= ok;
  s.ttft50 = Percentile(ttft, 0.5);
  s.ttft99 = Percentile(ttft, 0.99);
  s.total50 = Percentile(total, 0.5);
  s.total99 = Percentile(total, 0.99);
  s.failed = CountFailed(r);
  return s;
}

void Run() {
  PrintMachine();
  const double share = absl::GetFlag(FLAGS_presets_agree_share);
  testing::ClusterSpec spec;
  spec.models = {"a", "b", "c", "d", "z"};
  spec.pipelines_yaml =
      "pipelines:\n"
      "  panel: {layers: [[a, b, c, d], [a, b, c, d]], aggregator: z, max_tokens: 256}\n"
      "default_pipeline: panel\n"
      "presets:\n"
      "  quality: {policy: {min_proposals: all}, early_stop: off}\n"
      "  budget: {max_proposers: 2, early_stop: {}}\n"
      "  fast: {policy: {min_proposals: 2, straggler_grace_seconds: 0.5}, streaming: staircase}\n";
  spec.model_yaml = {{"a", "price: {input_per_million: 0.9, output_per_million: 0.9}"},
                     {"b", "price: {input_per_million: 0.9, output_per_million: 0.9}"},
                     {"c", "price: {input_per_million: 1.2, output_per_million: 1.2}"},
                     {"d", "price: {input_per_million: 1.2, output_per_million: 1.2}"},
                     {"z", "price: {input_per_million: 1.8, output_per_million: 1.8}"}};
  const std::string proposer = absl::StrCat(
      "{time_to_first_token: {median: 0.3, sigma: 0.3}, tokens_per_second: 60, answer_tokens: "
      "60, answer_text: 'Paris.', answer_text_share: ",
      share, "}");
  spec.sim_profiles_yaml = absl::StrCat(
      "default: {time_to_first_token: {median: 0.3, sigma: 0.3}, tokens_per_second: 60, "
      "answer_tokens: 60}\nmodels:\n  a: ",
      proposer, "\n  b: ", proposer, "\n  c: ", proposer, "\n  d: ", proposer, "\n");
  spec.proposer_flags = {"--max_inflight=100000"};
  spec.orchestrator_flags = {"--max_inflight=100000", "--hedge_budget=0"};
  testing::LocalCluster cluster(spec);
  if (!cluster.ok()) {
    std::fprintf(stderr, "%s\n", cluster.error().c_str());
    std::exit(1);
  }
  auto stub = v1::OrchestratorService::NewStub(
      grpc::CreateChannel(cluster.orchestrator_address(), grpc::InsecureChannelCredentials()));
  // Warm-up: connections and the hedging history.
  RunClosedLoop<Outcome>(8, 8, absl::InfiniteFuture(),
                         [&](int i, std::function<void(Outcome)> done) {
                           StartCall(stub.get(), "", 100000 + i, std::move(done));
                         });
  std::printf(
      "pipeline [[a, b, c, d], [a, b, c, d]] -> z; proposers agree on %.0f%% of the questions; "
      "%d requests per preset at %d concurrent:\n",
      share * 100, absl::GetFlag(FLAGS_presets_requests), absl::GetFlag(FLAGS_presets_concurrency));
  Stats full{};
  for (const char* preset : {"", "quality", "budget", "fast"}) {
    Stats s = Measure(stub.get(), preset);
    if (*preset == '\0') full = s;
    const std::string name = *preset == '\0' ? "(none: the pipeline as configured)" : preset;
    std::printf(
        "  %-36s %5.2f calls | %6.0f tokens | $%.6f (%.2fx) | saved est. $%.6f | early stops "
        "%3.0f%% | answer TTFT p50 %5.0f ms p99 %5.0f ms | end to end p50 %5.0f ms p99 %5.0f "
        "ms | %zu failed\n",
        name.c_str(), s.calls, s.tokens, s.dollars, s.dollars / std::max(full.dollars, 1e-12),
        s.saved, s.early_stops * 100, s.ttft50, s.ttft99, s.total50, s.total99, s.failed);
    Summary(absl::StrCat("preset ", *preset == '\0' ? "none" : preset,
                         ": calls, dollars, end to end p50 per answer"),
            absl::StrFormat("%.2f calls, $%.6f (%.2fx), %.0f ms", s.calls, s.dollars,
                            s.dollars / std::max(full.dollars, 1e-12), s.total50));
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
