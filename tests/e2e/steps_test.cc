// Composable pipeline steps through real processes on the simulator: what
// every upstream call of each step carried (the simulator's request log),
// in what order, and what the next step received.
#include "services/orchestrator/engine/steps.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/synthesis/synthesis.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kJudgeNotes[] = "JUDGE-NOTES: both say the same";

// The answered request: its events, and each model's request in the
// simulator's log.
struct Answered {
  grpc::Status status;
  std::vector<v1::ChatEvent> events;
  std::map<std::string, std::vector<json>> requests;  // By model, in order.
  std::string answer;
  std::vector<const v1::StepApplied*> applied;
  std::map<std::string, std::string> texts;  // Each step answer's text, by model.
};

// The numbered references of a synthesis block in a request's system
// message (each cut at its end: texts here hold no blank line).
std::vector<std::string> References(const json& request) {
  std::vector<std::string> refs;
  for (const auto& m : request["messages"]) {
    if (m["role"] != "system") continue;
    const std::string content = m["content"];
    size_t at = content.find("Responses from models:");
    for (int i = 1; at != std::string::npos; ++i) {
      const std::string mark = absl::StrCat("\n", i, ". ");
      size_t start = content.find(mark, at);
      if (start == std::string::npos) break;
      start += mark.size();
      size_t end = content.find('\n', start);
      refs.push_back(content.substr(start, end == std::string::npos ? end : end - start));
      at = start;
    }
  }
  return refs;
}

std::string SystemText(const json& request) {
  for (const auto& m : request["messages"]) {
    if (m["role"] == "system") return m["content"];
  }
  return "";
}

class StepsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A judge's instruction of our own, from a file (absolute: the cluster's
    // config is written elsewhere).
    prompt_file_ = ::testing::TempDir() + "moa-steps-judge-" + std::to_string(getpid()) + ".txt";
    std::ofstream(prompt_file_) << "OUR-JUDGE-INSTRUCTION: compare them.\n";
    ClusterSpec spec;
    spec.models = {"a",  "b",  "c", "d",      "r",    "j", "f",  "g", "v1",
                   "v2", "v3", "z", "broken", "hang", "u", "s1", "s2"};
    // Pipelines whose tests read every proposal say so (min_proposals: all):
    // the default policy may cut the last of 3 or 4 on a busy machine.
    spec.pipelines_yaml =
        "pipelines:\n"
        "  ranked: {steps: [{propose: [a, b, c]}, {rank: {model: r, keep: 2}}, {aggregate: z}],"
        " policy: {min_proposals: all}}\n"
        "  judged: {steps: [{propose: [a, b]}, {judge: {model: j}}, {aggregate: z}]}\n"
        "  shuffled: {steps: [{propose: [a, b, c, d]}, shuffle, {aggregate: z}],"
        " policy: {min_proposals: all}}\n"
        "  dropped: {steps: [{propose: [a, b, c, d]}, {dropout: {rate: 1, min_keep: 2}},"
        " {aggregate: z}], policy: {min_proposals: all}}\n"
        "  voted: {steps: [{propose: [v1, v2, v3]}, vote], policy: {min_proposals: all}}\n"
        "  tied: {steps: [{propose: [v3, v1]}, vote]}\n"
        "  refined: {steps: [{propose: [a, b]}, {refine: [f, g]}, {aggregate: z}]}\n"
        "  synthesized: {steps: [{propose: [a, b]}, {synthesize: [c]}, {aggregate: z}]}\n"
        "  rank_broken: {steps: [{propose: [a, b, c]}, {rank: {model: broken, keep: 2}},"
        " {judge: {model: broken}}, {aggregate: z}], policy: {min_proposals: all}}\n"
        "  refine_hang:\n"
        "    steps: [{propose: [a, b]}, {refine: [f, hang]}, {aggregate: z}]\n"
        "    policy: {min_proposals: 1, straggler_grace_seconds: 0.3}\n"
        "  voted_utf8: {steps: [{propose: [u, v3]}, vote]}\n"
        "  judged_own: {steps: [{propose: [a, b]}, {judge: {model: j, prompt_file: '" +
        prompt_file_ +
        "'}}, {aggregate: z}]}\n"
        "  agreeing:\n"
        "    layers: [[v1, v2], [a, b]]\n"
        "    aggregator: z\n"
        "    early_stop: {}\n"
        "    policy: {min_proposals: all}\n"
        "  agreeing_then:\n"
        "    layers: [[v1, v2], [a, b]]\n"
        "    aggregator: z\n"
        "    early_stop: {then: aggregate}\n"
        "    policy: {min_proposals: all}\n"
        "  disagreeing:\n"
        "    layers: [[v1, v3]]\n"
        "    aggregator: z\n"
        "    early_stop: {}\n"
        "    policy: {min_proposals: all}\n"
        "  alike: {layers: [[s1, s2]], aggregator: z, early_stop: {similarity: 0.8},"
        " policy: {min_proposals: all}}\n"
        "  unalike: {layers: [[s1, v3]], aggregator: z, early_stop: {similarity: 0.8},"
        " policy: {min_proposals: all}}\n"
        "default_pipeline: ranked\n";
    spec.sim_profiles_yaml = absl::StrCat(
        "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 12}\n"
        "models:\n"
        "  r: {time_to_first_token: 0.01, answer_text: '3, 1'}\n"
        "  j: {time_to_first_token: 0.01, answer_text: '",
        kJudgeNotes,
        "'}\n"
        "  v1: {time_to_first_token: 0.01, answer_text: 'Paris.'}\n"
        "  v2: {time_to_first_token: 0.01, answer_text: 'paris'}\n"
        "  v3: {time_to_first_token: 0.01, answer_text: 'Lyon'}\n"
        "  s1: {time_to_first_token: 0.01, answer_text: 'The capital of France is Paris.'}\n"
        "  s2: {time_to_first_token: 0.01, answer_text: 'The capital of France is Paris, of "
        "course.'}\n"
        "  broken: {faults: {http_500: 1}}\n"
        "  hang: {faults: {hang: 1}}\n"
        "  u: {time_to_first_token: 0.01, answer_text: '",
        std::string(31, 'x') + "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "'}\n");
    // One call per slot in the log: no hedged duplicates.
    spec.orchestrator_flags = {"--hedge_budget=0", "--http_port=0"};
    cluster_ = new LocalCluster(spec);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    std::remove(prompt_file_.c_str());
  }
  void SetUp() override { ASSERT_TRUE(cluster_->ok()) << cluster_->error(); }

  static Answered Ask(const std::string& pipeline, std::optional<uint64_t> seed = std::nullopt) {
    Answered run;
    const int64_t since = cluster_->LastSimRequestId();
    v1::ChatRequest request = UserQuestion("What is composable MoA?");
    request.set_pipeline(pipeline);
    if (seed) request.set_step_seed(*seed);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    auto reader = cluster_->stub().Chat(&context, request);
    v1::ChatEvent event;
    while (reader->Read(&event)) run.events.push_back(event);
    run.status = reader->Finish();
    for (const v1::ChatEvent& e : run.events) {
      if (e.has_answer_delta()) run.answer += e.answer_delta();
      if (e.has_step_applied()) run.applied.push_back(&e.step_applied());
      if (e.has_proposal_done())
        run.texts[e.proposal_done().ref().model()] = e.proposal_done().text();
    }
    for (const json& r : cluster_->SimRequests(since)) run.requests[r["model"]].push_back(r);
    return run;
  }

  static LocalCluster* cluster_;
  static std::string prompt_file_;
};

LocalCluster* StepsTest::cluster_ = nullptr;
std::string StepsTest::prompt_file_;

