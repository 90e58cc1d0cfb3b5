#include "tools/upstream-sim/answer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/upstream-sim/profiles.h"

namespace moa::sim {
namespace {

using ::testing::HasSubstr;

std::string Join(const std::vector<std::string>& tokens) { return absl::StrJoin(tokens, ""); }

TEST(SimAnswerTest, DeterministicPerModelAndConversationAndNamesTheModel) {
  std::vector<SimMessage> conv = {{"user", "What is MoA?"}};
  std::string a = Join(AnswerTokens("alpha", conv, 20));
  EXPECT_EQ(a, Join(AnswerTokens("alpha", conv, 20)));
  EXPECT_NE(a, Join(AnswerTokens("beta", conv, 20)));
  EXPECT_NE(a, Join(AnswerTokens("alpha", {{"user", "Something else"}}, 20)));
  EXPECT_THAT(a, HasSubstr("[alpha answer"));
  EXPECT_EQ(AnswerTokens("alpha", conv, 20).size(), 20u);
}

TEST(SimAnswerTest, SaysHowManyNumberedReferencesItSaw) {
  std::vector<SimMessage> conv = {
      {"system", "Synthesize.\n\nResponses from models:\n1. first\n2. second\n3. third"},
      {"user", "q"}};
  EXPECT_EQ(CountReferences(conv), 3);
  EXPECT_THAT(Join(AnswerTokens("agg", conv, 30)), HasSubstr("[agg synthesis of 3 responses"));
  EXPECT_EQ(CountReferences({{"system", "Just be helpful."}, {"user", "q"}}), 0);
  EXPECT_EQ(CountReferences({{"user", "Responses from models:\n1. x"}}), 0)
      << "only the system message carries references";
}

TEST(SimAnswerTest, PromptTokensCountWordsPlusPerMessageOverhead) {
  EXPECT_EQ(PromptTokens({{"user", "one two three"}}), 7);
  EXPECT_EQ(PromptTokens({{"system", "a"}, {"user", "b c"}}), 11);
}

TEST(SimProfilesTest, ParsesDefaultModelsAndFaults) {
  auto p = ParseProfiles(R"(default:
  time_to_first_token: 0.5
  tokens_per_second: 20
  answer_tokens: 10
models:
  slow:
    time_to_first_token: {median: 2, sigma: 0.3}
  flaky:
    faults: {http_500: 0.25, http_429: 0.25, retry_after_seconds: 2}
)",
                         "p.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->For("unknown").ttft_median_seconds, 0.5);
  EXPECT_EQ(p->For("slow").ttft_median_seconds, 2);
  EXPECT_EQ(p->For("slow").ttft_sigma, 0.3);
  EXPECT_EQ(p->For("slow").tokens_per_second, 20) << "models inherit the default";
  EXPECT_EQ(p->For("flaky").faults.http_500, 0.25);
  EXPECT_EQ(p->For("flaky").faults.retry_after_seconds, 2);
}

TEST(SimAnswerTest, AnAnswerTextShareChoosesTheSameQuestionsForEveryModel) {
  auto p = ParseProfiles("default: {answer_text: 'Paris.', answer_text_share: 0.3}\n", "p.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->For("a").answer_text_share, 0.3);
  int in = 0;
  for (int i = 0; i < 1000; ++i) {
    std::vector<SimMessage> m = {{"system", "Be brief."},
                                 {"user", "Question " + std::to_string(i)}};
    const bool chosen = QuestionInShare(m, 0.3);
    EXPECT_EQ(chosen, QuestionInShare(m, 0.3)) << "stable";
    in += chosen;
  }
  EXPECT_NEAR(in, 300, 60);
  EXPECT_TRUE(QuestionInShare({}, 1));
  EXPECT_FALSE(QuestionInShare({{"user", "x"}}, 0));
  EXPECT_THAT(ParseProfiles("default: {answer_text_share: 2}\n", "p.yaml").status().message(),
              HasSubstr("answer_text_share"));
}

TEST(SimProfilesTest, RejectsUnknownKeysAndImpossibleRates) {
  EXPECT_THAT(ParseProfiles("default: {tokens_per_sec: 3}\n", "p.yaml").status().message(),
              HasSubstr("unknown key 'tokens_per_sec'"));
  EXPECT_THAT(
      ParseProfiles("default: {faults: {http_500: 0.8, hang: 0.8}}\n", "p.yaml").status().message(),
      HasSubstr("add up to more than 1"));
  EXPECT_THAT(ParseProfiles("default: {faults: {reset: 2}}\n", "p.yaml").status().message(),
              HasSubstr("default.faults.reset must be a number in [0, 1]"));
}

TEST(SimProfilesTest, LognormalTimeToFirstTokenHasTheConfiguredMedian) {
  Profile p;
  p.ttft_median_seconds = 1.0;
  p.ttft_sigma = 0.5;
  std::mt19937_64 rng(3);
  int below = 0;
  for (int i = 0; i < 2000; ++i) below += p.SampleTimeToFirstToken(rng) < absl::Seconds(1);
  EXPECT_GT(below, 900);
  EXPECT_LT(below, 1100);
}

TEST(SimAnswerTest, AContinuationGetsTheRestOfTheAnswerItWouldHaveGiven) {
  std::vector<SimMessage> conversation = {{"user", "q"}};
  auto whole = AnswerTokens("m", conversation, 10);
  std::string text;
  for (const auto& t : whole) text += t;
  // Cut inside the fourth token.
  const size_t cut = whole[0].size() + whole[1].size() + whole[2].size() + 2;
  std::vector<SimMessage> prefill = conversation;
  prefill.push_back({"assistant", text.substr(0, cut)});
  Continuation c = FindContinuation(prefill);
  ASSERT_EQ(c.kind, Continuation::Kind::kPrefill);
  EXPECT_EQ(c.preceding.size(), 1u);
  std::string rest;
  for (const auto& t : TokensAfter(AnswerTokens("m", c.preceding, 10), c.prefix)) rest += t;
  EXPECT_EQ(text.substr(0, cut) + rest, text);

  std::vector<SimMessage> instruction = conversation;
  instruction.push_back({"user", absl::StrCat(kContinueInstruction, text.substr(0, 5))});
  c = FindContinuation(instruction);
  ASSERT_EQ(c.kind, Continuation::Kind::kInstruction);
  EXPECT_EQ(c.prefix, text.substr(0, 5));

  EXPECT_EQ(FindContinuation(conversation).kind, Continuation::Kind::kNone);
  // A prefix that is not the answer's start cannot be continued: the whole answer.
  EXPECT_EQ(TokensAfter(whole, "something else").size(), whole.size());
}

}  // namespace
}  // namespace moa::sim
