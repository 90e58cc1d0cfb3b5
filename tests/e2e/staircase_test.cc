// Staircase streaming through real processes on the simulator: what each
// aggregator step was sent (the simulator's request log), what the client
// received, failures and cancellation.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kUnfinished[] = "(unfinished) ";

// a and b write 40 tokens at 40/s (about 1 s); z is fast. Chunks of 4, 8,
// 16... tokens.
ClusterSpec StaircaseSpec(const std::string& b_profile = "{}") {
  ClusterSpec spec;
  spec.models = {"a", "b", "z"};
  spec.pipelines_yaml =
      "pipelines:\n"
      "  stair:\n    layers: [[a, b]]\n    aggregator: z\n"
      "    streaming: {mode: staircase, first_chunk_tokens: 4, growth: 2, max_steps: 5}\n"
      "  normal: {layers: [[a, b]], aggregator: z}\n"
      "default_pipeline: stair\n";
  spec.sim_profiles_yaml = absl::StrCat(
      "default: {time_to_first_token: 0.05, tokens_per_second: 40, answer_tokens: 40}\n"
      "models:\n  z: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 200}\n"
      "  b: ",
      b_profile, "\n");
  // One call per step in the log: no hedged duplicates.
  spec.orchestrator_flags = {"--hedge_budget=0", "--http_port=0"};
  return spec;
}

struct StepSent {
  std::vector<std::string> references;  // Without the unfinished mark.
  std::vector<bool> partial;
  std::string continued;  // The trailing assistant message (prefill), if any.
  std::string answer;     // What the simulator sent back.
  std::string outcome;
};

// The references of a synthesis block: "\n1. text\n2. text...".
StepSent ReadStep(const nlohmann::json& request) {
  StepSent step;
  step.answer = request["answer"];
  step.outcome = request["outcome"];
  for (const auto& m : request["messages"]) {
    const std::string content = m["content"];
    if (m["role"] == "assistant") step.continued = content;
    if (m["role"] != "system") continue;
    size_t at = content.find("Responses from models:");
    for (int i = 1; at != std::string::npos; ++i) {
      size_t start = content.find(absl::StrCat("\n", i, ". "), at);
      if (start == std::string::npos) break;
      start += absl::StrCat("\n", i, ". ").size();
      size_t end = content.find(absl::StrCat("\n", i + 1, ". "), start);
      std::string text =
          content.substr(start, end == std::string::npos ? std::string::npos : end - start);
      bool partial = absl::StartsWith(text, kUnfinished);
      if (partial) text = text.substr(sizeof(kUnfinished) - 1);
      step.references.push_back(text);
      step.partial.push_back(partial);
      at = start;
    }
  }
  return step;
}

std::vector<StepSent> StepsOf(LocalCluster& cluster) {
  std::vector<StepSent> steps;
  for (const auto& r : cluster.SimRequests()) {
    if (r["model"] == "z") steps.push_back(ReadStep(r));
  }
  return steps;
}

struct ChatRun {
  grpc::Status status;
  std::string answer;
  std::map<std::string, std::string> proposals;  // Whole texts, by model.
  std::vector<v1::AnswerStep> steps;
  std::vector<std::string> failed;
  std::optional<v1::Summary> summary;
};

ChatRun Ask(LocalCluster& cluster, const std::string& pipeline) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::ChatRequest request = UserQuestion("Why is the sky blue?");
  request.set_pipeline(pipeline);
  auto reader = cluster.stub().Chat(&context, request);
  ChatRun run;
  v1::ChatEvent event;
  while (reader->Read(&event)) {
    if (event.has_answer_delta()) run.answer += event.answer_delta();
    if (event.has_proposal_done()) {
      run.proposals[event.proposal_done().ref().model()] = event.proposal_done().text();
    }
    if (event.has_proposal_failed()) run.failed.push_back(event.proposal_failed().ref().model());
    if (event.has_answer_step()) run.steps.push_back(event.answer_step());
    if (event.has_summary()) run.summary = event.summary();
  }
  run.status = reader->Finish();
  return run;
}

