// Instructions per MoA request, per service, counted by callgrind. Unlike CPU
// time, an instruction count is the same from run to run on this busy
// two-core machine, so it shows what a change to the data path costs or
// saves. Each service runs under valgrind --tool=callgrind in a cluster of
// its own (the others natively); after a warm-up the counters are zeroed,
// --requests MoA requests run one after another, and the count is dumped.
// Pipeline: two layers of four proposers, then the aggregator (9 model
// calls), simulator at --latency_scale 0 with 50-token answers.
// A benchmark: it prints numbers and asserts nothing.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "moa/v1/orchestrator.grpc.pb.h"
#include "tests/support/local_cluster.h"

ABSL_FLAG(int, requests, 20, "MoA requests counted per service.");
ABSL_FLAG(bool, keep_dumps, false,
          "Keep each service's callgrind files (their folder is printed) for callgrind_annotate.");
ABSL_FLAG(std::string, services, "orchestrator,aggregator,proposer-a,proposer-z",
          "Services to count, each in a run of its own.");

namespace moa::bench {
namespace {

bool Ask(v1::OrchestratorService::Stub& stub, int i) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::ChatRequest req;
  auto* m = req.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content(absl::StrCat("Counted question ", i));
  auto reader = stub.Chat(&ctx, req);
  v1::ChatEvent event;
  while (reader->Read(&event)) {
  }
  return reader->Finish().ok();
}

// The instruction count (Ir) of the newest callgrind dump in `dir`.
long long LastDumpInstructions(const std::string& dir) {
  std::filesystem::path newest;
  std::filesystem::file_time_type newest_time;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (newest.empty() || entry.last_write_time() > newest_time) {
      newest = entry.path();
      newest_time = entry.last_write_time();
    }
  }
  std::ifstream in(newest);
  for (std::string line; std::getline(in, line);) {
    for (const char* key : {"summary: ", "totals: "}) {
      if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + std::strlen(key));
    }
  }
  return -1;
}

int Run() {
  PrintMachine();
  const int n = absl::GetFlag(FLAGS_requests);
  std::printf(
      "instructions per MoA request (callgrind Ir, %d requests one at a time, "
      "2 layers of 4 proposers + aggregator):\n",
      n);
  for (absl::string_view service : absl::StrSplit(absl::GetFlag(FLAGS_services), ',')) {
    const std::string name(service);
    const std::string dir = std::filesystem::temp_directory_path() /
                            absl::StrCat("moa-callgrind-", getpid(), "-", name);
    std::filesystem::create_directories(dir);
    testing::ClusterSpec spec;
    spec.models = {"a", "b", "c", "d", "z"};
    spec.pipelines_yaml =
        "pipelines:\n  moa3:\n    layers: [[a, b, c, d], [a, b, c, d]]\n    aggregator: z\n"
        "default_pipeline: moa3\n";
    spec.sim_profiles_yaml =
        "default: {time_to_first_token: 0.1, tokens_per_second: 100, answer_tokens: 50}\n";
    spec.sim_latency_scale = 0;
    spec.orchestrator_flags = {"--http_port=-1"};
    // Uncompressed names: a dump taken after --zero otherwise refers to
    // names defined before it, and callgrind_annotate charges all to clone.
    spec.wrap[name] = {"/usr/bin/valgrind", "--tool=callgrind",
                       "--quiet",           "--compress-strings=no",
                       "--compress-pos=no", "--callgrind-out-file=" + dir + "/callgrind.out"};
    testing::LocalCluster cluster(spec);
    if (!cluster.ok()) {
      std::fprintf(stderr, "%s\n", cluster.error().c_str());
      return 1;
    }
    pid_t pid = 0;
    for (const auto& [process, p] : cluster.Pids()) {
      if (process == name) pid = p;
    }
    auto stub = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(cluster.orchestrator_address(), grpc::InsecureChannelCredentials()));
    for (int i = 0; i < 3; ++i) Ask(*stub, i);  // Warm-up: connections, caches.
    std::system(absl::StrCat("callgrind_control --zero ", pid, " >/dev/null 2>&1").c_str());
    int failed = 0;
    for (int i = 0; i < n; ++i) failed += !Ask(*stub, 100 + i);
    std::system(absl::StrCat("callgrind_control --dump=counted ", pid, " >/dev/null 2>&1").c_str());
    long long ir = LastDumpInstructions(dir);
    std::printf("  %-14s %12.0f instructions per request (%d failed)\n", name.c_str(),
                ir > 0 ? static_cast<double>(ir) / n : -1.0, failed);
    Summary(absl::StrCat("instructions per MoA request: ", name),
            absl::StrFormat("%.2f M", ir > 0 ? static_cast<double>(ir) / n / 1e6 : -1.0));
    if (absl::GetFlag(FLAGS_keep_dumps)) {
      std::printf("  %-14s callgrind files in %s\n", "", dir.c_str());
    } else {
      std::filesystem::remove_all(dir);
    }
  }
  return 0;
}

}  // namespace
}  // namespace moa::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return moa::bench::Run();
}
