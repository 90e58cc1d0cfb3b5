// Cost accounting through real processes: each model's usage (the
// simulator's token counts) x its price in the cluster config, in the gRPC
// summary, the HTTP moa extension and the orchestrator's metrics.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

ClusterSpec PricedSpec() {
  ClusterSpec spec;
  spec.models = {"a", "b", "z"};
  spec.pipelines_yaml = "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\n";
  spec.sim_profiles_yaml =
      "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 20}\n";
  spec.model_yaml = {{"a", "price: {input_per_million: 1.5, output_per_million: 6}"},
                     {"z", "price: {input_per_million: 3, output_per_million: 15}"}};
  spec.orchestrator_flags = {"--http_port=0", "--hedge_budget=0"};
  return spec;
}

double Price(const std::string& model, int64_t prompt, int64_t completion) {
  if (model == "a") return (prompt * 1.5 + completion * 6) / 1e6;
  if (model == "z") return (prompt * 3.0 + completion * 15) / 1e6;
  return 0;  // b has no price.
}

// moa_cost_dollars_total{key=...,model=...} from the orchestrator.
double CostMetricFor(LocalCluster& cluster, const std::string& model, const std::string& key) {
  HttpResult r =
      HttpGet(absl::StrCat("http://127.0.0.1:", cluster.orchestrator_metrics_port(), "/metrics"));
  std::smatch m;
  std::regex line("moa_cost_dollars_total\\{key=\"" + key + "\",model=\"" + model +
                  "\"\\} ([^\\n]+)");
  double value = 0;
  if (std::regex_search(r.body, m, line)) {
    EXPECT_TRUE(absl::SimpleAtod(m[1].str(), &value));
  }
  return value;
}

double CostMetric(LocalCluster& cluster, const std::string& model) {
  return CostMetricFor(cluster, model, "default");
}

TEST(AccountingTest, EachModelsCostIsItsTokensTimesItsPriceAndTheTotalTheirSum) {
  LocalCluster cluster(PricedSpec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  std::map<std::string, double> spent;

  // gRPC: the summary.
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  auto reader = cluster.stub().Chat(&context, UserQuestion("What does it cost?"));
  v1::ChatEvent event;
  std::optional<v1::Summary> summary;
  while (reader->Read(&event)) {
    if (event.has_summary()) summary = event.summary();
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_TRUE(summary);
  double total = 0;
  ASSERT_EQ(summary->usage_size(), 3);
  for (const auto& u : summary->usage()) {
    EXPECT_GT(u.usage().prompt_tokens(), 0) << u.model();
    EXPECT_EQ(u.usage().completion_tokens(), 20) << u.model();
    EXPECT_NEAR(u.cost_dollars(),
                Price(u.model(), u.usage().prompt_tokens(), u.usage().completion_tokens()), 1e-12)
        << u.model();
    spent[u.model()] += u.cost_dollars();
    total += u.cost_dollars();
  }
  EXPECT_GT(total, 0);
  EXPECT_NEAR(summary->cost_dollars(), total, 1e-12);

  // HTTP: the moa extension.
  HttpResult r = HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster.orchestrator_http_port(), "/v1/chat/completions"),
      R"({"model": "moa", "messages": [{"role": "user", "content": "And now?"}]})",
      {"Content-Type: application/json"});
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = nlohmann::json::parse(r.body);
  double http_total = 0;
  for (const auto& u : body["moa"]["usage"]) {
    const std::string model = u["model"];
    const double cost = u["cost_dollars"];
    EXPECT_NEAR(cost, Price(model, u["prompt_tokens"], u["completion_tokens"]), 1e-12) << model;
    spent[model] += cost;
    http_total += cost;
  }
  EXPECT_NEAR(body["moa"]["cost_dollars"].get<double>(), http_total, 1e-12);

  // The metric sums both requests per model; b has no price, so no series.
  EXPECT_TRUE(WaitFor([&] { return std::abs(CostMetric(cluster, "a") - spent["a"]) < 1e-9; },
                      absl::Seconds(5)))
      << CostMetric(cluster, "a") << " vs " << spent["a"];
  EXPECT_NEAR(CostMetric(cluster, "z"), spent["z"], 1e-9);
  EXPECT_EQ(CostMetric(cluster, "b"), 0);
}

HttpResult Post(LocalCluster& cluster, const std::string& secret, const std::string& pipeline) {
  return HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster.orchestrator_http_port(), "/v1/chat/completions"),
      absl::StrCat(R"({"model": ")", pipeline,
                   R"(", "messages": [{"role": "user", "content": "Hi"}]})"),
      {"Content-Type: application/json", "Authorization: Bearer " + secret});
}

TEST(AccountingTest, KeysMadeByTheCliHaveTheirLimitsEnforcedAtTheirNumbers) {
  const std::string file = "/tmp/moa-accounting-keys-" + std::to_string(getpid()) + ".yaml";
  std::remove(file.c_str());
  const std::string limited = AddKeyWithCli(file, "limited", {"--requests_per_minute=2"});
  const std::string budget = AddKeyWithCli(file, "budget", {"--budget_dollars_per_day=0.000001"});
  const std::string narrow = AddKeyWithCli(file, "narrow", {"--allowed_pipelines=other"});
  // The file holds hashes and names, never a secret.
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().find(limited), std::string::npos);
  EXPECT_THAT(text.str(), ::testing::HasSubstr("budget:"));
  // A name already in the file is refused.
  Process again({BinaryPath("tools/moa/moa"), "keys", "add", "budget", "--keys_file=" + file});
  EXPECT_EQ(again.Wait(absl::Seconds(10)), 2);
  EXPECT_THAT(again.Output(), ::testing::HasSubstr("already in"));

  ClusterSpec spec = PricedSpec();
  spec.orchestrator_flags.push_back("--api_keys_file=" + file);
  LocalCluster cluster(spec);
  ASSERT_TRUE(cluster.ok()) << cluster.error();

  // Requests per minute: the third within the minute is refused.
  EXPECT_EQ(Post(cluster, limited, "moa").status, 200);
  EXPECT_EQ(Post(cluster, limited, "moa").status, 200);
  HttpResult third = Post(cluster, limited, "moa");
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_THAT(third.body, ::testing::HasSubstr("requests_per_minute"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(third.headers, m, std::regex("Retry-After: ([0-9]+)")))
      << third.headers;
  EXPECT_GE(std::stoi(m[1].str()), 50);
  EXPECT_LE(std::stoi(m[1].str()), 60);
  // The same over gRPC: RESOURCE_EXHAUSTED with the delay in a trailer.
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + limited);
  auto reader = cluster.stub().Chat(&context, UserQuestion("Again?"));
  v1::ChatEvent event;
  while (reader->Read(&event)) {
  }
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("key 'limited'"));
  EXPECT_EQ(context.GetServerTrailingMetadata().count("retry-after"), 1u);

  // A budget of a millionth of a dollar: the first answer spends it.
  EXPECT_EQ(Post(cluster, budget, "moa").status, 200);
  HttpResult over = Post(cluster, budget, "moa");
  EXPECT_EQ(over.status, 429) << over.body;
  EXPECT_THAT(over.body, ::testing::HasSubstr("budget_dollars_per_day"));
  EXPECT_GT(CostMetricFor(cluster, "a", "budget"), 0) << "spend is per key";

  // A pipeline the key may not use.
  HttpResult denied = Post(cluster, narrow, "moa");
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_THAT(denied.body, ::testing::HasSubstr("may not use pipeline 'moa'"));
  std::remove(file.c_str());
}

}  // namespace
}  // namespace moa::testing