TEST(StaircaseTest, EachStepCarriesLongerPrefixesAndTheStreamIsTheStepsInOrder) {
  LocalCluster cluster(StaircaseSpec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  ChatRun run = Ask(cluster, "stair");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  ASSERT_TRUE(run.summary);
  std::vector<StepSent> sent = StepsOf(cluster);
  ASSERT_GE(sent.size(), 2u) << "the answer started before the proposals ended";
  EXPECT_EQ(static_cast<int>(sent.size()), run.summary->answer_steps());
  EXPECT_EQ(run.steps.size(), sent.size());
  ASSERT_EQ(run.proposals.size(), 2u);
  const std::vector<std::string> whole = {run.proposals["a"], run.proposals["b"]};

  // Step 1: each proposal's first chunk only (4 tokens, estimated as 16 bytes).
  ASSERT_EQ(sent[0].references.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(sent[0].partial[i]);
    EXPECT_LE(sent[0].references[i].size(), 16u);
    EXPECT_FALSE(sent[0].references[i].empty());
    EXPECT_THAT(whole[i], StartsWith(sent[0].references[i]));
    EXPECT_LT(sent[0].references[i].size(), whole[i].size());
  }
  EXPECT_EQ(sent[0].continued, "") << "the first step starts the answer";
  // Later steps: longer prefixes, and the answer so far to continue.
  std::string so_far;
  for (size_t k = 0; k < sent.size(); ++k) {
    EXPECT_EQ(sent[k].outcome, "completed");
    EXPECT_EQ(sent[k].continued, so_far) << "step " << k + 1 << " continues the answer";
    if (k > 0) {
      for (size_t i = 0; i < sent[k].references.size(); ++i) {
        EXPECT_THAT(sent[k].references[i], StartsWith(sent[k - 1].references[i]));
        EXPECT_THAT(whole[i], StartsWith(sent[k].references[i]));
      }
    }
    so_far += sent[k].answer;
  }
  // The last step: every answer whole.
  EXPECT_EQ(sent.back().references, whole);
  EXPECT_EQ(sent.back().partial, std::vector<bool>({false, false}));
  EXPECT_TRUE(run.steps.back().last());
  // The client's stream is the steps' answers in order: no gap, no repeat.
  EXPECT_EQ(run.answer, so_far);
  // Usage counts every step's prompt.
  int64_t z_prompt = 0;
  for (const auto& u : run.summary->usage()) {
    if (u.model() == "z") z_prompt = u.usage().prompt_tokens();
  }
  EXPECT_EQ(z_prompt, run.summary->answer().usage().prompt_tokens());
  EXPECT_GT(z_prompt, 0);
}

TEST(StaircaseTest, AProposerFailingMidStreamIsDroppedFromTheNextStepOn) {
  // b sends half its answer, then the connection resets.
  LocalCluster cluster(StaircaseSpec("{faults: {reset: 1}}"));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  ChatRun run = Ask(cluster, "stair");
  ASSERT_TRUE(run.status.ok()) << run.status.error_message();
  EXPECT_EQ(run.failed, std::vector<std::string>({"b"}));
  std::vector<StepSent> sent = StepsOf(cluster);
  ASSERT_GE(sent.size(), 2u);
  EXPECT_EQ(sent[0].references.size(), 2u) << "b had its first chunk";
  bool dropped = false;
  for (const StepSent& s : sent) {
    if (s.references.size() == 1) dropped = true;
    if (dropped) {
      ASSERT_EQ(s.references.size(), 1u) << "never back once dropped";
      EXPECT_THAT(run.proposals["a"], StartsWith(s.references[0]));
    }
  }
  EXPECT_TRUE(dropped);
  EXPECT_EQ(sent.back().references, std::vector<std::string>({run.proposals["a"]}));
}

TEST(StaircaseTest, CancelClosesEveryOpenUpstreamCall) {
  ClusterSpec spec = StaircaseSpec();
  // z slow enough that a step is streaming when the client goes.
  spec.sim_profiles_yaml =
      "default: {time_to_first_token: 0.05, tokens_per_second: 40, answer_tokens: 200}\n"
      "models:\n  z: {time_to_first_token: 0.01, tokens_per_second: 2, answer_tokens: 200}\n";
  LocalCluster cluster(spec);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  grpc::ClientContext context;
  auto reader = cluster.stub().Chat(&context, UserQuestion("Why is the sky blue?"));
  v1::ChatEvent event;
  bool answering = false;
  while (!answering && reader->Read(&event)) answering = event.has_answer_delta();
  ASSERT_TRUE(answering);
  context.TryCancel();
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int> closed;
        for (const auto& r : cluster.SimRequests()) {
          if (r["outcome"] == "in_progress") return false;
          if (r["outcome"] == "client_closed") ++closed[r["model"]];
        }
        return closed["a"] == 1 && closed["b"] == 1 && closed["z"] == 1;
      },
      absl::Seconds(5)))
      << cluster.SimRequests().dump();
}

TEST(StaircaseTest, AnHttpRequestTurnsItOnForANormalPipeline) {
  LocalCluster cluster(StaircaseSpec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  HttpResult result = HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster.orchestrator_http_port(), "/v1/chat/completions"),
      R"({"model": "normal", "messages": [{"role": "user", "content": "Why?"}],)"
      R"( "moa_streaming": {"mode": "staircase", "first_chunk_tokens": 2}})",
      {"Content-Type: application/json"});
  ASSERT_EQ(result.status, 200) << result.body;
  auto body = nlohmann::json::parse(result.body);
  EXPECT_GE(body["moa"]["answer_steps"].get<int>(), 2) << result.body;
  HttpResult bad = HttpRequest(
      "POST",
      absl::StrCat("http://127.0.0.1:", cluster.orchestrator_http_port(), "/v1/chat/completions"),
      R"({"model": "normal", "messages": [{"role": "user", "content": "Why?"}],)"
      R"( "moa_streaming": {"mode": "staircase", "growth": 0.5}})",
      {"Content-Type: application/json"});
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("growth"));
  // And a normal request stays one step.
  ChatRun normal = Ask(cluster, "normal");
  ASSERT_TRUE(normal.status.ok());
  EXPECT_EQ(normal.summary->answer_steps(), 1);
  EXPECT_TRUE(normal.steps.empty()) << "no step events in normal streaming";
}

}  // namespace
}  // namespace moa::testing
