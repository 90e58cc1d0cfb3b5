// Client limits shared by orchestrator replicas through a real Redis: three
// orchestrator processes on one cluster config with `store:` and one key
// with requests_per_minute: 60 admit exactly 60 requests between them; with
// the store killed, `store.failure: closed` answers a named 503; `moa spend`
// reports the key's spend across the three.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>

#include "absl/strings/str_cat.h"
#include "tests/support/local_cluster.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

using ::testing::HasSubstr;

HttpResult Ask(int http_port, const std::string& secret) {
  return HttpRequest(
      "POST", absl::StrCat("http://127.0.0.1:", http_port, "/v1/chat/completions"),
      R"({"model": "moa", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})",
      {"Content-Type: application/json", "Authorization: Bearer " + secret});
}

TEST(SharedLimitsTest, ThreeOrchestratorsAdmitExactlyOneKeysLimitBetweenThem) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  const std::string keys = "/tmp/moa-shared-keys-" + std::to_string(getpid()) + ".yaml";
  std::remove(keys.c_str());
  const std::string secret = AddKeyWithCli(keys, "team-a", {"--requests_per_minute=60"});

  ClusterSpec spec;
  spec.models = {"a", "b", "z"};
  spec.pipelines_yaml = "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\n";
  spec.sim_profiles_yaml =
      "default: {time_to_first_token: 0.001, tokens_per_second: 10000, answer_tokens: 4}\n";
  spec.model_yaml["z"] = "price: {input_per_million: 100, output_per_million: 1000}";
  spec.extra_config_yaml =
      absl::StrCat("store: {redis: '127.0.0.1:", redis.port(), "', failure: closed}\n");
  spec.orchestrator_flags = {"--http_port=0", "--api_keys_file=" + keys};
  LocalCluster cluster(spec);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  // Two more replicas on the same config and keys.
  std::vector<int> ports = {cluster.orchestrator_http_port()};
  std::vector<std::unique_ptr<Process>> replicas;
  for (int r = 0; r < 2; ++r) {
    replicas.push_back(std::make_unique<Process>(std::vector<std::string>{
        BinaryPath("services/orchestrator/moa-orchestrator"), "--host=127.0.0.1", "--port=0",
        "--metrics_port=0", "--http_port=0", "--config=" + cluster.config_path(),
        "--api_keys_file=" + keys}));
    int port = WaitForLoggedPort(*replicas.back(), "HTTP on port");
    ASSERT_GT(port, 0) << replicas.back()->Output();
    ports.push_back(port);
  }

  // 100 requests in turn; the window is a minute and they take seconds (the
  // simulator answers at once), so exactly 60 pass between the three.
  int ok = 0, limited = 0;
  std::string refusal;
  for (int i = 0; i < 100; ++i) {
    HttpResult r = Ask(ports[i % 3], secret);
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++limited;
      refusal = r.body;
    }
  }
  EXPECT_EQ(ok, 60);
  EXPECT_EQ(limited, 40);
  EXPECT_THAT(refusal, HasSubstr("across the cluster"));

  // What the key spent, across the three, read from the store by the CLI.
  EXPECT_TRUE(WaitFor(
      [&] {
        Process spend({BinaryPath("tools/moa/moa"), "spend", "--config=" + cluster.config_path(),
                       "--keys_file=" + keys});
        spend.Wait(absl::Seconds(10));
        std::smatch m;
        const std::string out = spend.Output();
        return std::regex_search(out, m, std::regex("team-a +today \\$([0-9.]+)")) &&
               std::stod(m[1].str()) > 0.2;  // 60 answers of z at $0.004 and more each.
      },
      absl::Seconds(10)));

  // The store gone, closed: a named 503 from every replica.
  redis.Kill();
  for (int port : ports) {
    HttpResult r = Ask(port, secret);
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_THAT(r.body, HasSubstr("store.failure: closed"));
  }
  std::remove(keys.c_str());
}

}  // namespace
}  // namespace moa::testing
