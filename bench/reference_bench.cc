// Side by side in one run, on one simulator: the reference project's MoA flow
// (bench/reference_flow.py --mode reference: Python threads and blocking
// HTTP straight to the simulator, every proposer awaited, references in a
// system message, the aggregator streamed) and the cluster driven through its
// OpenAI door by the same script (--mode cluster). Same pipeline: two layers
// of four proposers, then the aggregator (9 model calls per question).
// Prints throughput at --latency_scale 0 and end-to-end / answer time to
// first token at the simulator's default profile, with the ratio
// cluster/reference. A benchmark: it prints numbers and asserts nothing.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "tests/support/local_cluster.h"
#include "tests/support/test_support.h"

ABSL_FLAG(std::string, python, "/usr/bin/python3", "Python 3 for bench/reference_flow.py.");
ABSL_FLAG(std::string, script, MOA_SOURCE_DIR "/bench/reference_flow.py", "The two clients.");
ABSL_FLAG(int, throughput_concurrency, 16, "Concurrent questions in the throughput phase.");
ABSL_FLAG(int, throughput_seconds, 10, "Length of each throughput run.");
ABSL_FLAG(int, latency_concurrency, 8, "Concurrent questions in the latency phase.");
ABSL_FLAG(int, latency_requests, 80, "Questions per client in the latency phase.");

namespace moa::bench {
namespace {

using nlohmann::json;

// The simulator's default profile of deploy/local/sim-profiles.yaml.
constexpr char kDefaultProfile[] =
    "default: {time_to_first_token: {median: 0.3, sigma: 0.3}, tokens_per_second: 60, "
    "answer_tokens: 60}\n";

std::unique_ptr<testing::LocalCluster> StartCluster(double scale) {
  testing::ClusterSpec spec;
  spec.models = {"a", "b", "c", "d", "z"};
  spec.pipelines_yaml =
      "pipelines:\n  moa3:\n    layers: [[a, b, c, d], [a, b, c, d]]\n    aggregator: z\n"
      "default_pipeline: moa3\n";
  spec.sim_profiles_yaml = kDefaultProfile;
  spec.sim_latency_scale = scale;
  spec.proposer_flags = {"--max_inflight=100000"};
  spec.orchestrator_flags = {"--max_inflight=100000", "--http_port=0"};
  auto cluster = std::make_unique<testing::LocalCluster>(spec);
  if (!cluster->ok()) {
    std::fprintf(stderr, "%s\n", cluster->error().c_str());
    std::exit(1);
  }
  return cluster;
}

json RunFlow(const std::string& mode, int port, int concurrency, const std::string& amount) {
  std::vector<std::string> argv = {absl::GetFlag(FLAGS_python),
                                   absl::GetFlag(FLAGS_script),
                                   "--mode=" + mode,
                                   absl::StrCat("--base_url=http://127.0.0.1:", port, "/v1"),
                                   "--model=moa3",
                                   "--rounds=2",
                                   absl::StrCat("--concurrency=", concurrency),
                                   amount};
  testing::Process p(argv);
  int code = p.Wait(absl::Minutes(10));
  std::string out = p.Output();
  size_t line = out.rfind("{\"mode\"");
  if (code != 0 || line == std::string::npos) {
    std::fprintf(stderr, "reference_flow.py --mode=%s failed (exit %d):\n%s\n", mode.c_str(), code,
                 out.c_str());
    std::exit(1);
  }
  return json::parse(out.substr(line, out.find('\n', line) - line));
}

void Row(const char* what, const json& ref, const json& cluster, const char* key,
         const char* unit) {
  double r = ref[key].get<double>(), c = cluster[key].get<double>();
  std::printf("  %-34s %10.1f %10.1f %8.2fx %s\n", what, r, c, r > 0 ? c / r : 0.0, unit);
  Summary(absl::StrCat("reference flow vs cluster: ", what),
          absl::StrFormat("%.1f vs %.1f %s (%.2fx)", r, c, unit, r > 0 ? c / r : 0.0));
}

void Run() {
  PrintMachine();
  std::printf(
      "pipeline: 2 layers of 4 proposers, then the aggregator (9 model calls per question)\n");
  std::printf("  %-34s %10s %10s %9s\n", "", "reference", "cluster", "ratio");
  {
    auto cluster = StartCluster(0);
    int conc = absl::GetFlag(FLAGS_throughput_concurrency);
    std::string seconds = absl::StrCat("--seconds=", absl::GetFlag(FLAGS_throughput_seconds));
    json ref = RunFlow("reference", cluster->sim_port(), conc, seconds);
    json clu = RunFlow("cluster", cluster->orchestrator_http_port(), conc, seconds);
    std::printf("throughput, latency_scale 0, %d concurrent (%d/%d failed):\n", conc,
                ref["failed"].get<int>(), clu["failed"].get<int>());
    Row("questions/s", ref, clu, "per_second", "");
  }
  {
    auto cluster = StartCluster(1);
    int conc = absl::GetFlag(FLAGS_latency_concurrency);
    std::string n = absl::StrCat("--requests=", absl::GetFlag(FLAGS_latency_requests));
    json ref = RunFlow("reference", cluster->sim_port(), conc, n);
    json clu = RunFlow("cluster", cluster->orchestrator_http_port(), conc, n);
    std::printf("latency, default profile, %d concurrent, %s questions each (%d/%d failed):\n",
                conc, n.substr(11).c_str(), ref["failed"].get<int>(), clu["failed"].get<int>());
    Row("end to end p50", ref, clu, "e2e_p50_ms", "ms");
    Row("end to end p99", ref, clu, "e2e_p99_ms", "ms");
    Row("answer time to first token p50", ref, clu, "ttft_p50_ms", "ms");
    Row("answer time to first token p99", ref, clu, "ttft_p99_ms", "ms");
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
