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
  c.usage = {12, 34, 20};
  c.time_to_first_token = absl::Milliseconds(250);
  c.duration = absl::Seconds(3);
  c.attempts = 2;
  c.tool_calls = {{"call_1", "get_weather", R"({"city":"Oslo"})"}};
  v1::Completion proto;
  ToProto(c, "m", &proto);
  EXPECT_EQ(proto.model(), "m");
  llm::Completion back = FromProto(proto).value();
  ASSERT_EQ(back.tool_calls.size(), 1u);
  EXPECT_EQ(back.tool_calls[0].id, "call_1");
  EXPECT_EQ(back.tool_calls[0].name, "get_weather");
  EXPECT_EQ(back.tool_calls[0].arguments, R"({"city":"Oslo"})");
  EXPECT_EQ(back.finish_reason, "length");
  EXPECT_EQ(back.usage.prompt_tokens, 12);
  EXPECT_EQ(back.usage.completion_tokens, 34);
  EXPECT_EQ(back.usage.reasoning_tokens, 20);
  EXPECT_EQ(proto.usage().reasoning_tokens(), 20);
  EXPECT_EQ(back.time_to_first_token, absl::Milliseconds(250));
  EXPECT_EQ(back.duration, absl::Seconds(3));
  EXPECT_EQ(back.attempts, 2);
}

TEST(WireTest, ACompletionWithAMalformedToolCallIsRefused) {
  v1::Completion proto;
  proto.add_tool_calls()->set_name("get_weather");  // No id.
  EXPECT_EQ(FromProto(proto).status().code(), absl::StatusCode::kInvalidArgument);
  proto.mutable_tool_calls(0)->set_id("c1");
  proto.mutable_tool_calls(0)->set_name("not a name");
  EXPECT_EQ(FromProto(proto).status().code(), absl::StatusCode::kInvalidArgument);
  proto.mutable_tool_calls(0)->set_name("ok");
  proto.mutable_tool_calls(0)->set_arguments(std::string(kMaxToolArgumentsBytes + 1, 'x'));
  EXPECT_EQ(FromProto(proto).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WireTest, ToolTurnsOfAConversationRoundTripAndAreChecked) {
  std::vector<llm::Message> conversation = {
      {llm::Role::kUser, "weather in Oslo?"},
      {llm::Role::kAssistant, "", {{"c1", "get_weather", R"({"city":"Oslo"})"}}},
      {llm::Role::kTool, "12 C", {}, "c1"},
  };
  google::protobuf::RepeatedPtrField<v1::ChatMessage> proto;
  ToProto(conversation, &proto);
  EXPECT_EQ(proto[2].role(), v1::ROLE_TOOL);
  auto back = ToMessages(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ((*back)[1].tool_calls.size(), 1u);
  EXPECT_EQ((*back)[1].tool_calls[0].name, "get_weather");
  EXPECT_EQ((*back)[2].tool_call_id, "c1");

  auto refused = [](google::protobuf::RepeatedPtrField<v1::ChatMessage> m) {
    auto s = ToMessages(m).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  auto no_id = proto;
  no_id[2].clear_tool_call_id();
  EXPECT_THAT(refused(no_id), testing::HasSubstr("messages[2].tool_call_id"));
  auto user_calls = proto;
  *user_calls[0].add_tool_calls() = proto[1].tool_calls(0);
  EXPECT_THAT(refused(user_calls), testing::HasSubstr("only an assistant message"));
  auto empty_assistant = proto;
  empty_assistant[1].clear_tool_calls();
  EXPECT_THAT(refused(empty_assistant), testing::HasSubstr("messages[1].content"));
}

TEST(WireTest, ImagesAreCheckedAndAMessageOfImagesAloneIsText) {
  google::protobuf::RepeatedPtrField<v1::ChatMessage> proto;
  v1::ChatMessage* m = proto.Add();
  m->set_role(v1::ROLE_USER);
  m->add_images()->set_url("data:image/png;base64,AA==");
  auto ok = ToMessages(proto);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)[0].images[0].url, "data:image/png;base64,AA==");
  m->mutable_images(0)->set_url("file:///etc/passwd");
  EXPECT_THAT(std::string(ToMessages(proto).status().message()),
              testing::HasSubstr("messages[0].images[0].url must be an http(s) URL"));
  m->mutable_images(0)->set_url("https://example.com/a.png");
  m->mutable_images(0)->set_detail("ultra");
  EXPECT_THAT(std::string(ToMessages(proto).status().message()),
              testing::HasSubstr("messages[0].images[0].detail"));
  m->mutable_images(0)->clear_detail();
  for (int i = 0; i < kMaxImagesPerMessage; ++i) *m->add_images() = m->images(0);
  EXPECT_THAT(std::string(ToMessages(proto).status().message()), testing::HasSubstr("over 16"));
}

TEST(WireTest, ToolsAreCheckedByName) {
  v1::ToolOptions tools;
  v1::Tool* t = tools.add_tools();
  t->set_name("get_weather");
  t->set_parameters_json(R"({"type":"object","properties":{"city":{"type":"string"}}})");
  tools.set_choice_function("get_weather");
  tools.set_parallel_tool_calls(false);
  auto ok = ToTools(tools);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->choice_function, "get_weather");
  EXPECT_EQ(ok->parallel_tool_calls, false);
  v1::ToolOptions round;
  ToProto(*ok, &round);
  EXPECT_EQ(round.SerializeAsString(), tools.SerializeAsString());

  auto message = [](const v1::ToolOptions& o) {
    return std::string(ToTools(o).status().message());
  };
  v1::ToolOptions bad = tools;
  bad.set_choice_function("other");
  EXPECT_THAT(message(bad), testing::HasSubstr("tools.choice_function names no tool"));
  bad = tools;
  bad.mutable_tools(0)->set_parameters_json("[1]");
  EXPECT_THAT(message(bad), testing::HasSubstr("tools.tools[0].parameters_json"));
  bad = tools;
  bad.mutable_tools(0)->set_parameters_json(std::string(100, '[') + std::string(100, ']'));
  EXPECT_THAT(message(bad), testing::HasSubstr("tools.tools[0].parameters_json"));
  bad = tools;
  *bad.add_tools() = tools.tools(0);
  EXPECT_THAT(message(bad), testing::HasSubstr("two tools are named get_weather"));
  bad = tools;
  bad.clear_choice_function();
  bad.set_choice("sometimes");
  EXPECT_THAT(message(bad), testing::HasSubstr("tools.choice must be"));
  bad = v1::ToolOptions();
  bad.set_choice("required");
  EXPECT_THAT(message(bad), testing::HasSubstr("a tool choice needs tools"));
}

}  // namespace
}  // namespace moa::wire
