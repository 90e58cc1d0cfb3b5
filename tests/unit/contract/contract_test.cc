#include "lib/contract/contract.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moa::contract {
namespace {

using ::testing::HasSubstr;

google::protobuf::RepeatedPtrField<v1::ChatMessage> Conversation() {
  google::protobuf::RepeatedPtrField<v1::ChatMessage> messages;
  auto* sys = messages.Add();
  sys->set_role(v1::ROLE_SYSTEM);
  sys->set_content("be brief");
  auto* user = messages.Add();
  user->set_role(v1::ROLE_USER);
  user->set_content("hi");
  return messages;
}

TEST(ContractTest, ValidConversationAndParamsPass) {
  EXPECT_TRUE(ValidateMessages(Conversation()).ok());
  v1::SamplingParams p;
  p.set_temperature(0);
  p.set_top_p(1);
  p.set_max_tokens(1);
  p.add_stop("END");
  EXPECT_TRUE(ValidateParams(p).ok());
}

TEST(ContractTest, EachInvalidMessageFieldIsNamed) {
  google::protobuf::RepeatedPtrField<v1::ChatMessage> empty;
  EXPECT_THAT(ValidateMessages(empty).message(), HasSubstr("messages"));
  auto conv = Conversation();
  conv[1].set_role(v1::ROLE_UNSPECIFIED);
  EXPECT_THAT(ValidateMessages(conv).message(), HasSubstr("messages[1].role"));
  conv = Conversation();
  conv[0].set_content("");
  EXPECT_THAT(ValidateMessages(conv).message(), HasSubstr("messages[0].content"));
  EXPECT_EQ(ValidateMessages(conv).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ContractTest, EachInvalidParamIsNamed) {
  auto check = [](auto set, const char* field) {
    v1::SamplingParams p;
    set(p);
    absl::Status s = ValidateParams(p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(s.message(), HasSubstr(field));
  };
  check([](v1::SamplingParams& p) { p.set_max_tokens(0); }, "params.max_tokens");
  check([](v1::SamplingParams& p) { p.set_max_tokens(-5); }, "params.max_tokens");
  check([](v1::SamplingParams& p) { p.set_temperature(2.5); }, "params.temperature");
  check([](v1::SamplingParams& p) { p.set_temperature(-0.1); }, "params.temperature");
  check([](v1::SamplingParams& p) { p.set_temperature(std::nan("")); }, "params.temperature");
  check([](v1::SamplingParams& p) { p.set_top_p(0); }, "params.top_p");
  check([](v1::SamplingParams& p) { p.set_top_p(1.5); }, "params.top_p");
  check(
      [](v1::SamplingParams& p) {
        for (int i = 0; i < 5; ++i) p.add_stop("x");
      },
      "params.stop");
  check([](v1::SamplingParams& p) { p.add_stop(""); }, "params.stop[0]");
}

TEST(ContractTest, ConvertsRolesParamsAndDurations) {
  auto msgs = ToLlmMessages(Conversation());
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].role, "system");
  EXPECT_EQ(msgs[1].role, "user");
  v1::SamplingParams p;
  p.set_seed(9);
  llm::SamplingParams lp = ToLlmParams(p);
  EXPECT_EQ(lp.seed, 9);
  EXPECT_FALSE(lp.temperature);
  google::protobuf::Duration d;
  ToProto(absl::Milliseconds(1500), &d);
  EXPECT_EQ(d.seconds(), 1);
  EXPECT_EQ(d.nanos(), 500000000);
  EXPECT_EQ(FromProto(d), absl::Milliseconds(1500));
}

}  // namespace
}  // namespace moa::contract
