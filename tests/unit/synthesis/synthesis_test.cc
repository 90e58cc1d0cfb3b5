#include "lib/synthesis/synthesis.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

namespace moa::synthesis {
namespace {

using ::testing::HasSubstr;

TEST(SynthesisTest, BlockIsInstructionBlankLineHeaderAndNumberedReferences) {
  EXPECT_EQ(SynthesisBlock("Do it.", {{"a", "first"}, {"b", "second\nline"}}),
            "Do it.\n\nResponses from models:\n1. first\n2. second\nline");
}

TEST(SynthesisTest, BlockBecomesTheFirstMessageWithoutASystemMessage) {
  std::vector<llm::Message> conv = {
      {llm::Role::kUser, "q1"}, {llm::Role::kAssistant, "a1"}, {llm::Role::kUser, "q2"}};
  auto out = WithReferences(conv, {{"m", "r"}}, "I.");
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].role, llm::Role::kSystem);
  EXPECT_EQ(out[0].content, "I.\n\nResponses from models:\n1. r");
  EXPECT_EQ(out[1].content, "q1");
  EXPECT_EQ(out[2].content, "a1");
  EXPECT_EQ(out[3].content, "q2");
}

TEST(SynthesisTest, BlockIsAppendedToAnExistingSystemMessage) {
  std::vector<llm::Message> conv = {{llm::Role::kSystem, "Be terse."}, {llm::Role::kUser, "q"}};
  auto out = WithReferences(conv, {{"m", "r"}}, "I.");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].content, "Be terse.\n\nI.\n\nResponses from models:\n1. r");
  EXPECT_EQ(out[1].content, "q");
}

TEST(SynthesisTest, NoReferencesLeavesTheConversationAlone) {
  std::vector<llm::Message> conv = {{llm::Role::kUser, "q"}};
  auto out = WithReferences(conv, {}, "I.");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].content, "q");
}

TEST(SynthesisTest, DefaultInstructionAsksForCriticalWeighingAndOneRefinedAnswer) {
  const std::string& i = DefaultInstruction();
  EXPECT_THAT(i, HasSubstr("critically"));
  EXPECT_THAT(i, HasSubstr("biased"));
  EXPECT_THAT(i, HasSubstr("refined, accurate, comprehensive and well-structured"));
}

TEST(SynthesisTest, LoadInstructionTrimsTrailingNewlinesAndRejectsEmptyFiles) {
  std::string path = "/tmp/moa-synthesis-test-" + std::to_string(getpid());
  std::ofstream(path) << "Paper prompt.\n\n";
  auto text = LoadInstruction(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "Paper prompt.");
  std::ofstream(path) << "\n";
  EXPECT_EQ(LoadInstruction(path).status().code(), absl::StatusCode::kInvalidArgument);
  std::remove(path.c_str());
  EXPECT_EQ(LoadInstruction(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace moa::synthesis
