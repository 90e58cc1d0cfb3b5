// The dashboard and the alert rules proven on a real Prometheus: the local
// cluster (deploy/local/cluster.sh up, the demo pipeline on the simulator,
// with a shared store on a real redis-server and a named client key with a
// budget) runs under a short bounded load while Prometheus scrapes it with
// deploy/prometheus/prometheus-local.yml; then every PromQL expression of
// the dashboard and of the alert rules must return data for the demo
// pipeline's models, and promtool must accept every service's /metrics.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_support.h"

namespace moa {
namespace {

using ::moa::testing::BinaryPath;
using ::moa::testing::HttpGet;
using ::moa::testing::Process;
using ::moa::testing::UrlEscape;
using ::moa::testing::WaitFor;
using json = nlohmann::json;

const std::string kSource = MOA_SOURCE_DIR;
const char* kModels[] = {"qwen-2-72b", "qwen-1.5-72b", "mixtral-8x22b", "wizardlm-2-8x22b",
                         "qwen-1.5-110b"};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class PrometheusLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("moa-prom-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    // The demo config with a shared store, and one named key: a budget and
    // every limit that the store decides, none of them reached; only the
    // demo pipeline and its `auto` route allowed (RunLoad asks for another once, to be refused).
    ASSERT_TRUE(redis_.ready()) << redis_.log();
    const std::string cluster_config = (dir_ / "cluster.yaml").string();
    std::ofstream(cluster_config) << ReadFile(kSource + "/deploy/local/cluster.yaml")
                                  << absl::StrCat("\nstore: {redis: '127.0.0.1:", redis_.port(),
                                                  "'}\n");
    const std::string keys = (dir_ / "keys.yaml").string();
    secret_ =
        moa::testing::AddKeyWithCli(keys, "load",
                                    {"--budget_dollars_per_day=1000", "--requests_per_minute=10000",
                                     "--concurrent_requests=100", "--tokens_per_minute=100000000",
                                     "--allowed_pipelines=moa,auto"});
    ASSERT_FALSE(secret_.empty());
    // MOA_PARENT_PID: the cluster goes when this test does, even if killed.
    env_ = {"BUILD_DIR=" + std::string(MOA_BIN_DIR), "MOA_RUN_DIR=" + (dir_ / "run").string(),
            "MOA_PARENT_PID=" + std::to_string(getpid()), "ORCH_FLAGS=--api_keys_file=" + keys};
    // Set first: a failed `up` may have started part of the cluster.
    cluster_up_ = true;
    Process up({"/bin/bash", kSource + "/deploy/local/cluster.sh", "up", cluster_config}, env_);
    ASSERT_EQ(up.Wait(absl::Seconds(60)), 0) << up.Output();

    // The shipped local scrape config, scraping every second for the test.
    std::string config = ReadFile(kSource + "/deploy/prometheus/prometheus-local.yml");
    config = absl::StrReplaceAll(
        config, {{"scrape_interval: 5s", "scrape_interval: 1s"},
                 {"evaluation_interval: 5s", "evaluation_interval: 1s"},
                 {"  - alerts.yml", "  - " + kSource + "/deploy/prometheus/alerts.yml"}});
    std::ofstream(dir_ / "prometheus.yml") << config;
    prom_port_ = moa::testing::PickFreePort();
    prometheus_ = std::make_unique<Process>(std::vector<std::string>{
        "/usr/bin/env", "prometheus", "--config.file=" + (dir_ / "prometheus.yml").string(),
        "--storage.tsdb.path=" + (dir_ / "data").string(),
        absl::StrCat("--web.listen-address=127.0.0.1:", prom_port_)});
    ASSERT_TRUE(WaitFor([&] { return HttpGet(Url("/-/ready")).status == 200; }, absl::Seconds(30)))
        << prometheus_->Output();
  }

