// Routes and presets without processes: which rule holds, what counts as a
// label, the plan a route makes, a classifier call held, answered or
// cancelled on a fake backend, and what a preset does to a plan.
#include "services/orchestrator/engine/route.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "services/orchestrator/engine/engine.h"
#include "tests/fakes/fake_generation_backend.h"
#include "tests/support/requests.h"

namespace moa::orchestrator {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"(models:
  a: {endpoint: 'x:1'}
  b: {endpoint: 'x:2', capabilities: [vision]}
  cl: {endpoint: 'x:3'}
aggregator: {endpoint: 'x:9'}
pipelines:
  quick: {layers: [[a]], aggregator: b}
  deep: {layers: [[a, b]], aggregator: b}
  voted: {steps: [{propose: [a, b]}, vote]}
  agree: {layers: [[a, b]], aggregator: b, early_stop: {then: aggregate}}
default_pipeline: quick
routes:
  auto:
    rules:
      - {pipeline: deep, keys: [research]}
      - {pipeline: quick, max_chars: 10, tools: false}
      - {pipeline: deep, contains: [Prove, 'step by step']}
      - {pipeline: voted, images: true}
  smart: {classifier: {model: cl, labels: {easy: quick, hard: deep}}}
presets:
  quality: {policy: {min_proposals: all}, early_stop: off}
  balanced: {description: 'the pipeline as configured'}
  budget: {max_proposers: 1, early_stop: {similarity: 0.9}}
  fast: {policy: {min_proposals: 1, straggler_grace_seconds: 0.5}, streaming: staircase}
)";

class RouteTest : public ::testing::Test {
 protected:
  RouteTest() : config_(*config::ParseClusterConfig(kConfig, "test")), metrics_(registry_, {}) {}

  static v1::ChatRequest Ask(const std::string& route, const std::string& text) {
    v1::ChatRequest r = ::moa::testing::UserQuestion(text);
    r.set_pipeline(route);
    return r;
  }

  config::ClusterConfig config_;
  prometheus::Registry registry_;
  telemetry::OrchestratorMetrics metrics_;
};

TEST_F(RouteTest, TheFirstRuleWhoseEveryConditionHoldsDecides) {
  const config::RouteConfig& route = *config_.FindRoute("auto");
  auto rule = [&](const std::string& text, const std::string& key = "", bool tools = false,
                  bool images = false) {
    RouteFacts f;
    f.last_user = text;
    f.key_name = key;
    f.tools = tools;
    f.images = images;
    return FirstRuleThatHolds(route, f);
  };
  EXPECT_EQ(rule("hi", "research"), 0u) << "the key's rule comes first";
  EXPECT_EQ(rule("hi"), 1u);
  EXPECT_EQ(rule("hi", "", /*tools=*/true), std::nullopt) << "tools: false fails; no other holds";
  EXPECT_EQ(rule("Now PROVE it, please"), 2u) << "contains ignores case";
  EXPECT_EQ(rule("explain it Step By Step, please"), 2u);
  EXPECT_EQ(rule("a long question without the words"), std::nullopt);
  EXPECT_EQ(rule("a long question with a picture", "", false, /*images=*/true), 3u);
  EXPECT_EQ(rule(std::string(10, 'x')), 1u) << "max_chars is inclusive";
  EXPECT_EQ(rule(std::string(11, 'x')), std::nullopt);
  // A message a client made to be slow for a naive search stays linear.
  EXPECT_EQ(rule(std::string(4 << 20, 'p')), std::nullopt);
  EXPECT_EQ(DescribeRule(route, 1), "rules[1] (max_chars 10, no tools)");
}

