// The Engine both servers share: planning (checks, resolution, deadline on
// the injected clock) and admission slots that come back after the call.
#include "services/orchestrator/engine/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/fakes/fake_generation_backend.h"
#include "tests/support/requests.h"

namespace moa::orchestrator {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::testing::HasSubstr;

class NullSink : public MoaCallSink {
 public:
  void OnEvent(v1::ChatEvent) override {}
  void OnFinish(absl::Status status) override { statuses.push_back(status); }
  std::vector<absl::Status> statuses;
};

class EngineTest : public ::testing::Test {
 protected:
  EngineTest()
      : config_(
            *config::ParseClusterConfig("models:\n  a: {endpoint: 'x:1'}\n  z: {endpoint: 'x:3'}\n"
                                        "  v: {endpoint: 'x:5', capabilities: [vision]}\n"
                                        "aggregator: {endpoint: 'x:4'}\n"
                                        "pipelines:\n  moa: {layers: [[a]], aggregator: z}\n"
                                        "  voted: {steps: [{propose: [a, z]}, vote]}\n"
                                        "  seeing: {layers: [[a]], aggregator: v}\n"
                                        "limits: {max_messages: 2}\n",
                                        "test")),
        metrics_(registry_, {}) {}

  static v1::ChatRequest Question() { return ::moa::testing::UserQuestion(); }

  Engine MakeEngine(FakeGenerationBackend& proposers) {
    return Engine({.request_timeout = absl::Seconds(30)}, &config_,
                  {{&proposers, &aggregator_}, &metrics_, &clock_}, &admission_);
  }

  static FakeGenerationBackend::Reply Answer(const cluster::GenerationCall& c) {
    return {{c.model}, FakeGenerationBackend::Ok()};
  }

  FakeClock clock_;
  config::ClusterConfig config_;
  prometheus::Registry registry_;
  telemetry::OrchestratorMetrics metrics_;
  Admission admission_{1};
  FakeGenerationBackend proposers_{Answer};
  FakeGenerationBackend aggregator_{Answer};
};

TEST_F(EngineTest, PlanTakesTheSoonerOfTheClientsDeadlineAndTheRequestTimeout) {
  Engine engine = MakeEngine(proposers_);
  auto plan = engine.Plan(Question());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->deadline, clock_.Now() + absl::Seconds(30));
  EXPECT_EQ(plan->pipeline.name, "moa");
  ASSERT_EQ(plan->conversation.size(), 1u);
  EXPECT_EQ(plan->conversation[0].role, llm::Role::kUser);
  plan = engine.Plan(Question(), clock_.Now() + absl::Seconds(3));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->deadline, clock_.Now() + absl::Seconds(3));
}

// response_format: every model reads the format first, in the system
// message; a schema this server does not check, or a staircase answer (which
// cannot be held), is refused naming the field.
TEST_F(EngineTest, PlanPutsTheAnswerFormatInTheSystemMessageAndRefusesWhatItCannotCheck) {
  Engine engine = MakeEngine(proposers_);
  v1::ChatRequest request = Question();
  v1::ResponseFormat* format = request.mutable_response_format();
  format->set_type(v1::ResponseFormat::JSON_SCHEMA);
  format->set_name("weather");
  format->set_schema_json(R"({"type":"object","required":["city"]})");
  auto plan = engine.Plan(request);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_NE(plan->answer_format, nullptr);
  ASSERT_EQ(plan->conversation.size(), 2u);
  EXPECT_EQ(plan->conversation[0].role, llm::Role::kSystem);
  EXPECT_THAT(plan->conversation[0].content, HasSubstr("(named \"weather\")"));
  EXPECT_THAT(plan->conversation[0].content, HasSubstr(R"("required":["city"])"));
  // An existing system message gets it appended.
  v1::ChatRequest with_system = request;
  with_system.mutable_messages()->Add()->CopyFrom(with_system.messages(0));
  with_system.mutable_messages(0)->set_role(v1::ROLE_SYSTEM);
  with_system.mutable_messages(0)->set_content("Be brief.");
  plan = engine.Plan(with_system);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->conversation.size(), 2u);
  EXPECT_THAT(plan->conversation[0].content,
              ::testing::StartsWith("Be brief.\n\nAnswer with JSON"));
  // Refused, naming the field.
  format->set_schema_json(R"({"type":"string","pattern":"^(a+)+$"})");
  EXPECT_THAT(std::string(engine.Plan(request).status().message()),
              ::testing::StartsWith("response_format.json_schema.schema: 'pattern' is not"));
  format->set_schema_json("{not json");
  EXPECT_THAT(std::string(engine.Plan(request).status().message()),
              ::testing::StartsWith("response_format.json_schema.schema is not JSON"));
  format->set_schema_json(R"({"type":"object"})");
  request.mutable_streaming()->set_mode(v1::StreamingOptions::STAIRCASE);
  EXPECT_THAT(std::string(engine.Plan(request).status().message()),
              HasSubstr("response_format: a structured answer is checked whole"));
}

