// The whole cluster as real processes (simulator, proposers, aggregator,
// orchestrator) on loopback: what every model was asked, checked through the
// simulator's request log, failures, cancellation, deadlines and validation.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/synthesis/synthesis.h"
#include "tests/support/local_cluster.h"
#include "tools/upstream-sim/answer.h"

namespace moa {
namespace {

using ::moa::testing::LocalCluster;
using ::moa::testing::WaitFor;
using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr char kProfiles[] =
    R"(default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 12}
models:
  slow1: {time_to_first_token: 0.05, tokens_per_second: 20, answer_tokens: 400}
  slow2: {time_to_first_token: 0.05, tokens_per_second: 20, answer_tokens: 400}
  slowagg: {time_to_first_token: 0.02, tokens_per_second: 20, answer_tokens: 400}
  broken: {faults: {http_500: 1}}
  broken2: {faults: {http_500: 1}}
)";

// Pipelines whose tests read every proposal say so (min_proposals: all): the
// default policy may cut the last of 3 or 4 when the machine is busy.
constexpr char kPipelines[] = R"(pipelines:
  two: {layers: [[a, b, c, d]], aggregator: z, policy: {min_proposals: all}}
  three: {layers: [[a, b], [c, d]], aggregator: z}
  partial: {layers: [[a, broken, b]], aggregator: z}
  allfail: {layers: [[broken, broken2]], aggregator: z}
  slow: {layers: [[slow1, slow2]], aggregator: z}
  slowanswer: {layers: [[a, b]], aggregator: slowagg}
  tuned: {layers: [[a]], aggregator: z, temperature: 0.3, max_tokens: 7}
default_pipeline: two
)";

struct Outcome {
  grpc::Status status;
  std::string answer;
  std::vector<v1::ChatEvent> events;
};

class MoaClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::ClusterSpec spec;
    spec.models = {"a", "b", "c", "d", "z", "broken", "broken2", "slow1", "slow2", "slowagg"};
    spec.pipelines_yaml = kPipelines;
    spec.sim_profiles_yaml = kProfiles;
    cluster_ = new LocalCluster(spec);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(cluster_->ok()) << cluster_->error();
    since_ = cluster_->LastSimRequestId();
  }

  static v1::ChatRequest Ask(const std::string& pipeline, const std::string& question) {
    v1::ChatRequest req;
    req.set_pipeline(pipeline);
    auto* m = req.add_messages();
    m->set_role(v1::ROLE_USER);
    m->set_content(question);
    return req;
  }

  static Outcome Run(const v1::ChatRequest& req, absl::Duration deadline = absl::Seconds(20)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    auto reader = cluster_->stub().Chat(&ctx, req);
    Outcome out;
    v1::ChatEvent e;
    while (reader->Read(&e)) {
      if (e.has_answer_delta()) out.answer += e.answer_delta();
      out.events.push_back(e);
    }
    out.status = reader->Finish();
    return out;
  }

  // The simulator requests this test caused, by model, in arrival order.
  std::map<std::string, std::vector<json>> RequestsByModel() {
    std::map<std::string, std::vector<json>> by_model;
    for (const json& r : cluster_->SimRequests(since_)) {
      by_model[r["model"].get<std::string>()].push_back(r);
    }
    return by_model;
  }

  static std::string SimAnswer(const std::string& model, const std::vector<sim::SimMessage>& m) {
    return absl::StrJoin(sim::AnswerTokens(model, m, 12), "");
  }

  static json Plain(const std::string& question) {
    return json::array({{{"role", "user"}, {"content", question}}});
  }

  static LocalCluster* cluster_;
  int64_t since_ = 0;
};

LocalCluster* MoaClusterTest::cluster_ = nullptr;

TEST_F(MoaClusterTest, TwoLayersLayerOneSeesThePlainConversationFinalSeesAnswersInModelOrder) {
  Outcome out = Run(Ask("two", "What is MoA?"));
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  auto by_model = RequestsByModel();
  std::vector<synthesis::Reference> refs;
  for (const std::string m : {"a", "b", "c", "d"}) {
    ASSERT_EQ(by_model[m].size(), 1u) << m;
    EXPECT_EQ(by_model[m][0]["messages"], Plain("What is MoA?")) << m;
    refs.push_back({m, SimAnswer(m, {{"user", "What is MoA?"}})});
  }
  ASSERT_EQ(by_model["z"].size(), 1u);
  const json& final_messages = by_model["z"][0]["messages"];
  ASSERT_EQ(final_messages.size(), 2u);
  EXPECT_EQ(final_messages[0]["role"], "system");
  EXPECT_EQ(final_messages[0]["content"],
            synthesis::SynthesisBlock(synthesis::DefaultInstruction(), refs))
      << "references numbered 1..4 in the layer's model order, texts as is";
  EXPECT_EQ(final_messages[1], Plain("What is MoA?")[0]);
  EXPECT_THAT(out.answer, HasSubstr("[z synthesis of 4 responses"));
  EXPECT_TRUE(out.events.front().has_accepted());
  EXPECT_EQ(out.events.front().accepted().pipeline(), "two");
  ASSERT_TRUE(out.events.back().has_summary());
  const v1::Summary& summary = out.events.back().summary();
  EXPECT_EQ(summary.layer_durations_size(), 1);
  EXPECT_EQ(summary.usage_size(), 5);
  EXPECT_EQ(summary.answer().model(), "z");
  EXPECT_EQ(summary.finish_reason(), "stop");
}

