// How a cluster holds up when its models do not: a heavy-tailed upstream
// (the layer policy against the paper's wait-for-all) and a fault soak.
// Prints numbers; never a test. See docs/benchmarks.md, "Performance".
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "bench/bench_util.h"
#include "moa/v1/orchestrator.grpc.pb.h"
#include "tests/support/local_cluster.h"
#include "tests/support/raw_client.h"
#include "tests/support/requests.h"

ABSL_FLAG(int, tail_requests, 500, "Requests per policy in the heavy-tail phase.");
ABSL_FLAG(int, tail_concurrency, 100, "Concurrent requests in the heavy-tail phase.");
ABSL_FLAG(int, soak_requests, 2000, "Requests in the fault soak.");
ABSL_FLAG(int, soak_concurrency, 20, "Concurrent requests in the fault soak.");
ABSL_FLAG(absl::Duration, soak_deadline, absl::Seconds(30), "Deadline of each soak request.");
ABSL_FLAG(std::string, soak_pipeline, "plain",
          "Pipeline of the fault soak: plain (the default policy, no fallbacks), fast (3 of 4 "
          "then 0.5x median), all, moa (aggregator fallbacks [a, b]).");
ABSL_FLAG(std::string, soak_door, "openai",
          "Door of the fault soak: openai (POST /v1/chat/completions, the deadline as the "
          "orchestrator's --request_timeout) or grpc (Chat, the deadline as the call's).");
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
                                             std::vector<std::string> orchestrator_flags = {}) {
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
  spec.proposer_flags = {};  // The proposers' defaults.
  spec.orchestrator_flags = {"--max_inflight=100000", "--http_port=0"};
  for (std::string& f : orchestrator_flags) spec.orchestrator_flags.push_back(std::move(f));
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
      "models:\n  z: {time_to_first_token: 0.2, tokens_per_second: 200, answer_tokens: 40}\n");
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

// One request through the OpenAI door on a connection of its own (blocking;
// the soak runs one thread per concurrent client).
Outcome AskOverHttp(int port, const std::string& pipeline, int i, absl::Duration deadline) {
  const std::string body = absl::StrCat(R"({"model":")", pipeline,
                                        R"(","messages":[{"role":"user","content":"Resilience )",
                                        R"(question )", i, R"("}]})");
  const absl::Time start = absl::Now();
  testing::RawClient client(port);
  Outcome o;
  if (!client.connected() ||
      !client.Send(absl::StrCat("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                "Content-Type: application/json\r\nConnection: close\r\n"
                                "Content-Length: ",
                                body.size(), "\r\n\r\n", body))) {
    o.error = "could not connect";
    return o;
  }
  // Past the deadline by a minute: the soak reports it rather than hanging.
  const std::string response = client.ReadAll(deadline + absl::Minutes(1));
  o.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  o.past_deadline = absl::Now() > start + deadline + absl::Seconds(1);
  const size_t head_end = response.find("\r\n\r\n");
  const std::string status_line = response.substr(0, response.find("\r\n"));
  const nlohmann::json json = nlohmann::json::parse(
      head_end == std::string::npos ? "" : response.substr(head_end + 4), nullptr, false);
  o.ok =
      absl::StartsWith(status_line, "HTTP/1.1 200") && json.is_object() && json.contains("choices");
  if (!o.ok) {
    o.error = absl::StrCat(status_line, " ",
                           json.is_object() && json.contains("error") ? json["error"].dump() : "");
  }
  return o;
}

std::vector<Outcome> RunOverHttp(int port, const std::string& pipeline, int concurrency, int count,
                                 absl::Duration deadline) {
  std::vector<Outcome> results(static_cast<size_t>(count));
  std::atomic<int> next{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        results[static_cast<size_t>(i)] = AskOverHttp(port, pipeline, i, deadline);
      }
    });
  }
  for (std::thread& t : clients) t.join();
  return results;
}

void FaultSoak() {
  const int n = absl::GetFlag(FLAGS_soak_requests);
  if (n <= 0) return;
  const int conc = absl::GetFlag(FLAGS_soak_concurrency);
  const absl::Duration deadline = absl::GetFlag(FLAGS_soak_deadline);
  const std::string door = absl::GetFlag(FLAGS_soak_door);
  const std::string pipeline = absl::GetFlag(FLAGS_soak_pipeline);
  const char* faults =
      "faults: {http_500: 0.05, http_429: 0.05, retry_after_seconds: 1, hang: 0.01, "
      "reset: 0.02, malformed: 0.03}";
  // Every service with its defaults but the deadline (on the OpenAI door the
  // orchestrator's --request_timeout is the request's deadline).
  std::vector<std::string> flags;
  if (door == "openai")
    flags.push_back(absl::StrCat("--request_timeout=", absl::FormatDuration(deadline)));
  auto cluster = Start(absl::StrCat("default: {time_to_first_token: 0.2, tokens_per_second: 200, "
                                    "answer_tokens: 40, ",
                                    faults, "}\n"),
                       flags);
  std::printf(
      "fault soak: every model 5%% 500, 5%% 429 (Retry-After 1 s), 1%% hang, 2%% reset, "
      "3%% malformed; %d requests at %d concurrent, deadline %s, pipeline %s, %s door\n",
      n, conc, absl::FormatDuration(deadline).c_str(), pipeline.c_str(), door.c_str());
  const absl::Time start = absl::Now();
  std::vector<Outcome> r;
  if (door == "openai") {
    r = RunOverHttp(cluster->orchestrator_http_port(), pipeline, conc, n, deadline);
  } else {
    auto stub = Stub(cluster->orchestrator_address());
    r = Run(stub.get(), pipeline, conc, n, deadline);
  }
  const double took = absl::ToDoubleSeconds(absl::Now() - start);
  size_t answered = 0, past_deadline = 0;
  std::map<std::string, int> causes;
  std::map<std::string, std::string> example;
  std::vector<double> secs;
  for (const Outcome& o : r) {
    answered += o.ok;
    past_deadline += o.past_deadline;
    if (o.ok) secs.push_back(o.seconds);
    if (!o.ok) {
      ++causes[Shape(o.error)];
      example.emplace(Shape(o.error), o.error);
    }
  }
  const int64_t upstream_calls = cluster->SimStats()["requests"].get<int64_t>();
  std::printf(
      "  answered %zu of %zu (%.2f%%) in %.0f s; past the deadline + 1 s %zu; p50 %.2f s, "
      "p99 %.2f s\n",
      answered, r.size(), 100.0 * answered / r.size(), took, past_deadline, Percentile(secs, 0.5),
      Percentile(secs, 0.99));
  Summary(
      "fault soak: answered",
      absl::StrFormat("%.2f%% (p99 %.2f s)", 100.0 * answered / r.size(), Percentile(secs, 0.99)));
  std::printf("  upstream calls %lld: %.2f per answered request (5 without faults)\n",
              static_cast<long long>(upstream_calls),
              answered ? static_cast<double>(upstream_calls) / answered : 0.0);
  for (const auto& [cause, count] : causes) {
    std::printf("  failed %d, e.g. %s\n", count, example[cause].c_str());
  }
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