TEST_F(RouteTest, ALabelIsTheWholeAnswerUpToQuotesSpaceAndAFullStop) {
  const config::RouteClassifier& c = *config_.FindRoute("smart")->classifier;
  EXPECT_EQ(*LabelOf(c, "hard"), "hard");
  EXPECT_EQ(*LabelOf(c, "  \"Hard.\"\n"), "hard");
  EXPECT_EQ(*LabelOf(c, "**easy**"), "easy");
  EXPECT_EQ(LabelOf(c, "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(LabelOf(c, "It is hard.").status().message(),
              HasSubstr("answered 'It is hard.', which is none of the labels (easy, hard)"));
  // The model's bytes are cut and made printable before they enter a reason.
  EXPECT_THAT(LabelOf(c, std::string("\x01\xff") + std::string(100, 'q')).status().message(),
              HasSubstr("answered '??qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq'"));
  auto conversation = ClassifierConversation(c, std::string(kClassifiedBytes + 10, 'x'));
  ASSERT_EQ(conversation.size(), 2u);
  EXPECT_EQ(conversation[0].content,
            "Classify the user's message below. Answer with exactly one of these labels and "
            "nothing else: easy, hard.");
  EXPECT_EQ(conversation[1].content.size(), kClassifiedBytes);
}

TEST_F(RouteTest, PlanChatRunsTheRulesChoiceOrTheDefaultWhenItCannotServe) {
  auto plan = PlanChat(Ask("auto", "hi"), config_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pipeline.name, "quick");
  ASSERT_TRUE(plan->route);
  EXPECT_EQ(plan->route->by(), "rule");
  EXPECT_EQ(plan->pending_route, nullptr);

  plan = PlanChat(Ask("auto", "hi"), config_, Caller{"research", ""});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pipeline.name, "deep") << "the key's rule";

  // rules[3] says voted, which cannot call tools: the default serves.
  v1::ChatRequest tools = Ask("auto", "a long question with a picture");
  tools.mutable_messages(0)->add_images()->set_url("https://example.com/a.png");
  tools.mutable_tools()->add_tools()->set_name("lookup");
  plan = PlanChat(tools, config_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pipeline.name, "quick");
  EXPECT_EQ(plan->route->by(), "default");
  EXPECT_THAT(plan->route->reason(),
              HasSubstr("rules[3] (images) chose pipeline 'voted', which cannot serve"));

  // What the default cannot serve is refused as if the client had named it.
  v1::ChatRequest bad = Ask("auto", "a long question without the words");
  bad.mutable_params()->set_temperature(5);
  EXPECT_EQ(PlanChat(bad, config_).status().code(), absl::StatusCode::kInvalidArgument);

  plan = PlanChat(Ask("smart", "anything"), config_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pipeline.name, "quick") << "planned on the default until the classifier answers";
  ASSERT_NE(plan->pending_route, nullptr);
}

class HeldSink : public MoaCallSink {
 public:
  void OnEvent(v1::ChatEvent event) override { events.push_back(std::move(event)); }
  void OnFinish(absl::Status status) override { statuses.push_back(status); }
  std::vector<v1::ChatEvent> events;
  std::vector<absl::Status> statuses;
};

TEST_F(RouteTest, ACancelWhileTheClassifierIsAskedFinishesOnceAndReportsNothingSpent) {
  FakeGenerationBackend held([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  });
  FakeGenerationBackend aggregator([](const cluster::GenerationCall& c) {
    return FakeGenerationBackend::Reply{{"answer"}, FakeGenerationBackend::Ok()};
  });
  FakeClock clock;
  Admission admission(1);
  Engine engine({.request_timeout = absl::Seconds(30)}, &config_,
                {{&held, &aggregator}, &metrics_, &clock}, &admission);
  auto plan = engine.Plan(Ask("smart", "anything"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  int spent = 0;
  plan->on_spent = [&](const Spending& s) {
    ++spent;
    EXPECT_EQ(s.tokens, 0);
  };
  auto sink = std::make_shared<HeldSink>();
  auto call = engine.Start(*engine.Admit(), *std::move(plan), sink);
  ASSERT_EQ(held.calls().size(), 1u);
  EXPECT_EQ(held.calls()[0].model, "cl");
  EXPECT_EQ(held.calls()[0].deadline, clock.Now() + absl::Seconds(2)) << "the classifier's bound";
  EXPECT_EQ(admission.inflight(), 1);
  call->Cancel();
  call->Cancel();
  ASSERT_EQ(sink->statuses.size(), 1u);
  EXPECT_EQ(sink->statuses[0].code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(sink->events.empty());
  EXPECT_EQ(spent, 1);
  EXPECT_EQ(held.cancelled(), 1);
  EXPECT_EQ(admission.inflight(), 0);
}

TEST_F(RouteTest, TheClassifiersLabelStartsThePipelineItNames) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall& c) {
    if (c.model == "cl")
      return FakeGenerationBackend::Reply{{"ha", "rd"}, FakeGenerationBackend::Ok()};
    return FakeGenerationBackend::Reply{{c.model}, FakeGenerationBackend::Ok()};
  });
  FakeGenerationBackend aggregator([](const cluster::GenerationCall& c) {
    return FakeGenerationBackend::Reply{{"answer"}, FakeGenerationBackend::Ok()};
  });
  FakeClock clock;
  Admission admission(1);
  Engine engine({.request_timeout = absl::Seconds(30)}, &config_,
                {{&proposers, &aggregator}, &metrics_, &clock}, &admission);
  auto sink = std::make_shared<HeldSink>();
  auto plan = engine.Plan(Ask("smart", "anything"));
  ASSERT_TRUE(plan.ok());
  engine.Start(*engine.Admit(), *std::move(plan), sink);
  ASSERT_EQ(sink->statuses.size(), 1u);
  EXPECT_TRUE(sink->statuses[0].ok()) << sink->statuses[0];
  ASSERT_FALSE(sink->events.empty());
  const v1::Accepted& accepted = sink->events[0].accepted();
  EXPECT_EQ(accepted.pipeline(), "deep");
  EXPECT_EQ(accepted.route().by(), "classifier");
  EXPECT_EQ(accepted.route().reason(), "the classifier cl answered 'hard'");
  ASSERT_TRUE(sink->events.back().has_summary());
  bool counted = false;
  for (const v1::ModelUsage& u : sink->events.back().summary().usage()) {
    counted |= u.model() == "cl";
  }
  EXPECT_TRUE(counted);
}

