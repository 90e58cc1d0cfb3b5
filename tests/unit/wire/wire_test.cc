// The wire edge: checks name the field, conversions are total both ways, and
// an unknown value (a role number from a newer client) is refused, never
// mapped to something else.
#include "lib/wire/wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moa::wire {
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
  auto* assistant = messages.Add();
  assistant->set_role(v1::ROLE_ASSISTANT);
  assistant->set_content("hello");
  return messages;
}

TEST(WireTest, AValidConversationConvertsRoleByRoleAndBack) {
  auto msgs = ToMessages(Conversation());
  ASSERT_TRUE(msgs.ok()) << msgs.status();
  ASSERT_EQ(msgs->size(), 3u);
  EXPECT_EQ((*msgs)[0].role, llm::Role::kSystem);
  EXPECT_EQ((*msgs)[1].role, llm::Role::kUser);
  EXPECT_EQ((*msgs)[2].role, llm::Role::kAssistant);
  EXPECT_EQ((*msgs)[2].content, "hello");
  google::protobuf::RepeatedPtrField<v1::ChatMessage> back;
  ToProto(*msgs, &back);
  ASSERT_EQ(back.size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(back[i].role(), Conversation()[i].role());
    EXPECT_EQ(back[i].content(), Conversation()[i].content());
  }
}

TEST(WireTest, EachInvalidMessageFieldIsNamed) {
  google::protobuf::RepeatedPtrField<v1::ChatMessage> empty;
  EXPECT_THAT(ToMessages(empty).status().message(), HasSubstr("messages"));
  auto conv = Conversation();
  conv[1].set_role(v1::ROLE_UNSPECIFIED);
  EXPECT_THAT(ToMessages(conv).status().message(), HasSubstr("messages[1].role"));
  conv = Conversation();
  conv[2].set_role(static_cast<v1::Role>(42));  // proto3 keeps unknown enum numbers.
  EXPECT_EQ(ToMessages(conv).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ToMessages(conv).status().message(), HasSubstr("messages[2].role"));
  conv = Conversation();
  conv[0].set_content("");
  EXPECT_THAT(ToMessages(conv, "turns").status().message(), HasSubstr("turns[0].content"));
}

TEST(WireTest, EachInvalidParamIsNamed) {
  auto check = [](auto set, const char* field) {
    v1::SamplingParams p;
    set(p);
    absl::Status s = ToParams(p).status();
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

TEST(WireTest, ParamsKeepUnsetApartFromZeroBothWays) {
  v1::SamplingParams p;
  p.set_temperature(0);
  p.set_seed(9);
  p.add_stop("END");
  auto lp = ToParams(p);
  ASSERT_TRUE(lp.ok());
  EXPECT_EQ(lp->temperature, 0.0) << "0 is a temperature, not 'unset'";
  EXPECT_EQ(lp->seed, 9);
  EXPECT_FALSE(lp->max_tokens);
  v1::SamplingParams back;
  ToProto(*lp, &back);
  EXPECT_TRUE(back.has_temperature());
  EXPECT_FALSE(back.has_max_tokens());
  EXPECT_EQ(back.stop(0), "END");
}

TEST(WireTest, CompletionsAndDurationsRoundTrip) {
  google::protobuf::Duration d;
  ToProto(absl::Milliseconds(1500), &d);
  EXPECT_EQ(d.seconds(), 1);
  EXPECT_EQ(d.nanos(), 500000000);
  EXPECT_EQ(FromProto(d), absl::Milliseconds(1500));
  llm::Completion c;
  c.finish_reason = "length";
  c.usage = {12, 34};
  c.time_to_first_token = absl::Milliseconds(250);
  c.duration = absl::Seconds(3);
  c.attempts = 2;
  v1::Completion proto;
  ToProto(c, "m", &proto);
  EXPECT_EQ(proto.model(), "m");
  llm::Completion back = FromProto(proto);
  EXPECT_EQ(back.finish_reason, "length");
  EXPECT_EQ(back.usage.prompt_tokens, 12);
  EXPECT_EQ(back.usage.completion_tokens, 34);
  EXPECT_EQ(back.time_to_first_token, absl::Milliseconds(250));
  EXPECT_EQ(back.duration, absl::Seconds(3));
  EXPECT_EQ(back.attempts, 2);
}

}  // namespace
}  // namespace moa::wire
