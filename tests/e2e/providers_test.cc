// A panel of every dialect through real processes: one proposer speaks
// OpenAI, one Anthropic Messages, one Gemini, and the aggregator's model
// Anthropic, all to the simulator (which serves each API at its own paths).
// The pipeline answers through the OpenAI door and the Messages door, with
// usage, cost and per-model metrics for each model.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/support/local_cluster.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

using ::testing::HasSubstr;

ClusterSpec MixedSpec() {
  ClusterSpec spec;
  spec.models = {"gpt", "claude", "gemini", "judge"};
  spec.model_api = {{"claude", "anthropic"}, {"gemini", "gemini"}, {"judge", "anthropic"}};
  spec.pipelines_yaml =
      "pipelines:\n  mixed: {layers: [[gpt, claude, gemini]], aggregator: judge}\n"
      "default_pipeline: mixed\n";
  spec.sim_profiles_yaml =
      "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 12}\n";
  for (const std::string& m : spec.models) {
    spec.model_yaml[m] = "price: {input_per_million: 1, output_per_million: 10}";
  }
  spec.orchestrator_flags = {"--http_port=0"};
  return spec;
}

double Metric(LocalCluster& cluster, const std::string& pattern) {
  HttpResult r =
      HttpGet(absl::StrCat("http://127.0.0.1:", cluster.orchestrator_metrics_port(), "/metrics"));
  std::smatch m;
  double value = 0;
  if (std::regex_search(r.body, m, std::regex(pattern + " ([^\\n]+)"))) {
    EXPECT_TRUE(absl::SimpleAtod(m[1].str(), &value));
  }
  return value;
}

TEST(ProvidersTest, AMixedVendorPanelAnswersThroughBothDoorsWithUsageCostAndMetrics) {
  LocalCluster cluster(MixedSpec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  const std::string base = absl::StrCat("http://127.0.0.1:", cluster.orchestrator_http_port());

  // The OpenAI door.
  HttpResult chat =
      HttpRequest("POST", base + "/v1/chat/completions",
                  R"({"model": "mixed", "messages": [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": "What is MoA?"}]})",
                  {"Content-Type: application/json"});
  ASSERT_EQ(chat.status, 200) << chat.body;
  auto body = nlohmann::json::parse(chat.body);
  EXPECT_THAT(body["choices"][0]["message"]["content"].get<std::string>(),
              HasSubstr("[judge synthesis of 3 responses"));
  std::map<std::string, nlohmann::json> usage;
  for (const auto& u : body["moa"]["usage"]) usage[u["model"]] = u;
  ASSERT_EQ(usage.size(), 4u) << body["moa"].dump();
  for (const auto& [model, u] : usage) {
    EXPECT_GT(u["prompt_tokens"].get<int64_t>(), 0) << model;
    EXPECT_EQ(u["completion_tokens"], 12) << model;
    EXPECT_NEAR(u["cost_dollars"].get<double>(),
                (u["prompt_tokens"].get<double>() * 1 + 12 * 10) / 1e6, 1e-12)
        << model;
  }

  // Each model was asked in its own API (the simulator logs what it got).
  std::map<std::string, nlohmann::json> asked;
  for (const auto& r : cluster.SimRequests()) asked[r["model"]] = r;
  ASSERT_EQ(asked.size(), 4u);
  EXPECT_EQ(asked["gpt"]["messages"][0]["role"], "system");  // OpenAI: system is a message.
  EXPECT_EQ(asked["claude"]["params"]["system"], "Be brief.");
  EXPECT_EQ(asked["claude"]["params"]["max_tokens"], 4096);
  EXPECT_EQ(asked["gemini"]["params"]["systemInstruction"]["parts"][0]["text"], "Be brief.");
  EXPECT_EQ(asked["gemini"]["messages"][0]["role"], "user");
  // The aggregator's synthesis prompt travels as Anthropic's system field.
  EXPECT_THAT(asked["judge"]["params"]["system"].get<std::string>(), HasSubstr("1. "));

  // The Messages door, streamed: Anthropic's events, the panel's answer.
  HttpResult messages =
      HttpRequest("POST", base + "/v1/messages",
                  R"({"model": "mixed", "max_tokens": 200, "stream": true,
          "messages": [{"role": "user", "content": "And in one line?"}]})",
                  {"Content-Type: application/json", "anthropic-version: 2023-06-01"});
  ASSERT_EQ(messages.status, 200) << messages.body;
  EXPECT_THAT(messages.body, HasSubstr("event: message_start"));
  std::string streamed;  // The text deltas put together.
  std::regex delta(R"re("text":"([^"]*)","type":"text_delta")re");
  for (std::sregex_iterator it(messages.body.begin(), messages.body.end(), delta), end; it != end;
       ++it) {
    streamed += (*it)[1].str();
  }
  EXPECT_THAT(streamed, HasSubstr("[judge synthesis of 3 responses")) << messages.body;
  EXPECT_THAT(messages.body, HasSubstr("event: message_stop"));

  // Staircase steps need only streams: the Anthropic aggregator writes the
  // answer in steps over the three dialects' proposals as they grow.
  HttpResult staircase = HttpRequest(
      "POST", base + "/v1/chat/completions",
      R"({"model": "mixed", "moa_streaming": {"mode": "staircase", "first_chunk_tokens": 4},
          "messages": [{"role": "user", "content": "Step by step?"}]})",
      {"Content-Type: application/json"});
  ASSERT_EQ(staircase.status, 200) << staircase.body;
  auto stepped = nlohmann::json::parse(staircase.body);
  EXPECT_GE(stepped["moa"]["answer_steps"].get<int>(), 1) << stepped["moa"].dump();
  EXPECT_THAT(stepped["choices"][0]["message"]["content"].get<std::string>(), HasSubstr("[judge"));

  // Per-model series for every dialect: every request asked each model once
  // (staircase steps ask the aggregator more than once).
  for (const char* model : {"gpt", "claude", "gemini", "judge"}) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return Metric(cluster,
                        absl::StrCat("moa_tokens_total\\{direction=\"completion\",model=\"", model,
                                     "\"[^}]*\\}")) >= 36;
        },
        absl::Seconds(5)))
        << model;
    EXPECT_GT(Metric(cluster, absl::StrCat("moa_cost_dollars_total\\{key=\"default\",model=\"",
                                           model, "\"\\}")),
              0)
        << model;
  }
}

}  // namespace
}  // namespace moa::testing