TEST_F(RouteTest, APresetChangesHowThePipelineRunsAndTheRequestGoesOnTop) {
  v1::ChatRequest request = Ask("deep", "hi");
  request.set_preset("budget");
  auto plan = PlanChat(request, config_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pipeline.preset, "budget");
  EXPECT_EQ(plan->pipeline.layers, (std::vector<std::vector<std::string>>{{"a"}}));
  ASSERT_TRUE(plan->pipeline.early_stop);
  EXPECT_EQ(plan->pipeline.early_stop->similarity, 0.9);

  request.set_preset("fast");
  request.mutable_policy()->set_min_proposals(2);
  plan = PlanChat(request, config_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->staircase) << "the preset's streaming";
  EXPECT_EQ(plan->policy.min_proposals, 2) << "the request's own policy goes on top";
  EXPECT_EQ(plan->policy.straggler_grace, absl::Milliseconds(500));

  // The key's preset applies when the request names none.
  plan = PlanChat(Ask("deep", "hi"), config_, Caller{"k", "quality"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pipeline.preset, "quality");
  EXPECT_EQ(plan->policy.min_proposals, std::numeric_limits<int>::max());
  request = Ask("deep", "hi");
  request.set_preset("balanced");
  plan = PlanChat(request, config_, Caller{"k", "quality"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pipeline.preset, "balanced") << "the request's preset wins";
  EXPECT_EQ(plan->pipeline.layers[0].size(), 2u);

  // A route's choice runs with the preset too.
  request = Ask("auto", "hi");
  request.set_preset("quality");
  plan = PlanChat(request, config_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pipeline.name, "quick");
  EXPECT_EQ(plan->pipeline.preset, "quality");
}

TEST_F(RouteTest, AnUnknownPresetOrOneThePipelineCannotRunIsRefusedByName) {
  v1::ChatRequest request = Ask("deep", "hi");
  request.set_preset("cheap");
  EXPECT_THAT(PlanChat(request, config_).status().message(),
              HasSubstr("preset: 'cheap' is not defined; available: quality, balanced, budget, "
                        "fast"));
  EXPECT_THAT(PlanChat(Ask("deep", "hi"), config_, Caller{"k", "gone"}).status().message(),
              HasSubstr("preset: the key's preset 'gone' is not defined"));
  request = Ask("voted", "hi");
  request.set_preset("fast");
  EXPECT_THAT(
      PlanChat(request, config_).status().message(),
      HasSubstr("preset: 'fast' streams in staircase steps, which pipeline 'voted' cannot"));
  EXPECT_EQ(DescribePreset(*config_.FindPreset("budget")), "max_proposers 1, early_stop");
  EXPECT_EQ(DescribePreset(*config_.FindPreset("quality")), "min_proposals all, early_stop off");
  EXPECT_EQ(DescribePreset(*config_.FindPreset("balanced")), "the pipeline as configured");
}

// Early stop's `then: aggregate` makes the final call, so a request with
// tools still stops early: the aggregator gets the tools and one reference.
TEST_F(RouteTest, ThenAggregateStopsEarlyWithToolsAndAsksTheAggregatorWithOneReference) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall& c) {
    return FakeGenerationBackend::Reply{{"Same answer."}, FakeGenerationBackend::Ok()};
  });
  FakeGenerationBackend aggregator([](const cluster::GenerationCall& c) {
    return FakeGenerationBackend::Reply{{"final"}, FakeGenerationBackend::Ok()};
  });
  FakeClock clock;
  Admission admission(1);
  Engine engine({.request_timeout = absl::Seconds(30)}, &config_,
                {{&proposers, &aggregator}, &metrics_, &clock}, &admission);
  v1::ChatRequest request = Ask("agree", "hi");
  request.mutable_tools()->add_tools()->set_name("lookup");
  auto plan = engine.Plan(request);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto sink = std::make_shared<HeldSink>();
  engine.Start(*engine.Admit(), *std::move(plan), sink);
  ASSERT_EQ(sink->statuses.size(), 1u);
  EXPECT_TRUE(sink->statuses[0].ok()) << sink->statuses[0];
  ASSERT_EQ(aggregator.calls().size(), 1u);
  EXPECT_EQ(aggregator.calls()[0].references.size(), 1u) << "the agreed answer alone";
  EXPECT_EQ(aggregator.calls()[0].tools.tools.size(), 1u);
  bool stopped = false;
  for (const v1::ChatEvent& e : sink->events) {
    stopped |= e.has_step_applied() && e.step_applied().kind() == "early_stop";
  }
  EXPECT_TRUE(stopped);
}

}  // namespace
}  // namespace moa::orchestrator
