// Client limits shared by orchestrator replicas through a real Redis: three
// orchestrator processes on one cluster config with `store:` and one key
// with requests_per_minute: 60 admit exactly 60 requests between them; with
// the store killed, `store.failure: closed` answers a named 503; `moa spend`
// reports the key's spend across the three. Keys added, limited and revoked
// through one replica's admin API reach all three within a second, and stay
// so across a restart of the replicas.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "lib/base/sha256.h"
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

ClusterSpec SharedSpec(int redis_port, const std::string& keys, const std::string& failure) {
  ClusterSpec spec;
  spec.models = {"a", "b", "z"};
  spec.pipelines_yaml = "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\n";
  spec.sim_profiles_yaml =
      "default: {time_to_first_token: 0.001, tokens_per_second: 10000, answer_tokens: 4}\n";
  spec.model_yaml["z"] = "price: {input_per_million: 100, output_per_million: 1000}";
  spec.extra_config_yaml =
      absl::StrCat("store: {redis: '127.0.0.1:", redis_port, "', failure: ", failure, "}\n");
  spec.orchestrator_flags = {"--http_port=0", "--api_keys_file=" + keys};
  return spec;
}

// One more orchestrator on `cluster`'s config and keys; its HTTP port, or 0.
int StartReplica(const LocalCluster& cluster, const std::string& keys,
                 std::vector<std::unique_ptr<Process>>& replicas) {
  replicas.push_back(std::make_unique<Process>(
      std::vector<std::string>{BinaryPath("services/orchestrator/moa-orchestrator"),
                               "--host=127.0.0.1", "--port=0", "--metrics_port=0", "--http_port=0",
                               "--config=" + cluster.config_path(), "--api_keys_file=" + keys}));
  int port = WaitForLoggedPort(*replicas.back(), "HTTP on port");
  EXPECT_GT(port, 0) << replicas.back()->Output();
  return port;
}

// `moa keys ARGS --admin_url http://127.0.0.1:PORT`: exit code and output.
std::pair<int, std::string> KeysCli(int http_port, std::vector<std::string> args) {
  std::vector<std::string> argv = {BinaryPath("tools/moa/moa"), "keys"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(absl::StrCat("--admin_url=http://127.0.0.1:", http_port));
  Process p(argv);
  const int code = p.Wait(absl::Seconds(20));
  return {code, p.Output()};
}

TEST(SharedLimitsTest, ThreeOrchestratorsAdmitExactlyOneKeysLimitBetweenThem) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  const std::string keys = "/tmp/moa-shared-keys-" + std::to_string(getpid()) + ".yaml";
  std::remove(keys.c_str());
  const std::string secret = AddKeyWithCli(keys, "team-a", {"--requests_per_minute=60"});

  LocalCluster cluster(SharedSpec(redis.port(), keys, "closed"));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  // Two more replicas on the same config and keys.
  std::vector<int> ports = {cluster.orchestrator_http_port()};
  std::vector<std::unique_ptr<Process>> replicas;
  for (int r = 0; r < 2; ++r) ports.push_back(StartReplica(cluster, keys, replicas));
  ASSERT_GT(ports[2], 0);

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
        // 60 answers of z at $0.004 and more each; z is the only model
        // with a price, so it has a line of its own.
        return std::regex_search(out, m, std::regex("team-a +today \\$([0-9.]+)")) &&
               std::stod(m[1].str()) > 0.2 &&
               std::regex_search(out, std::regex("\n  z +today \\$0\\.[0-9]*[1-9]"));
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

// Redis killed in the middle of a load with store.failure: open: no request
// fails (each replica decides alone meanwhile); when Redis is back every
// replica decides in the store again, with no restart. Kill and return
// happen after counts of answered requests, not after times.
TEST(SharedLimitsTest, KillingTheStoreMidLoadFailsNoRequestUnderOpenAndSharingResumes) {
  auto redis = std::make_unique<RedisServer>();
  ASSERT_TRUE(redis->ready()) << redis->log();
  const std::string keys = "/tmp/moa-midload-keys-" + std::to_string(getpid()) + ".yaml";
  std::remove(keys.c_str());
  // Limits that never bind, so that every shared decision is made and
  // every request should pass.
  const std::string loaded =
      AddKeyWithCli(keys, "loaded",
                    {"--requests_per_minute=100000", "--concurrent_requests=64",
                     "--tokens_per_minute=100000000", "--budget_dollars_per_day=1000"});
  const std::string tight = AddKeyWithCli(keys, "tight", {"--requests_per_minute=3"});
  LocalCluster cluster(SharedSpec(redis->port(), keys, "open"));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  std::vector<int> ports = {cluster.orchestrator_http_port()};
  std::vector<std::unique_ptr<Process>> replicas;
  for (int r = 0; r < 2; ++r) ports.push_back(StartReplica(cluster, keys, replicas));
  ASSERT_GT(ports[2], 0);

  constexpr int kThreads = 4, kPerThread = 45;
  std::atomic<int> answered{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> load;
  for (int t = 0; t < kThreads; ++t) {
    load.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        HttpResult r = Ask(ports[(t + i) % 3], loaded);
        if (r.status != 200) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(absl::StrCat(r.status, " ", r.body));
        }
        ++answered;
      }
    });
  }
  EXPECT_TRUE(WaitFor([&] { return answered >= 30; }, absl::Seconds(120)));
  redis->Kill();
  EXPECT_TRUE(WaitFor([&] { return answered >= 100; }, absl::Seconds(120)));
  redis->Start();
  ASSERT_TRUE(redis->ready()) << redis->log();
  for (std::thread& t : load) t.join();
  EXPECT_EQ(answered, kThreads * kPerThread);
  EXPECT_THAT(failures, ::testing::IsEmpty());

  // Every replica noticed the outage and the return (one line each way).
  std::vector<Process*> processes = {&cluster.orchestrator_process()};
  for (auto& p : replicas) processes.push_back(p.get());
  for (int r = 0; r < 3; ++r) {
    EXPECT_THAT(processes[r]->Output(), HasSubstr("store.failure: open, each replica decides"));
    EXPECT_TRUE(WaitFor(
        [&] {
          EXPECT_EQ(Ask(ports[r], loaded).status, 200);
          return processes[r]->Output().find("the shared limit store answers again") !=
                 std::string::npos;
        },
        absl::Seconds(20)))
        << processes[r]->Output();
  }
  // Shared again: three requests a minute between the three replicas.
  int ok = 0;
  std::string refusal;
  for (int i = 0; i < 6; ++i) {
    HttpResult r = Ask(ports[i % 3], tight);
    if (r.status == 200) ++ok;
    if (r.status == 429) refusal = r.body;
  }
  EXPECT_EQ(ok, 3);
  EXPECT_THAT(refusal, HasSubstr("across the cluster"));
  std::remove(keys.c_str());
}