TEST_F(MoaClusterTest, ThreeLayersEachLayerSeesOnlyThePreviousLayersAnswers) {
  Outcome out = Run(Ask("three", "Explain layers."));
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  auto by_model = RequestsByModel();
  std::vector<synthesis::Reference> layer1 = {{"a", SimAnswer("a", {{"user", "Explain layers."}})},
                                              {"b", SimAnswer("b", {{"user", "Explain layers."}})}};
  std::string block1 = synthesis::SynthesisBlock(synthesis::DefaultInstruction(), layer1);
  std::vector<synthesis::Reference> layer2;
  for (const std::string m : {"c", "d"}) {
    ASSERT_EQ(by_model[m].size(), 1u);
    const json& msgs = by_model[m][0]["messages"];
    EXPECT_EQ(msgs[0]["content"], block1) << m << " saw layer 1's answers";
    layer2.push_back({m, SimAnswer(m, {{"system", block1}, {"user", "Explain layers."}})});
  }
  ASSERT_EQ(by_model["z"].size(), 1u);
  EXPECT_EQ(by_model["z"][0]["messages"][0]["content"],
            synthesis::SynthesisBlock(synthesis::DefaultInstruction(), layer2))
      << "the final call carries layer 2's answers only: references replace, never accumulate";
  ASSERT_TRUE(out.events.back().has_summary());
  EXPECT_EQ(out.events.back().summary().layer_durations_size(), 2);
}

TEST_F(MoaClusterTest, AnExistingSystemMessageIsKeptAndTheBlockAppended) {
  v1::ChatRequest req = Ask("two", "Hi");
  auto* sys = req.mutable_messages()->Add();
  sys->set_role(v1::ROLE_SYSTEM);
  sys->set_content("You are terse.");
  req.mutable_messages()->SwapElements(0, 1);
  ASSERT_TRUE(Run(req).status.ok());
  auto by_model = RequestsByModel();
  EXPECT_EQ(by_model["a"][0]["messages"][0]["content"], "You are terse.");
  std::string final_system = by_model["z"][0]["messages"][0]["content"];
  EXPECT_EQ(final_system.rfind("You are terse.\n\n", 0), 0u) << final_system;
  EXPECT_THAT(final_system, HasSubstr("Responses from models:\n1. "));
  EXPECT_EQ(by_model["z"][0]["messages"].size(), 2u) << "no second system message";
}

TEST_F(MoaClusterTest, AFailingModelIsLeftOutAndTheAnswerStillComes) {
  Outcome out = Run(Ask("partial", "Go"));
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_THAT(out.answer, HasSubstr("[z synthesis of 2 responses"));
  auto by_model = RequestsByModel();
  std::string final_system = by_model["z"][0]["messages"][0]["content"];
  EXPECT_THAT(final_system, HasSubstr("\n2. "));
  EXPECT_THAT(final_system, ::testing::Not(HasSubstr("\n3. ")));
  bool saw_failed = false;
  for (const auto& e : out.events) {
    if (e.has_proposal_failed()) {
      saw_failed = true;
      EXPECT_EQ(e.proposal_failed().ref().model(), "broken");
      EXPECT_EQ(e.proposal_failed().status().code(), grpc::StatusCode::UNAVAILABLE);
    }
  }
  EXPECT_TRUE(saw_failed);
}

TEST_F(MoaClusterTest, EveryModelOfALayerFailingIsUnavailableNamingEachModel) {
  Outcome out = Run(Ask("allfail", "Go"));
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(out.status.error_message(), HasSubstr("every model of layer 1 failed"));
  EXPECT_THAT(out.status.error_message(), HasSubstr("broken: UNAVAILABLE"));
  EXPECT_THAT(out.status.error_message(), HasSubstr("broken2: UNAVAILABLE"));
  EXPECT_TRUE(RequestsByModel()["z"].empty()) << "no final call without references";
}