TEST_F(StepsTest, RankOrdersTheTextsAndTheBestGoOnToTheAggregator) {
  Answered run = Ask("ranked");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  ASSERT_EQ(run.requests["r"].size(), 1u);
  const std::string rank_prompt = run.requests["r"][0]["messages"][0]["content"];
  EXPECT_THAT(rank_prompt, HasSubstr("Query:\nWhat is composable MoA?\n"));
  EXPECT_THAT(rank_prompt,
              HasSubstr(absl::StrCat("Response 1:\n", run.texts["a"], "\n\nResponse 2:\n",
                                     run.texts["b"], "\n\nResponse 3:\n", run.texts["c"], "\n")));
  EXPECT_THAT(rank_prompt, HasSubstr(orchestrator::DefaultRankInstruction()));
  // "3, 1", keep 2: c then a.
  ASSERT_EQ(run.requests["z"].size(), 1u);
  EXPECT_THAT(References(run.requests["z"][0]), ElementsAre(run.texts["c"], run.texts["a"]));
  ASSERT_EQ(run.applied.size(), 1u);
  EXPECT_EQ(run.applied[0]->kind(), "rank");
  EXPECT_EQ(run.applied[0]->step(), 2);
  EXPECT_THAT(run.applied[0]->kept(), ElementsAre("c", "a"));
  EXPECT_THAT(run.applied[0]->dropped(), ElementsAre("b"));
  EXPECT_THAT(run.answer, HasSubstr("z synthesis of 2 responses"));

  // `moa pipelines` lists the steps.
  Process list({BinaryPath("tools/moa/moa"), "--orchestrator=" + cluster_->orchestrator_address(),
                "pipelines"});
  ASSERT_EQ(list.Wait(absl::Seconds(20)), 0) << list.Output();
  EXPECT_THAT(list.Output(), HasSubstr("ranked (default): [a, b, c] -> rank [r] -> z\n"));
  EXPECT_THAT(list.Output(), HasSubstr("shuffled: [a, b, c, d] -> shuffle -> z\n"));
  EXPECT_THAT(list.Output(), HasSubstr("voted: [v1, v2, v3] -> vote\n"));
  EXPECT_THAT(list.Output(), HasSubstr("synthesized: [a, b] -> [c] -> z\n"));

  // The CLI's table shows the step, and the metrics carry its name.
  Process ask({BinaryPath("tools/moa/moa"), "--orchestrator=" + cluster_->orchestrator_address(),
               "ask", "--pipeline=ranked", "Hi"});
  ASSERT_EQ(ask.Wait(absl::Seconds(20)), 0) << ask.Output();
  EXPECT_THAT(ask.Output(), ::testing::ContainsRegex("\n2 rank +r +[0-9.]+s .* ok"));
  EXPECT_THAT(ask.Output(), ::testing::ContainsRegex("\n2 rank +- .* ok: kept c, a; dropped b"));
  const std::string metrics =
      HttpGet(absl::StrCat("http://127.0.0.1:", cluster_->orchestrator_metrics_port(), "/metrics"))
          .body;
  EXPECT_THAT(metrics, HasSubstr(R"(moa_proposal_duration_seconds_count{layer="2",model="r",)"
                                 R"(outcome="ok",pipeline="ranked",role="proposer",step="rank"})"));
}

TEST_F(StepsTest, AJudgesAnalysisGoesToTheAggregatorWithTheTexts) {
  Answered run = Ask("judged");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  ASSERT_EQ(run.requests["j"].size(), 1u);
  const std::string judge_prompt = run.requests["j"][0]["messages"][0]["content"];
  EXPECT_THAT(judge_prompt, HasSubstr(run.texts["a"]));
  EXPECT_THAT(judge_prompt, HasSubstr(run.texts["b"]));
  EXPECT_THAT(judge_prompt, HasSubstr(orchestrator::DefaultJudgeInstruction()));
  ASSERT_EQ(run.requests["z"].size(), 1u);
  EXPECT_THAT(References(run.requests["z"][0]), ElementsAre(run.texts["a"], run.texts["b"]));
  EXPECT_THAT(SystemText(run.requests["z"][0]),
              HasSubstr(absl::StrCat("\n\n", synthesis::kAnalysisHeading, "\n", kJudgeNotes)));
  ASSERT_EQ(run.applied.size(), 1u);
  EXPECT_EQ(run.applied[0]->kind(), "judge");

  Answered own = Ask("judged_own");
  ASSERT_TRUE(own.status.ok()) << own.status.error_message();
  const std::string own_prompt = own.requests["j"][0]["messages"][0]["content"];
  EXPECT_THAT(own_prompt, HasSubstr("\nOUR-JUDGE-INSTRUCTION: compare them."))
      << "the prompt_file replaces our instruction";
  EXPECT_THAT(own_prompt, ::testing::Not(HasSubstr(orchestrator::DefaultJudgeInstruction())));
}