  void TearDown() override {
    if (prometheus_) {
      prometheus_->Signal(SIGTERM);
      prometheus_->Wait(absl::Seconds(10));
    }
    if (cluster_up_) {
      Process down({"/bin/bash", kSource + "/deploy/local/cluster.sh", "down"}, env_);
      down.Wait(absl::Seconds(30));
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Url(const std::string& path) {
    return absl::StrCat("http://127.0.0.1:", prom_port_, path);
  }

  json Query(const std::string& promql) {
    return json::parse(HttpGet(Url("/api/v1/query?query=" + UrlEscape(promql))).body, nullptr,
                       false);
  }

  // Bounded load: a batch of questions through the demo pipeline.
  void RunLoad(int questions) {
    json items = json::array();
    for (int i = 0; i < questions; ++i) {
      items.push_back({{"instruction", absl::StrCat("Load question ", i)}, {"dataset", "load"}});
    }
    std::ofstream(dir_ / "load.json") << items.dump();
    Process batch({BinaryPath("tools/moa/moa"), "--orchestrator=127.0.0.1:50051", "batch",
                   "--format=alpaca_eval", "--input=" + (dir_ / "load.json").string(),
                   "--output=" + (dir_ / "out.json").string(), "--concurrency=4"},
                  {"MOA_API_KEY=" + secret_});
    ASSERT_EQ(batch.Wait(absl::Seconds(120)), 0) << batch.Output();
    // A route's decision and a preset's savings for their panels.
    for (const std::vector<std::string>& flags :
         {std::vector<std::string>{"--pipeline=auto"}, {"--pipeline=moa", "--preset=budget"}}) {
      std::vector<std::string> argv = {BinaryPath("tools/moa/moa"),
                                       "--orchestrator=127.0.0.1:50051"};
      argv.insert(argv.end(), flags.begin(), flags.end());
      argv.insert(argv.end(), {"ask", "A question for the panels?"});
      Process ask(argv, {"MOA_API_KEY=" + secret_});
      EXPECT_EQ(ask.Wait(absl::Seconds(60)), 0) << ask.Output();
    }
    // One refusal for the refusals panel: a pipeline the key may not use.
    Process refused({BinaryPath("tools/moa/moa"), "--orchestrator=127.0.0.1:50051",
                     "--pipeline=vote", "ask", "Refused?"},
                    {"MOA_API_KEY=" + secret_});
    EXPECT_NE(refused.Wait(absl::Seconds(60)), 0) << refused.Output();
    EXPECT_THAT(refused.Output(), ::testing::HasSubstr("may not use pipeline"));
  }

  moa::testing::RedisServer redis_;
  std::string secret_;
  std::filesystem::path dir_;
  std::vector<std::string> env_;
  bool cluster_up_ = false;
  int prom_port_ = 0;
  std::unique_ptr<Process> prometheus_;
};

// Grafana variables as a user who picked the demo pipeline and all models.
std::string Substitute(const std::string& expr) {
  return absl::StrReplaceAll(
      expr,
      {{"$__rate_interval", "1m"}, {"$pipeline", "moa"}, {"$model", absl::StrJoin(kModels, "|")}});
}

TEST_F(PrometheusLiveTest, EveryDashboardAndAlertExpressionReturnsDataForTheDemoModels) {
  RunLoad(12);
  absl::SleepFor(absl::Seconds(3));  // A few more scrapes after the load.

  json dashboard = json::parse(ReadFile(kSource + "/deploy/grafana/dashboards/moa-cluster.json"));
  int checked = 0;
  for (const json& panel : dashboard["panels"]) {
    if (!panel.contains("targets")) continue;
    // A unit on every axis: Grafana's default "short" prints bare numbers.
    std::string unit = panel["fieldConfig"]["defaults"].value("unit", "short");
    EXPECT_NE(unit, "short") << panel["title"].get<std::string>() << " has no unit";
    for (const json& target : panel["targets"]) {
      std::string expr = Substitute(target["expr"].get<std::string>());
      json r = Query(expr);
      ASSERT_EQ(r.value("status", ""), "success") << panel["title"] << ": " << expr << "\n" << r;
      EXPECT_FALSE(r["data"]["result"].empty())
          << "panel '" << panel["title"].get<std::string>() << "' has no data: " << expr;
      ++checked;
    }
  }
  EXPECT_GE(checked, 20);

  // Alert rules: each signal (the expression without its threshold) returns
  // data for every demo model, and Prometheus evaluates every rule cleanly.
  YAML::Node rules = YAML::LoadFile(kSource + "/deploy/prometheus/alerts.yml");
  int alerts = 0;
  for (const YAML::Node& group : rules["groups"]) {
    for (const YAML::Node& rule : group["rules"]) {
      std::string expr = rule["expr"].as<std::string>();
      std::string signal =
          std::regex_replace(expr, std::regex("\\s*(>|<|==|!=|>=|<=)\\s*[0-9.e+-]+\\s*$"), "");
      ASSERT_NE(signal, expr) << "alert expressions end in a threshold: " << expr;
      json r = Query(signal);
      ASSERT_EQ(r.value("status", ""), "success") << signal << "\n" << r;
      EXPECT_FALSE(r["data"]["result"].empty()) << rule["alert"] << ": " << signal;
      if (signal.find("by (model)") != std::string::npos) {
        std::set<std::string> models;
        for (const json& series : r["data"]["result"]) {
          models.insert(series["metric"].value("model", ""));
        }
        for (const char* m : kModels) {
          EXPECT_EQ(models.count(m), 1u) << rule["alert"] << " has no series for " << m;
        }
      }
      ++alerts;
    }
  }
  EXPECT_EQ(alerts, 6);
  json api = json::parse(HttpGet(Url("/api/v1/rules")).body);
  for (const json& group : api["data"]["groups"]) {
    for (const json& rule : group["rules"]) {
      EXPECT_EQ(rule["health"], "ok") << rule["name"] << ": " << rule.value("lastError", "");
    }
  }
}

TEST_F(PrometheusLiveTest, PromtoolAcceptsEveryServicesMetrics) {
  RunLoad(2);
  for (int port : {9051, 9070, 9061, 9062, 9063, 9064, 9065}) {
    std::string metrics = HttpGet(absl::StrCat("http://127.0.0.1:", port, "/metrics")).body;
    ASSERT_FALSE(metrics.empty()) << port;
    std::string file = (dir_ / absl::StrCat("metrics-", port, ".txt")).string();
    std::ofstream(file) << metrics;
    Process check({"/bin/sh", "-c", "promtool check metrics < " + file});
    int code = check.Wait(absl::Seconds(30));
    // promtool lints names too (e.g. counters without _total); the services'
    // families follow its rules, so any finding is a failure.
    EXPECT_EQ(code, 0) << "port " << port << ": " << check.Output();
    EXPECT_EQ(check.Output(), "") << "port " << port;
  }
}

}  // namespace
}  // namespace moa
