// Routes through real processes on the simulator: which pipeline ran is
// read from the simulator's request log (which models were called), the
// decision from the `accepted` event, the OpenAI extension, the metric.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

struct Answered {
  grpc::Status status;
  v1::RouteChoice route;
  std::string pipeline;  // accepted.pipeline
  std::string preset;    // accepted.preset
  std::string answer;
  std::map<std::string, std::vector<json>> requests;  // By model, in order.
  v1::Summary summary;
};

class RouteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterSpec spec;
    spec.models = {"a",       "b",  "z",  "cl_hard", "cl_words", "cl_broken",
                   "cl_hang", "p1", "p2", "p3",      "p4"};
    spec.pipelines_yaml =
        "pipelines:\n"
        "  quick: {layers: [[a]], aggregator: z}\n"
        "  deep: {layers: [[a, b]], aggregator: z, policy: {min_proposals: all}}\n"
        "  voted: {steps: [{propose: [a, b]}, vote]}\n"
        "  panel: {layers: [[p1, p2, p3, p4]], aggregator: z, policy: {min_proposals: all}}\n"
        "default_pipeline: quick\n"
        "routes:\n"
        "  auto:\n"
        "    rules:\n"
        "      - {pipeline: quick, max_chars: 20}\n"
        "      - {pipeline: deep, contains: [PROVE, derive]}\n"
        "    default_pipeline: deep\n"
        "  smart: {classifier: {model: cl_hard, labels: {easy: quick, hard: deep}}}\n"
        "  confused: {classifier: {model: cl_words, labels: {easy: deep, hard: deep}}}\n"
        "  failing: {classifier: {model: cl_broken, labels: {hard: deep}}}\n"
        "  late: {classifier: {model: cl_hang, labels: {hard: deep}, timeout_seconds: 0.3}}\n"
        "  to_vote: {classifier: {model: cl_hard, labels: {hard: voted}}}\n"
        "presets:\n"
        "  budget: {max_proposers: 2, early_stop: {}}\n"
        "  quality: {policy: {min_proposals: all}, early_stop: off}\n";
    spec.sim_profiles_yaml =
        "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 8}\n"
        "models:\n"
        "  cl_hard: {time_to_first_token: 0.01, answer_text: ' Hard.'}\n"
        "  cl_words: {time_to_first_token: 0.01, answer_text: 'It is hard to say; easy too.'}\n"
        "  cl_broken: {faults: {http_500: 1}}\n"
        "  cl_hang: {faults: {hang: 1}}\n"
        "  p1: {time_to_first_token: 0.01, answer_text: 'Paris.'}\n"
        "  p2: {time_to_first_token: 0.01, answer_text: 'paris'}\n"
        "  p3: {time_to_first_token: 0.01, answer_text: 'Lyon'}\n"
        "  p4: {time_to_first_token: 0.01, answer_text: 'Paris'}\n";
    spec.model_yaml = {{"z", "price: {input_per_million: 1, output_per_million: 2}"}};
    spec.orchestrator_flags = {"--hedge_budget=0", "--http_port=0"};
    cluster_ = new LocalCluster(spec);
  }
  static void TearDownTestSuite() { delete cluster_; }
  void SetUp() override { ASSERT_TRUE(cluster_->ok()) << cluster_->error(); }

  static Answered Ask(const std::string& route, const std::string& question, bool with_tool = false,
                      const std::string& preset = "") {
    Answered run;
    const int64_t since = cluster_->LastSimRequestId();
    v1::ChatRequest request = UserQuestion(question);
    request.set_pipeline(route);
    request.set_preset(preset);
    if (with_tool) {
      v1::Tool* tool = request.mutable_tools()->add_tools();
      tool->set_name("lookup");
      tool->set_description("Looks a word up.");
    }
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    auto reader = cluster_->stub().Chat(&context, request);
    v1::ChatEvent event;
    while (reader->Read(&event)) {
      if (event.has_accepted()) {
        run.preset = event.accepted().preset();
        run.route = event.accepted().route();
        run.pipeline = event.accepted().pipeline();
      }
      if (event.has_answer_delta()) run.answer += event.answer_delta();
      if (event.has_summary()) run.summary = event.summary();
    }
    run.status = reader->Finish();
    for (const json& r : cluster_->SimRequests(since)) run.requests[r["model"]].push_back(r);
    return run;
  }

  static LocalCluster* cluster_;
};

LocalCluster* RouteTest::cluster_ = nullptr;