TEST_F(StepsTest, ShuffleIsReplayedFromItsRecordedSeedOverGrpcAndHttp) {
  Answered first = Ask("shuffled");
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  ASSERT_EQ(first.applied.size(), 1u);
  const uint64_t seed = first.applied[0]->seed();
  std::vector<std::string> order(first.applied[0]->kept().begin(), first.applied[0]->kept().end());
  EXPECT_THAT(order, ::testing::UnorderedElementsAre("a", "b", "c", "d"));
  std::vector<std::string> expected;
  for (const std::string& m : order) expected.push_back(first.texts[m]);
  EXPECT_EQ(References(first.requests["z"][0]), expected) << "the aggregator sees the new order";

  Answered replay = Ask("shuffled", seed);
  ASSERT_TRUE(replay.status.ok());
  ASSERT_EQ(replay.applied.size(), 1u);
  EXPECT_EQ(replay.applied[0]->seed(), seed);
  EXPECT_THAT(replay.applied[0]->kept(), ::testing::ElementsAreArray(order));
  EXPECT_EQ(References(replay.requests["z"][0]), expected);

  const int64_t since = cluster_->LastSimRequestId();
  HttpResult http = HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster_->orchestrator_http_port(), "/v1/chat/completions"),
      absl::StrCat(R"({"model": "shuffled", "moa_step_seed": )", seed,
                   R"(, "messages": [{"role": "user", "content": "What is composable MoA?"}]})"),
      {"Content-Type: application/json"});
  ASSERT_EQ(http.status, 200) << http.body;
  for (const json& r : cluster_->SimRequests(since)) {
    if (r["model"] == "z") {
      EXPECT_EQ(References(r), expected) << "the same order over HTTP";
    }
  }
  // The CLI replays it too, and its table shows the seed and the order.
  Process ask({BinaryPath("tools/moa/moa"), "--orchestrator=" + cluster_->orchestrator_address(),
               "ask", "--pipeline=shuffled", absl::StrCat("--step_seed=", seed), "Hi"});
  ASSERT_EQ(ask.Wait(absl::Seconds(20)), 0) << ask.Output();
  EXPECT_THAT(ask.Output(),
              HasSubstr(absl::StrCat("ok: kept ", absl::StrJoin(order, ", "), "; seed ", seed)));
  Process bad({BinaryPath("tools/moa/moa"), "--orchestrator=" + cluster_->orchestrator_address(),
               "ask", "--pipeline=shuffled", "--step_seed=-1", "Hi"});
  EXPECT_EQ(bad.Wait(absl::Seconds(20)), 2) << bad.Output();

  // Other seeds give other orders (one of the next ten at least).
  bool differs = false;
  for (uint64_t other = seed + 1; other <= seed + 10 && !differs; ++other) {
    Answered again = Ask("shuffled", other);
    ASSERT_EQ(again.applied.size(), 1u);
    differs = !std::equal(order.begin(), order.end(), again.applied[0]->kept().begin());
  }
  EXPECT_TRUE(differs);
}

TEST_F(StepsTest, DropoutKeepsMinKeepTextsFirstOnesFirst) {
  Answered run = Ask("dropped");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  ASSERT_EQ(run.applied.size(), 1u);
  EXPECT_THAT(run.applied[0]->kept(), ElementsAre("a", "b"));
  EXPECT_THAT(run.applied[0]->dropped(), ElementsAre("c", "d"));
  EXPECT_THAT(References(run.requests["z"][0]), ElementsAre(run.texts["a"], run.texts["b"]));
}

