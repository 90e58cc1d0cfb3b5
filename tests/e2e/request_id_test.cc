// Request ids and trace context through real processes: accepted or made
// up at both doors, returned to the client, carried to every upstream
// request (the simulator's request log) and named in the services' log
// lines about the request (JSON lines here).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr char kTraceId[] = "0af7651916cd43dd8448eb211c80319c";

ClusterSpec Spec() {
  ClusterSpec spec;
  spec.models = {"a", "b", "z"};
  spec.pipelines_yaml = "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\n";
  // b always fails, so its proposer writes a warning about the request.
  spec.sim_profiles_yaml =
      "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 10}\n"
      "models:\n  b: {faults: {http_500: 1}}\n";
  spec.orchestrator_flags = {"--http_port=0", "--hedge_budget=0", "--log_format=json"};
  spec.proposer_flags = {"--max_attempts=1", "--log_format=json"};
  return spec;
}

// The JSON log lines of a process that name `request_id`.
std::vector<nlohmann::json> LinesAbout(Process& process, const std::string& request_id) {
  std::vector<nlohmann::json> out;
  std::istringstream in(process.Output());
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.is_object() && j.value("request_id", "") == request_id) {
      out.push_back(j);
    }
  }
  return out;
}

TEST(RequestIdTest, AClientsIdAndTraceReachEveryUpstreamCallAndEveryLogLine) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  const std::string id = "req-abc.123";
  HttpResult r = HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster.orchestrator_http_port(), "/v1/chat/completions"),
      R"({"model": "moa", "messages": [{"role": "user", "content": "Trace me"}],
          "user": "end-user-7"})",
      {"Content-Type: application/json", "X-Request-Id: " + id,
       absl::StrCat("traceparent: 00-", kTraceId, "-b7ad6b7169203331-01")});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.headers, HasSubstr("x-request-id: " + id)) << r.headers;
  std::map<std::string, int> seen;
  for (const auto& q : cluster.SimRequests()) {
    EXPECT_EQ(q["request_id"], id) << q.dump();
    const std::string parent = q["traceparent"];
    EXPECT_THAT(parent, MatchesRegex(absl::StrCat("00-", kTraceId, "-[0-9a-f]{16}-01")));
    EXPECT_THAT(parent, ::testing::Not(HasSubstr("b7ad6b7169203331"))) << "a span of its own";
    ++seen[q["model"]];
  }
  EXPECT_EQ(seen["a"], 1);
  EXPECT_EQ(seen["b"], 1);
  EXPECT_EQ(seen["z"], 1);
  // The orchestrator's line for the request, and b's proposer's warning.
  EXPECT_TRUE(WaitFor([&] { return !LinesAbout(cluster.orchestrator_process(), id).empty(); },
                      absl::Seconds(5)))
      << cluster.orchestrator_process().Output();
  nlohmann::json line = LinesAbout(cluster.orchestrator_process(), id)[0];
  EXPECT_EQ(line["message"], "request answered");
  EXPECT_EQ(line["trace_id"], kTraceId);
  EXPECT_EQ(line["outcome"], "ok");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["end_user"], "end-user-7") << "the client's `user`, where an operator looks";
  EXPECT_TRUE(WaitFor([&] { return !LinesAbout(cluster.proposer_process("b"), id).empty(); },
                      absl::Seconds(5)))
      << cluster.proposer_process("b").Output();
  EXPECT_THAT(LinesAbout(cluster.proposer_process("b"), id)[0]["message"].get<std::string>(),
              HasSubstr("request failed"));
}

TEST(RequestIdTest, AGrpcRequestWithoutIdsGetsOneBackAndItReachesTheUpstream) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  auto reader = cluster.stub().Chat(&context, UserQuestion("No id"));
  v1::ChatEvent event;
  while (reader->Read(&event)) {
  }
  ASSERT_TRUE(reader->Finish().ok());
  auto it = context.GetServerInitialMetadata().find("x-request-id");
  ASSERT_NE(it, context.GetServerInitialMetadata().end());
  const std::string id(it->second.data(), it->second.size());
  EXPECT_THAT(id, MatchesRegex("[0-9a-f]{32}"));
  std::string trace;
  for (const auto& q : cluster.SimRequests()) {
    EXPECT_EQ(q["request_id"], id);
    const std::string parent = q["traceparent"];
    ASSERT_EQ(parent.size(), 55u) << parent;
    if (trace.empty()) trace = parent.substr(3, 32);
    EXPECT_EQ(parent.substr(3, 32), trace) << "one trace for the whole request";
  }
}

TEST(RequestIdTest, AnIdWithOddBytesIsReplacedNeverEchoed) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  HttpResult r = HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster.orchestrator_http_port(), "/v1/chat/completions"),
      R"({"model": "moa", "messages": [{"role": "user", "content": "Odd"}]})",
      {"Content-Type: application/json", "X-Request-Id: has space;and=stuff",
       "traceparent: 00-00000000000000000000000000000000-b7ad6b7169203331-01"});
  ASSERT_EQ(r.status, 200) << r.body;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.headers, m, std::regex("x-request-id: ([0-9a-f]{32})")))
      << r.headers;
  for (const auto& q : cluster.SimRequests()) {
    EXPECT_EQ(q["request_id"], m[1].str());
    EXPECT_THAT(q["traceparent"].get<std::string>(),
                ::testing::Not(HasSubstr("00000000000000000000000000000000")))
        << "an all-zero trace id is invalid: a new trace";
  }
}

}  // namespace
}  // namespace moa::testing