// tools: checked, handed to the call (its final step gets them); refused
// where the answer cannot be one model's call that may call tools.
TEST_F(EngineTest, PlanHandsTheToolsToTheCallAndRefusesThemWhereTheyCannotBeCalled) {
  Engine engine = MakeEngine(proposers_);
  v1::ChatRequest request = Question();
  v1::Tool* tool = request.mutable_tools()->add_tools();
  tool->set_name("get_weather");
  tool->set_parameters_json(R"({"type":"object"})");
  request.mutable_tools()->set_choice("required");
  auto plan = engine.Plan(request);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->tools.tools.size(), 1u);
  EXPECT_EQ(plan->tools.tools[0].name, "get_weather");
  EXPECT_EQ(plan->tools.choice, "required");

  v1::ChatRequest staircase = request;
  staircase.mutable_streaming()->set_mode(v1::StreamingOptions::STAIRCASE);
  EXPECT_THAT(std::string(engine.Plan(staircase).status().message()),
              ::testing::StartsWith("tools: an answer that may call tools"));
  v1::ChatRequest voted = request;
  voted.set_pipeline("voted");
  EXPECT_THAT(std::string(engine.Plan(voted).status().message()),
              ::testing::StartsWith("tools: pipeline 'voted' ends in vote"));
  v1::ChatRequest bad = request;
  bad.mutable_tools()->mutable_tools(0)->set_name("get weather");
  EXPECT_THAT(std::string(engine.Plan(bad).status().message()),
              ::testing::StartsWith("tools.tools[0].name"));
}

// Images: a pipeline whose final model reads none is refused by name; one
// whose final model does is planned with them.
TEST_F(EngineTest, PlanRefusesImagesWhoseFinalStepCannotSeeThem) {
  Engine engine = MakeEngine(proposers_);
  v1::ChatRequest request = Question();
  request.mutable_messages(0)->add_images()->set_url("https://example.com/cat.jpg");
  EXPECT_THAT(std::string(engine.Plan(request).status().message()),
              ::testing::StartsWith("messages[0]: the message has images, and pipeline 'moa' ends "
                                    "with model z, which reads no images"));
  request.set_pipeline("seeing");
  auto plan = engine.Plan(request);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->conversation[0].images.size(), 1u);
}

TEST_F(EngineTest, PlanNamesTheFieldOrTheLimitAndRejectsUnknownRoles) {
  Engine engine = MakeEngine(proposers_);
  v1::ChatRequest unknown_role = Question();
  unknown_role.mutable_messages(0)->set_role(static_cast<v1::Role>(9));  // Kept by proto3.
  EXPECT_THAT(engine.Plan(unknown_role).status().message(), HasSubstr("messages[0].role"));
  v1::ChatRequest too_many = Question();
  *too_many.add_messages() = too_many.messages(0);
  *too_many.add_messages() = too_many.messages(0);
  EXPECT_THAT(engine.Plan(too_many).status().message(), HasSubstr("limits.max_messages (2)"));
  v1::ChatRequest both = Question();
  both.set_pipeline("nope");
  both.mutable_params()->set_temperature(3);
  EXPECT_THAT(engine.Plan(both).status().message(), HasSubstr("params.temperature"))
      << "params are checked before the pipeline is looked up";
  v1::ChatRequest unknown = Question();
  unknown.set_pipeline("nope");
  EXPECT_EQ(engine.Plan(unknown).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(EngineTest, ASlotComesBackAfterTheCallsLastEvent) {
  FakeGenerationBackend held([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  });
  Engine engine = MakeEngine(held);
  auto slot = engine.Admit();
  ASSERT_TRUE(slot.ok());
  EXPECT_EQ(engine.Admit().status().code(), absl::StatusCode::kResourceExhausted)
      << "max_inflight is 1";
  auto sink = std::make_shared<NullSink>();
  auto call = engine.Start(*std::move(slot), *engine.Plan(Question()), sink);
  EXPECT_EQ(admission_.inflight(), 1);
  call->Cancel();
  ASSERT_EQ(sink->statuses.size(), 1u);
  EXPECT_EQ(admission_.inflight(), 0);
  admission_.BeginDrain();
  EXPECT_EQ(engine.Admit().status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(EngineTest, AnUnusedSlotGivesItselfBack) {
  Engine engine = MakeEngine(proposers_);
  {
    auto slot = engine.Admit();
    ASSERT_TRUE(slot.ok());
    EXPECT_EQ(admission_.inflight(), 1);
  }
  EXPECT_EQ(admission_.inflight(), 0);
}

}  // namespace
}  // namespace moa::orchestrator