TEST_F(StepsTest, TheVoteAnswersTheMostFrequentTextAndATieGoesToTheFirst) {
  Answered run = Ask("voted");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(run.answer, "Paris.") << "Paris. and paris are one answer, twice; Lyon once";
  EXPECT_EQ(run.requests.count("z"), 0u) << "no aggregator call";
  ASSERT_EQ(run.applied.size(), 1u);
  EXPECT_EQ(run.applied[0]->kind(), "vote");
  EXPECT_THAT(run.applied[0]->kept(), ElementsAre("v1"));
  EXPECT_THAT(run.applied[0]->note(), HasSubstr("\"paris\" 2"));
  ASSERT_TRUE(run.events.back().has_summary());
  EXPECT_EQ(run.events.back().summary().answer().model(), "vote");

  Answered tie = Ask("tied");
  ASSERT_TRUE(tie.status.ok());
  EXPECT_EQ(tie.answer, "Lyon") << "one vote each: the first text wins";

  // A long answer's key is shortened in the note on a UTF-8 boundary (an
  // event is a protobuf string: cut inside a character, it would not go out).
  Answered utf8 = Ask("voted_utf8");
  ASSERT_TRUE(utf8.status.ok()) << utf8.status.error_message();
  ASSERT_EQ(utf8.applied.size(), 1u);
  EXPECT_THAT(utf8.applied[0]->note(),
              HasSubstr(std::string(31, 'x') + "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9..."));
}

// Early stop: answers that agree (the vote's normalized equality) skip the
// later layer and the aggregator, which the simulator never hears from;
// answers that do not agree go on to the aggregator as usual.
TEST_F(StepsTest, AgreeingAnswersSkipTheLaterStepsAndTheAggregator) {
  Answered run = Ask("agreeing");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(run.answer, "Paris.");
  EXPECT_EQ(run.requests.count("z"), 0u) << "no aggregator call";
  EXPECT_EQ(run.requests.count("a") + run.requests.count("b"), 0u) << "no second layer";
  EXPECT_EQ(run.requests["v1"].size(), 1u);
  ASSERT_EQ(run.applied.size(), 1u);
  EXPECT_EQ(run.applied[0]->kind(), "early_stop");
  EXPECT_EQ(run.applied[0]->step(), 1);
  EXPECT_THAT(run.applied[0]->kept(), ElementsAre("v1"));
  EXPECT_THAT(run.applied[0]->note(),
              HasSubstr("2 answers agree (least alike pair 1.00, needed 1.00); 1 later step(s) "
                        "and the aggregator skipped; the answer is v1's"));
  ASSERT_TRUE(run.events.back().has_summary());
  EXPECT_EQ(run.events.back().summary().answer().model(), "v1");
  EXPECT_EQ(run.events.back().summary().skipped_calls(), 3) << "a and b of layer 2, and z";

  Answered apart = Ask("disagreeing");
  ASSERT_TRUE(apart.status.ok()) << apart.status.error_message();
  EXPECT_EQ(apart.requests["z"].size(), 1u) << "Paris and Lyon: the aggregator decides";
  EXPECT_TRUE(apart.applied.empty());
  ASSERT_TRUE(apart.events.back().has_summary());
  EXPECT_EQ(apart.events.back().summary().skipped_calls(), 0);

  // Word-set overlap: 6 of 7 words shared (0.86) clears 0.8; no word shared
  // with "Lyon" does not.
  Answered alike = Ask("alike");
  ASSERT_TRUE(alike.status.ok()) << alike.status.error_message();
  EXPECT_EQ(alike.requests.count("z"), 0u);
  ASSERT_EQ(alike.applied.size(), 1u);
  EXPECT_THAT(alike.applied[0]->note(), HasSubstr("least alike pair 0.86, needed 0.80"));
  Answered unalike = Ask("unalike");
  ASSERT_TRUE(unalike.status.ok()) << unalike.status.error_message();
  EXPECT_EQ(unalike.requests["z"].size(), 1u);
}