TEST_F(MoaClusterTest, AMultiTurnConversationReachesEveryModelWithItsEarlierTurns) {
  v1::ChatRequest req = Ask("three", "First question");
  auto* a = req.add_messages();
  a->set_role(v1::ROLE_ASSISTANT);
  a->set_content("First answer");
  auto* u = req.add_messages();
  u->set_role(v1::ROLE_USER);
  u->set_content("Follow-up");
  ASSERT_TRUE(Run(req).status.ok());
  auto by_model = RequestsByModel();
  ASSERT_EQ(by_model.size(), 5u);
  for (const auto& [model, requests] : by_model) {
    const json& msgs = requests[0]["messages"];
    size_t n = msgs.size();
    ASSERT_GE(n, 3u) << model;
    EXPECT_EQ(msgs[n - 3]["content"], "First question") << model;
    EXPECT_EQ(msgs[n - 2]["role"], "assistant") << model;
    EXPECT_EQ(msgs[n - 2]["content"], "First answer") << model;
    EXPECT_EQ(msgs[n - 1]["content"], "Follow-up") << model;
  }
}

TEST_F(MoaClusterTest, PipelineSamplingDefaultsAndRequestOverridesReachTheUpstream) {
  ASSERT_TRUE(Run(Ask("tuned", "x")).status.ok());
  auto by_model = RequestsByModel();
  EXPECT_EQ(by_model["a"][0]["params"]["temperature"], 0.3);
  EXPECT_EQ(by_model["a"][0]["params"]["max_tokens"], 7);
  since_ = cluster_->LastSimRequestId();
  v1::ChatRequest req = Ask("tuned", "y");
  req.mutable_params()->set_temperature(1.1);
  req.mutable_params()->set_seed(5);
  ASSERT_TRUE(Run(req).status.ok());
  by_model = RequestsByModel();
  EXPECT_EQ(by_model["z"][0]["params"]["temperature"], 1.1);
  EXPECT_EQ(by_model["z"][0]["params"]["seed"], 5);
  EXPECT_EQ(by_model["z"][0]["params"]["max_tokens"], 7);
}

TEST_F(MoaClusterTest, ClientCancelDuringLayerOneClosesEveryUpstreamRequestWithin200ms) {
  grpc::ClientContext ctx;
  auto reader = cluster_->stub().Chat(&ctx, Ask("slow", "Take your time"));
  v1::ChatEvent e;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto by_model = RequestsByModel();
        return by_model["slow1"].size() == 1 && by_model["slow2"].size() == 1;
      },
      absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(200));  // Both are streaming now.
  absl::Time cancelled = absl::Now();
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitFor(
      [&] {
        auto by_model = RequestsByModel();
        return by_model["slow1"][0]["outcome"] == "client_closed" &&
               by_model["slow2"][0]["outcome"] == "client_closed";
      },
      absl::Milliseconds(200)))
      << cluster_->SimRequests(since_).dump();
  EXPECT_LT(absl::Now() - cancelled, absl::Milliseconds(250));
}

TEST_F(MoaClusterTest, ClientCancelDuringTheAnswerClosesTheFinalUpstreamRequest) {
  grpc::ClientContext ctx;
  auto reader = cluster_->stub().Chat(&ctx, Ask("slowanswer", "Stream it"));
  v1::ChatEvent e;
  bool got_answer = false;
  while (reader->Read(&e)) {
    if (e.has_answer_delta()) {
      got_answer = true;
      break;
    }
  }
  ASSERT_TRUE(got_answer);
  absl::Time cancelled = absl::Now();
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
  reader->Finish();
  EXPECT_TRUE(WaitFor([&] { return RequestsByModel()["slowagg"][0]["outcome"] == "client_closed"; },
                      absl::Milliseconds(200)))
      << cluster_->SimRequests(since_).dump();
  EXPECT_LT(absl::Now() - cancelled, absl::Milliseconds(250));
}

TEST_F(MoaClusterTest, ADeadlineGivesDeadlineExceededAndClosesTheUpstreamRequests) {
  Outcome out = Run(Ask("slow", "Too slow"), absl::Milliseconds(600));
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(WaitFor(
      [&] {
        auto by_model = RequestsByModel();
        return !by_model["slow1"].empty() && !by_model["slow2"].empty() &&
               by_model["slow1"][0]["outcome"] == "client_closed" &&
               by_model["slow2"][0]["outcome"] == "client_closed";
      },
      absl::Milliseconds(500)))
      << cluster_->SimRequests(since_).dump();
}