TEST_F(RouteTest, RulesSendTwoKindsOfRequestToTwoPipelines) {
  Answered short_one = Ask("auto", "Hi there");
  ASSERT_TRUE(short_one.status.ok()) << short_one.status.error_message();
  EXPECT_EQ(short_one.pipeline, "quick");
  EXPECT_EQ(short_one.route.route(), "auto");
  EXPECT_EQ(short_one.route.pipeline(), "quick");
  EXPECT_EQ(short_one.route.by(), "rule");
  EXPECT_EQ(short_one.route.reason(), "rules[0] (max_chars 20)");
  EXPECT_EQ(short_one.requests["a"].size(), 1u);
  EXPECT_EQ(short_one.requests.count("b"), 0u) << "quick asks a alone";
  EXPECT_EQ(short_one.requests["z"].size(), 1u);

  Answered proof = Ask("auto", "Please prove that there are infinitely many primes.");
  ASSERT_TRUE(proof.status.ok()) << proof.status.error_message();
  EXPECT_EQ(proof.pipeline, "deep");
  EXPECT_EQ(proof.route.by(), "rule");
  EXPECT_EQ(proof.route.reason(), "rules[1] (contains)") << "PROVE matched ignoring case";
  EXPECT_EQ(proof.requests["a"].size(), 1u);
  EXPECT_EQ(proof.requests["b"].size(), 1u);

  Answered other = Ask("auto", "What should I cook for dinner tonight?");
  ASSERT_TRUE(other.status.ok()) << other.status.error_message();
  EXPECT_EQ(other.pipeline, "deep") << "the route's default";
  EXPECT_EQ(other.route.by(), "default");
  EXPECT_EQ(other.route.reason(), "no rule held");

  // The OpenAI door serves the route as a model and says what it chose.
  HttpResult http = HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster_->orchestrator_http_port(), "/v1/chat/completions"),
      R"({"model": "auto", "messages": [{"role": "user", "content": "Hi"}]})",
      {"Content-Type: application/json"});
  ASSERT_EQ(http.status, 200) << http.body;
  json body = json::parse(http.body);
  EXPECT_EQ(body["model"], "auto");
  EXPECT_EQ(body["moa"]["pipeline"], "quick");
  EXPECT_EQ(body["moa"]["route"]["by"], "rule");
  HttpResult models =
      HttpGet(absl::StrCat("http://127.0.0.1:", cluster_->orchestrator_http_port(), "/v1/models"));
  EXPECT_THAT(models.body, HasSubstr("\"id\":\"auto\""));

  HttpResult metrics =
      HttpGet(absl::StrCat("http://127.0.0.1:", cluster_->orchestrator_metrics_port(), "/metrics"));
  EXPECT_THAT(metrics.body,
              HasSubstr("moa_routes_total{by=\"rule\",pipeline=\"quick\",route=\"auto\"} 2"));
  EXPECT_THAT(metrics.body,
              HasSubstr("moa_routes_total{by=\"default\",pipeline=\"deep\",route=\"auto\"} 1"));

  // `moa pipelines` lists the route with what it may choose.
  grpc::ClientContext context;
  v1::ListPipelinesResponse listed;
  ASSERT_TRUE(cluster_->stub().ListPipelines(&context, {}, &listed).ok());
  bool found = false;
  for (const v1::PipelineInfo& p : listed.pipelines()) {
    if (p.name() != "auto") continue;
    found = true;
    EXPECT_THAT(p.route().pipelines(), ::testing::ElementsAre("deep", "quick"));
    EXPECT_EQ(p.route().rules(), 2);
  }
  EXPECT_TRUE(found);
  Process list({BinaryPath("tools/moa/moa"), "--orchestrator=" + cluster_->orchestrator_address(),
                "pipelines"});
  ASSERT_EQ(list.Wait(absl::Seconds(20)), 0) << list.Output();
  EXPECT_THAT(list.Output(), HasSubstr("auto: route to deep | quick (2 rules; default deep)\n"));
  EXPECT_THAT(list.Output(),
              HasSubstr("smart: route to quick | deep (0 rules, classifier cl_hard; default "
                        "quick)\n"));
  // `moa ask` shows the decision as a row of its own.
  Process ask({BinaryPath("tools/moa/moa"), "--orchestrator=" + cluster_->orchestrator_address(),
               "ask", "--pipeline=auto", "Hi"});
  ASSERT_EQ(ask.Wait(absl::Seconds(20)), 0) << ask.Output();
  EXPECT_THAT(ask.Output(),
              ::testing::ContainsRegex("\nroute +- .* ok: auto -> quick by rule: rules\\[0\\]"));
}

TEST_F(RouteTest, TheClassifiersLabelChoosesThePipelineAndItsCallIsCounted) {
  Answered run = Ask("smart", "Why is the sky blue?");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(run.pipeline, "deep");
  EXPECT_EQ(run.route.by(), "classifier");
  EXPECT_EQ(run.route.reason(), "the classifier cl_hard answered 'hard'");
  ASSERT_EQ(run.requests["cl_hard"].size(), 1u);
  const json& asked = run.requests["cl_hard"][0];
  EXPECT_THAT(asked["messages"][0]["content"].get<std::string>(),
              HasSubstr("Answer with exactly one of these labels and nothing else: easy, hard."));
  EXPECT_EQ(asked["messages"][1]["content"], "Why is the sky blue?");
  EXPECT_EQ(run.requests["b"].size(), 1u) << "deep ran";
  bool counted = false;
  for (const v1::ModelUsage& u : run.summary.usage()) {
    if (u.model() == "cl_hard") counted = u.usage().completion_tokens() > 0;
  }
  EXPECT_TRUE(counted) << "the classifier's tokens are the request's";
}