constexpr char kAdminKey[] = "admin-0123456789abcdef";
// Replicas read the directory every 250 ms, so a change reaches all three
// well within a second (the times are printed); the test allows 5 s so a
// busy machine cannot fail it. KeyDirectoryTest checks that one refresh is
// enough, without timing.
constexpr absl::Duration kPropagationBound = absl::Seconds(5);

// How long until every port answers `secret` with `status` (polled every
// 20 ms); a failure when that takes over `bound`.
absl::Duration UntilAll(const std::vector<int>& ports, const std::string& secret, int status,
                        absl::Duration bound) {
  const absl::Time start = absl::Now();
  for (int port : ports) {
    HttpResult last;
    const bool reached = WaitFor(
        [&] {
          last = Ask(port, secret);
          return last.status == status;
        },
        bound);
    EXPECT_TRUE(reached) << "port " << port << " never answered " << status << ": " << last.status
                         << " " << last.body;
  }
  return absl::Now() - start;
}

TEST(SharedLimitsTest, KeysChangedThroughTheAdminApiReachEveryReplicaWithinASecond) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  const std::string keys = "/tmp/moa-admin-keys-" + std::to_string(getpid()) + ".yaml";
  std::remove(keys.c_str());
  const std::string seeded = AddKeyWithCli(keys, "seeded", {});
  setenv("MOA_ADMIN_KEY", kAdminKey, 1);  // The orchestrators and the CLI inherit it.
  LocalCluster cluster(SharedSpec(redis.port(), keys, "open"));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  std::vector<int> ports = {cluster.orchestrator_http_port()};
  std::vector<std::unique_ptr<Process>> replicas;
  for (int r = 0; r < 2; ++r) ports.push_back(StartReplica(cluster, keys, replicas));
  ASSERT_GT(ports[2], 0);
  for (int port : ports) EXPECT_EQ(Ask(port, seeded).status, 200) << port;

  // Only the admin key opens the admin API.
  const std::string list_url = absl::StrCat("http://127.0.0.1:", ports[0], "/admin/v1/keys");
  EXPECT_EQ(HttpRequest("GET", list_url, "", {}).status, 401);
  EXPECT_EQ(HttpRequest("GET", list_url, "", {"Authorization: Bearer " + seeded}).status, 401);
  EXPECT_EQ(
      HttpRequest("GET", list_url, "", {absl::StrCat("Authorization: Bearer ", kAdminKey)}).status,
      200);
  // A query the admin API does not take is refused, not ignored.
  EXPECT_EQ(HttpRequest("GET", list_url + "?limit=5", "",
                        {absl::StrCat("Authorization: Bearer ", kAdminKey)})
                .status,
            400);
  // ... and the admin key is no client key.
  EXPECT_EQ(Ask(ports[0], kAdminKey).status, 401);

  // Added through replica 0: every replica takes it within a second.
  auto [code, out] = KeysCli(ports[0], {"add", "team-b", "--requests_per_minute=1000"});
  ASSERT_EQ(code, 0) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("sk-moa-[0-9a-f]{48}"))) << out;
  const std::string team_b = m[0].str();
  const absl::Duration added = UntilAll(ports, team_b, 200, kPropagationBound);
  std::printf("a key added through one replica was accepted by all three after %s\n",
              absl::FormatDuration(added).c_str());
  std::tie(code, out) = KeysCli(ports[1], {"list"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("seeded"));
  EXPECT_THAT(out, HasSubstr("requests_per_minute"));
  EXPECT_EQ(out.find("sk-moa-"), std::string::npos) << "no secret in a listing: " << out;
  EXPECT_EQ(out.find(Sha256Hex(team_b)), std::string::npos) << "no hash in a listing: " << out;

  // Limited through replica 1: pipeline `moa` closed to it on all three.
  std::tie(code, out) = KeysCli(ports[1], {"limit", "team-b", "--allowed_pipelines=other"});
  ASSERT_EQ(code, 0) << out;
  UntilAll(ports, team_b, 403, kPropagationBound);
  std::tie(code, out) = KeysCli(ports[1], {"limit", "team-b", "--allowed_pipelines="});
  ASSERT_EQ(code, 0) << out;
  UntilAll(ports, team_b, 200, kPropagationBound);

  // A daily budget $0.02 over what it spent so far (read through the admin
  // API), set through replica 1; each answer of z costs over $0.004. Replica
  // 1 spends it; all three then refuse.
  HttpResult view =
      HttpRequest("GET", absl::StrCat("http://127.0.0.1:", ports[1], "/admin/v1/keys/team-b"), "",
                  {absl::StrCat("Authorization: Bearer ", kAdminKey)});
  ASSERT_EQ(view.status, 200) << view.body;
  std::smatch spent;
  ASSERT_TRUE(std::regex_search(view.body, spent, std::regex("\"today_dollars\":([0-9.e-]+)")))
      << view.body;
  EXPECT_THAT(view.body, HasSubstr("\"today_by_model\":{\"z\":")) << view.body;
  {
    Process report({BinaryPath("tools/moa/moa"), "spend",
                    absl::StrCat("--admin_url=http://127.0.0.1:", ports[2])});
    EXPECT_EQ(report.Wait(absl::Seconds(20)), 0) << report.Output();
    EXPECT_TRUE(std::regex_search(report.Output(), std::regex("team-b +today \\$0\\.[0-9]*[1-9]")))
        << report.Output();
    EXPECT_TRUE(std::regex_search(report.Output(), std::regex("\n  z +today \\$0\\.[0-9]*[1-9]")))
        << report.Output();
    EXPECT_THAT(report.Output(), HasSubstr("seeded"));
  }
  const double budget = std::stod(spent[1].str()) + 0.02;
  std::tie(code, out) =
      KeysCli(ports[1], {"limit", "team-b", absl::StrCat("--budget_dollars_per_day=", budget)});
  ASSERT_EQ(code, 0) << out;
  int answered = 0;
  for (int i = 0; i < 30 && Ask(ports[1], team_b).status == 200; ++i) ++answered;
  EXPECT_GT(answered, 1);
  EXPECT_LT(answered, 10);
  UntilAll(ports, team_b, 429, kPropagationBound);

  // Revoked through replica 2: refused by all three within a second.
  std::tie(code, out) = KeysCli(ports[2], {"revoke", "seeded"});
  ASSERT_EQ(code, 0) << out;
  const absl::Duration revoked = UntilAll(ports, seeded, 401, kPropagationBound);
  std::printf("a key revoked through one replica was refused by all three after %s\n",
              absl::FormatDuration(revoked).c_str());
  std::tie(code, out) = KeysCli(ports[0], {"add", "seeded"});
  EXPECT_NE(code, 0) << "a revoked key's name stays taken: " << out;
  EXPECT_THAT(out, HasSubstr("exists"));

  // The replicas restarted (seeding from the same file): the revoked key
  // stays revoked, and team-b's budget stays spent.
  replicas.clear();
  for (int r = 0; r < 2; ++r) ports[r + 1] = StartReplica(cluster, keys, replicas);
  for (int port : {ports[1], ports[2]}) {
    EXPECT_EQ(Ask(port, seeded).status, 401) << port;
    EXPECT_EQ(Ask(port, team_b).status, 429) << port;
  }
  unsetenv("MOA_ADMIN_KEY");
  std::remove(keys.c_str());
}

// Without a store there is no admin API: /admin/ says so, and an admin key
// without a store stops the orchestrator at start.
TEST(SharedLimitsTest, WithoutAStoreTheAdminApiIsOff) {
  LocalCluster cluster(SmallClusterSpec({"--http_port=0"}));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  HttpResult r = HttpRequest(
      "GET", absl::StrCat("http://127.0.0.1:", cluster.orchestrator_http_port(), "/admin/v1/keys"),
      "", {absl::StrCat("Authorization: Bearer ", kAdminKey)});
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("the admin API is off"));
  Process orchestrator({BinaryPath("services/orchestrator/moa-orchestrator"), "--port=0",
                        "--metrics_port=0", "--http_port=0", "--config=" + cluster.config_path()},
                       {absl::StrCat("MOA_ADMIN_KEY=", kAdminKey)});
  EXPECT_EQ(orchestrator.Wait(absl::Seconds(20)), 2);
  EXPECT_THAT(orchestrator.Output(), HasSubstr("MOA_ADMIN_KEY needs a store"));
}

}  // namespace
}  // namespace moa::testing
