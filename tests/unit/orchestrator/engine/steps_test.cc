// The composable steps' own logic: prompts, reading a ranking, seeded
// shuffle and dropout, the vote.
#include "services/orchestrator/engine/steps.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace moa::orchestrator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<synthesis::Reference> Texts(std::vector<std::string> texts) {
  std::vector<synthesis::Reference> out;
  for (size_t i = 0; i < texts.size(); ++i) out.push_back({"m" + std::to_string(i), texts[i]});
  return out;
}

TEST(StepsTest, ARankingIsTheNumbersInOrderThenTheRestInTheirOrder) {
  size_t named = 0;
  EXPECT_THAT(ReadRanking("3, 1, 2", 3, &named), ElementsAre(2, 0, 1));
  EXPECT_EQ(named, 3u);
  EXPECT_THAT(ReadRanking("Best is Response 2, then 2 again and 9.", 3, &named),
              ElementsAre(1, 0, 2));
  EXPECT_EQ(named, 1u) << "repeats and numbers out of range are ignored";
  EXPECT_THAT(ReadRanking("none of them", 2, &named), ElementsAre(0, 1));
  EXPECT_EQ(named, 0u);
  EXPECT_THAT(ReadRanking("99999999999999999999999 1", 2, &named), ElementsAre(0, 1));
  EXPECT_EQ(named, 1u) << "a huge number is no index";
  EXPECT_THAT(ReadRanking("0, 3", 3, &named), ElementsAre(2, 0, 1));
}

TEST(StepsTest, ShuffleIsAPermutationFixedByItsSeed) {
  for (uint64_t seed : {0ull, 1ull, 42ull, 0xffffffffffffffffull}) {
    std::vector<size_t> order = ShuffledOrder(8, seed);
    EXPECT_EQ(order, ShuffledOrder(8, seed)) << "the same seed, the same order";
    std::vector<size_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_THAT(sorted, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  }
  std::set<std::vector<size_t>> seen;
  for (uint64_t seed = 0; seed < 50; ++seed) seen.insert(ShuffledOrder(4, StepSeed(seed, 2)));
  EXPECT_GT(seen.size(), 12u) << "seeds give different orders";
  EXPECT_NE(StepSeed(7, 2), StepSeed(7, 3)) << "each step its own";
  EXPECT_TRUE(ShuffledOrder(0, 1).empty());
}

TEST(StepsTest, DropoutKeepsAtLeastMinKeepFirstOnesFirst) {
  EXPECT_THAT(DropoutKeeps(4, 1.0, 2, 9), ElementsAre(true, true, false, false));
  EXPECT_THAT(DropoutKeeps(3, 0.0, 1, 9), ElementsAre(true, true, true));
  EXPECT_THAT(DropoutKeeps(2, 1.0, 5, 9), ElementsAre(true, true)) << "min_keep over n keeps all";
  EXPECT_EQ(DropoutKeeps(6, 0.5, 1, 123), DropoutKeeps(6, 0.5, 1, 123));
  int kept = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    for (bool k : DropoutKeeps(10, 0.3, 1, StepSeed(seed, 1))) kept += k ? 1 : 0;
  }
  EXPECT_NEAR(kept / 2000.0, 0.7, 0.05) << "about 1 - rate of the texts stay";
}

TEST(StepsTest, TheVoteNormalizesAndATieGoesToTheFirstSeen) {
  EXPECT_EQ(VoteKey("  \"Paris.\" ", true), "paris");
  EXPECT_EQ(VoteKey("**The  Answer:  42**", true), "the answer: 42");
  EXPECT_EQ(VoteKey("-3", true), "-3") << "a sign is part of the answer";
  EXPECT_EQ(VoteKey(" Paris. ", false), "Paris.");
  VoteResult v = Vote(Texts({"Lyon", "Paris.", "paris", "PARIS!"}), true);
  EXPECT_EQ(v.winner, 1u) << "the winning key's first text";
  ASSERT_EQ(v.counts.size(), 2u);
  EXPECT_EQ(v.counts[0], (std::pair<std::string, int>{"lyon", 1}));
  EXPECT_EQ(v.counts[1], (std::pair<std::string, int>{"paris", 3}));
  EXPECT_EQ(Vote(Texts({"Lyon", "Paris", "Nice", "Paris", "Lyon"}), true).winner, 0u)
      << "a tie between Lyon and Paris goes to Lyon, seen first";
  EXPECT_EQ(Vote(Texts({"Paris", "paris", "Lyon"}), false).winner, 0u)
      << "without normalization all three differ: the first wins";
}

TEST(StepsTest, AgreementIsEqualityOrWordOverlapOfEveryPair) {
  EXPECT_EQ(Similarity("Paris.", " paris"), 1);
  EXPECT_EQ(Similarity("Paris", "Lyon"), 0);
  // {the, capital, of, france, is, paris} and one word more: 6 of 7.
  EXPECT_NEAR(
      Similarity("The capital of France is Paris.", "The capital of France is (Paris), of course!"),
      6.0 / 7, 1e-12);
  EXPECT_EQ(Similarity("", "..."), 1) << "both empty once normalized";
  EXPECT_EQ(Similarity("", "Paris"), 0);

  Agreement same = Agree(Texts({"Paris.", "paris", "PARIS!"}), 1, 2);
  EXPECT_TRUE(same.agreed);
  EXPECT_EQ(same.answer, 0u);
  EXPECT_EQ(same.lowest, 1);
  EXPECT_FALSE(Agree(Texts({"Paris", "paris", "Lyon"}), 1, 2).agreed) << "every pair must agree";
  EXPECT_FALSE(Agree(Texts({"Paris"}), 1, 2).agreed) << "one answer is no agreement";
  EXPECT_FALSE(Agree(Texts({"Paris", "paris"}), 1, 3).agreed) << "fewer than min_answers";
  // The answer is the text most like the others: the middle one here.
  Agreement near = Agree(Texts({"a b c d", "a b c d e", "a b c d e f"}), 0.6, 2);
  EXPECT_TRUE(near.agreed);
  EXPECT_EQ(near.answer, 1u);
  EXPECT_NEAR(near.lowest, 4.0 / 6, 1e-12);
  EXPECT_FALSE(Agree(Texts({"a b c d", "a b c d e", "a b c d e f"}), 0.7, 2).agreed);
}

TEST(StepsTest, CompareAndRefinePromptsCarryTheTextsAndTheInstruction) {
  std::vector<llm::Message> conversation = {{llm::Role::kSystem, "Be terse."},
                                            {llm::Role::kUser, "First question"},
                                            {llm::Role::kAssistant, "First answer"},
                                            {llm::Role::kUser, "What is MoA?"}};
  auto compare = CompareMessages(conversation, Texts({"one", "two"}), DefaultRankInstruction());
  ASSERT_EQ(compare.size(), 1u);
  EXPECT_EQ(compare[0].role, llm::Role::kUser);
  EXPECT_THAT(compare[0].content,
              HasSubstr("Query:\nWhat is MoA?\n\nResponse 1:\none\n\nResponse 2:\ntwo\n"));
  EXPECT_THAT(compare[0].content, HasSubstr(DefaultRankInstruction()));
  auto refine = RefineMessages(conversation, "my draft", "Do better.");
  ASSERT_EQ(refine.size(), 6u);
  EXPECT_EQ(refine[4].role, llm::Role::kAssistant);
  EXPECT_EQ(refine[4].content, "my draft");
  EXPECT_EQ(refine[5].role, llm::Role::kUser);
  EXPECT_EQ(refine[5].content, "Do better.");
}

}  // namespace
}  // namespace moa::orchestrator