TEST_F(RouteTest, AClassifierThatFailsIsLateOrAnswersNoLabelFallsBackToTheDefault) {
  struct Case {
    const char* route;
    const char* reason;
  };
  for (const Case& c :
       {Case{"confused", "answered 'It is hard to say; easy too.', which is none of the labels"},
        Case{"failing", "the classifier cl_broken failed ("},
        Case{"late", "the classifier cl_hang failed (DEADLINE_EXCEEDED"}}) {
    SCOPED_TRACE(c.route);
    Answered run = Ask(c.route, "Why is the sky blue?");
    ASSERT_TRUE(run.status.ok()) << run.status.error_message();
    EXPECT_EQ(run.pipeline, "quick");
    EXPECT_EQ(run.route.by(), "default");
    EXPECT_THAT(run.route.reason(), HasSubstr(c.reason));
    EXPECT_EQ(run.requests.count("b"), 0u) << "quick ran";
    EXPECT_FALSE(run.answer.empty());
  }
}

TEST_F(RouteTest, AChosenPipelineThatCannotServeTheRequestFallsBackToTheDefault) {
  // The classifier says `voted`, which cannot call tools: quick answers.
  Answered run = Ask("to_vote", "Look up 'moa'.", /*with_tool=*/true);
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(run.pipeline, "quick");
  EXPECT_EQ(run.route.by(), "default");
  EXPECT_THAT(run.route.reason(), HasSubstr("chose pipeline 'voted', which cannot serve this "
                                            "request (tools: pipeline 'voted' ends in vote"));
}

TEST_F(RouteTest, ABudgetPresetAsksFewerProposersAndSkipsTheAggregatorWhenTheyAgree) {
  Answered full = Ask("panel", "What is the capital of France?");
  ASSERT_TRUE(full.status.ok()) << full.status.error_message();
  EXPECT_EQ(full.preset, "");
  for (const char* m : {"p1", "p2", "p3", "p4", "z"}) EXPECT_EQ(full.requests[m].size(), 1u) << m;

  Answered budget = Ask("panel", "What is the capital of France?", false, "budget");
  ASSERT_TRUE(budget.status.ok()) << budget.status.error_message();
  EXPECT_EQ(budget.preset, "budget");
  EXPECT_EQ(budget.requests["p1"].size(), 1u);
  EXPECT_EQ(budget.requests["p2"].size(), 1u);
  EXPECT_EQ(budget.requests.count("p3") + budget.requests.count("p4"), 0u) << "max_proposers 2";
  EXPECT_EQ(budget.requests.count("z"), 0u) << "Paris. and paris agree: no aggregator call";
  EXPECT_EQ(budget.answer, "Paris.");
  EXPECT_EQ(budget.summary.skipped_calls(), 3) << "p3 and p4 left out, z skipped";
  // Priced at the request's mean call: p1's and p2's tokens, and z's
  // price (the only priced model: $1 in and $2 out per million tokens).
  int64_t prompt = 0, completion = 0;
  for (const v1::ModelUsage& u : budget.summary.usage()) {
    prompt += u.usage().prompt_tokens();
    completion += u.usage().completion_tokens();
  }
  ASSERT_GT(prompt, 0);
  EXPECT_EQ(budget.summary.saved_tokens(), 3 * (prompt / 2 + completion / 2));
  EXPECT_DOUBLE_EQ(budget.summary.saved_dollars(),
                   ((prompt / 2) * 1.0 + (completion / 2) * 2.0) / 1e6);
  EXPECT_EQ(full.summary.skipped_calls(), 0);
  EXPECT_EQ(full.summary.saved_tokens(), 0);

  // The OpenAI door takes it as moa_preset; `moa pipelines` lists presets.
  HttpResult http = HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster_->orchestrator_http_port(), "/v1/chat/completions"),
      R"({"model": "panel", "moa_preset": "budget",
          "messages": [{"role": "user", "content": "Capital of France?"}]})",
      {"Content-Type: application/json"});
  ASSERT_EQ(http.status, 200) << http.body;
  EXPECT_EQ(json::parse(http.body)["choices"][0]["message"]["content"], "Paris.");
  HttpResult unknown = HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster_->orchestrator_http_port(), "/v1/chat/completions"),
      R"({"model": "panel", "moa_preset": "cheap", "messages": [{"role": "user", "content": "Hi"}]})",
      {"Content-Type: application/json"});
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_THAT(unknown.body,
              HasSubstr("preset: 'cheap' is not defined; available: budget, quality"));
  Process list({BinaryPath("tools/moa/moa"), "--orchestrator=" + cluster_->orchestrator_address(),
                "pipelines"});
  ASSERT_EQ(list.Wait(absl::Seconds(20)), 0) << list.Output();
  EXPECT_THAT(list.Output(), HasSubstr("preset budget: max_proposers 2, early_stop\n"));
  EXPECT_THAT(list.Output(), HasSubstr("preset quality: min_proposals all, early_stop off\n"));
}

}  // namespace
}  // namespace moa::testing