TEST_F(StepsTest, ThenAggregateAsksTheAggregatorWithTheAgreedAnswerAlone) {
  Answered run = Ask("agreeing_then");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(run.requests.count("a") + run.requests.count("b"), 0u) << "no second layer";
  ASSERT_EQ(run.requests["z"].size(), 1u) << "the aggregator writes the answer";
  EXPECT_THAT(References(run.requests["z"][0]), ElementsAre("Paris.")) << "one reference";
  ASSERT_EQ(run.applied.size(), 1u);
  EXPECT_EQ(run.applied[0]->kind(), "early_stop");
  EXPECT_THAT(run.applied[0]->note(),
              HasSubstr("1 later step(s) skipped; the aggregator writes the answer from v1's "
                        "alone"));
  ASSERT_TRUE(run.events.back().has_summary());
  EXPECT_EQ(run.events.back().summary().answer().model(), "z");
  EXPECT_EQ(run.events.back().summary().skipped_calls(), 2) << "a and b of layer 2";
}

TEST_F(StepsTest, RefineImprovesEachTextOnItsOwnWithItsOwnModel) {
  Answered run = Ask("refined");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  for (const auto& [refiner, writer] :
       {std::pair<std::string, std::string>{"f", "a"}, {"g", "b"}}) {
    ASSERT_EQ(run.requests[refiner].size(), 1u) << refiner;
    const json& messages = run.requests[refiner][0]["messages"];
    const size_t n = messages.size();
    ASSERT_GE(n, 3u);
    EXPECT_EQ(messages[n - 3]["content"], "What is composable MoA?");
    EXPECT_EQ(messages[n - 2]["role"], "assistant");
    EXPECT_EQ(messages[n - 2]["content"], run.texts[writer]) << refiner << " refines " << writer;
    EXPECT_EQ(messages[n - 1]["content"], orchestrator::DefaultRefineInstruction());
  }
  EXPECT_THAT(References(run.requests["z"][0]), ElementsAre(run.texts["f"], run.texts["g"]));
}

TEST_F(StepsTest, SynthesizeGivesEachModelThePreviousTexts) {
  Answered run = Ask("synthesized");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  ASSERT_EQ(run.requests["c"].size(), 1u);
  EXPECT_THAT(References(run.requests["c"][0]), ElementsAre(run.texts["a"], run.texts["b"]));
  EXPECT_THAT(References(run.requests["z"][0]), ElementsAre(run.texts["c"]));
}

// A bad model in a step that judges or refines never costs the answer: a
// failed rank keeps the order, a failed judge gives no analysis, and a
// refine that hangs is cut by the layer's policy and its draft goes on.
TEST_F(StepsTest, AFailedRankJudgeOrRefineLeavesTheTextsAsTheyWere) {
  Answered broken = Ask("rank_broken");
  ASSERT_TRUE(broken.status.ok()) << broken.status.error_message();
  ASSERT_EQ(broken.applied.size(), 2u);
  EXPECT_THAT(broken.applied[0]->kept(), ElementsAre("a", "b"));
  EXPECT_THAT(broken.applied[0]->note(),
              HasSubstr("broken did not answer; the texts keep their order"));
  EXPECT_THAT(broken.applied[1]->note(), HasSubstr("broken gave no analysis"));
  ASSERT_EQ(broken.requests["z"].size(), 1u);
  EXPECT_THAT(References(broken.requests["z"][0]),
              ElementsAre(broken.texts["a"], broken.texts["b"]));
  EXPECT_THAT(SystemText(broken.requests["z"][0]),
              ::testing::Not(HasSubstr(synthesis::kAnalysisHeading)));

  const absl::Time start = absl::Now();
  Answered hung = Ask("refine_hang");
  ASSERT_TRUE(hung.status.ok()) << hung.status.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "the hanging refine was not waited for";
  bool cut = false;
  for (const v1::ChatEvent& e : hung.events) {
    cut |= e.has_proposal_straggler() && e.proposal_straggler().ref().model() == "hang";
  }
  EXPECT_TRUE(cut);
  ASSERT_EQ(hung.requests["z"].size(), 1u);
  EXPECT_THAT(References(hung.requests["z"][0]), ElementsAre(hung.texts["f"], hung.texts["b"]))
      << "f's refinement of a, and b's own draft";
}

}  // namespace
}  // namespace moa::testing