TEST_F(MoaClusterTest, InvalidRequestsGetAnActionableStatus) {
  struct Case {
    v1::ChatRequest req;
    grpc::StatusCode code;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back({Ask("nope", "x"), grpc::StatusCode::NOT_FOUND,
                   "pipeline 'nope' is not defined; available: two, three"});
  v1::ChatRequest empty;
  empty.set_pipeline("two");
  cases.push_back({empty, grpc::StatusCode::INVALID_ARGUMENT, "messages"});
  v1::ChatRequest unknown = Ask("", "x");
  unknown.mutable_spec()->add_reference_models("a");
  unknown.mutable_spec()->add_reference_models("ghost");
  unknown.mutable_spec()->set_aggregator("z");
  cases.push_back({unknown, grpc::StatusCode::INVALID_ARGUMENT,
                   "spec.reference_models[1]: model 'ghost' is not defined"});
  v1::ChatRequest negative = unknown;
  negative.mutable_spec()->clear_reference_models();
  negative.mutable_spec()->add_reference_models("a");
  negative.mutable_spec()->set_rounds(-1);
  cases.push_back({negative, grpc::StatusCode::INVALID_ARGUMENT, "spec.rounds must be in 1..8"});
  v1::ChatRequest too_many = negative;
  too_many.mutable_spec()->set_rounds(9);
  cases.push_back({too_many, grpc::StatusCode::INVALID_ARGUMENT, "got 9"});
  v1::ChatRequest bad_agg = negative;
  bad_agg.mutable_spec()->set_rounds(1);
  bad_agg.mutable_spec()->set_aggregator("nobody");
  cases.push_back({bad_agg, grpc::StatusCode::INVALID_ARGUMENT, "spec.aggregator: model 'nobody'"});
  v1::ChatRequest bad_param = Ask("two", "x");
  bad_param.mutable_params()->set_top_p(2);
  cases.push_back({bad_param, grpc::StatusCode::INVALID_ARGUMENT, "params.top_p"});
  for (const Case& c : cases) {
    Outcome out = Run(c.req);
    EXPECT_EQ(out.status.error_code(), c.code) << c.message << ": " << out.status.error_message();
    EXPECT_THAT(out.status.error_message(), HasSubstr(c.message));
  }
  EXPECT_TRUE(cluster_->SimRequests(since_).empty()) << "nothing reached an upstream";
}

TEST_F(MoaClusterTest, AnInlineSpecRunsItsRoundsAndStreamsProposalsWhenAsked) {
  v1::ChatRequest req = Ask("", "Inline");
  req.mutable_spec()->add_reference_models("a");
  req.mutable_spec()->add_reference_models("b");
  req.mutable_spec()->set_aggregator("c");
  req.mutable_spec()->set_rounds(2);
  req.set_stream_proposals(true);
  Outcome out = Run(req);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.events.front().accepted().pipeline(), "inline");
  EXPECT_EQ(out.events.front().accepted().layers_size(), 2);
  int deltas = 0, done = 0;
  for (const auto& e : out.events) {
    deltas += e.has_proposal_delta();
    done += e.has_proposal_done();
  }
  EXPECT_GT(deltas, 0);
  EXPECT_EQ(done, 4);
  auto by_model = RequestsByModel();
  EXPECT_EQ(by_model["a"].size(), 2u);
  EXPECT_EQ(by_model["c"].size(), 1u);
}

TEST_F(MoaClusterTest, ListPipelinesAndMetrics) {
  grpc::ClientContext ctx;
  v1::ListPipelinesResponse resp;
  ASSERT_TRUE(cluster_->stub().ListPipelines(&ctx, {}, &resp).ok());
  ASSERT_EQ(resp.pipelines_size(), 7);
  EXPECT_EQ(resp.pipelines(0).name(), "two");
  EXPECT_TRUE(resp.pipelines(0).default_());
  EXPECT_EQ(resp.pipelines(1).layers_size(), 2);
  EXPECT_EQ(resp.pipelines(6).params().max_tokens(), 7);

  ASSERT_TRUE(Run(Ask("two", "metrics")).status.ok());
  std::string m =
      moa::testing::HttpGet(
          absl::StrCat("http://127.0.0.1:", cluster_->orchestrator_metrics_port(), "/metrics"))
          .body;
  EXPECT_THAT(m, HasSubstr(R"(moa_requests_total{outcome="ok",pipeline="two"})"));
  EXPECT_THAT(
      m, HasSubstr(R"(moa_layer_duration_seconds_count{layer="1",pipeline="two",step="propose"})"));
  EXPECT_THAT(
      m,
      HasSubstr(
          R"(moa_proposal_duration_seconds_count{layer="1",model="a",outcome="ok",pipeline="two",role="proposer",step="propose"})"));
  EXPECT_THAT(
      m,
      HasSubstr(
          R"(moa_proposal_time_to_first_token_seconds_count{layer="final",model="z",pipeline="two",role="aggregator",step="aggregate"})"));
  EXPECT_THAT(m, HasSubstr(R"(moa_answer_time_to_first_token_seconds_count{pipeline="two"})"));
  EXPECT_THAT(m, HasSubstr(R"(moa_tokens_total{direction="completion",model="z",pipeline="two"})"));
  EXPECT_THAT(m, HasSubstr(R"(moa_requests_in_flight{pipeline="two"} 0)"));
}

}  // namespace
}  // namespace moa
