// The Anthropic Messages door: a request's blocks become the Chat request's
// turns and tools, every field is honoured or refused by name, and the
// answer is written as a Message or its typed event stream.
#include "services/orchestrator/anthropic_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moa::orchestrator::anthropic {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(AnthropicApiTest, BlocksBecomeTurnsAndToolsOfTheChatRequest) {
  HttpError e;
  auto parsed = ParseMessagesRequest(R"({"model": "agent", "max_tokens": 300,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
      {"role": "user", "content": "Weather in Oslo?"},
      {"role": "assistant", "content": [{"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "tu_1", "content": "down", "is_error": true},
        {"type": "text", "text": "Try again?"}]}],
    "tools": [{"name": "get_weather", "description": "Now",
               "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
    "stop_sequences": ["END"], "temperature": 0.5, "stream": true,
    "metadata": {"user_id": "u-1"}, "thinking": {"type": "disabled"}})",
                                     &e);
  ASSERT_TRUE(parsed.ok()) << e.message;
  const v1::ChatRequest& chat = parsed->chat;
  EXPECT_EQ(chat.pipeline(), "agent");
  EXPECT_EQ(chat.params().max_tokens(), 300);
  EXPECT_EQ(chat.params().stop(0), "END");
  EXPECT_DOUBLE_EQ(chat.params().temperature(), 0.5);
  EXPECT_TRUE(parsed->stream);
  EXPECT_EQ(parsed->end_user, "u-1");
  ASSERT_EQ(chat.messages_size(), 5);
  EXPECT_EQ(chat.messages(0).role(), v1::ROLE_SYSTEM);
  EXPECT_EQ(chat.messages(0).content(), "Be brief.");
  EXPECT_EQ(chat.messages(2).role(), v1::ROLE_ASSISTANT);
  EXPECT_EQ(chat.messages(2).content(), "Looking.");
  ASSERT_EQ(chat.messages(2).tool_calls_size(), 1);
  EXPECT_EQ(chat.messages(2).tool_calls(0).id(), "tu_1");
  EXPECT_EQ(json::parse(chat.messages(2).tool_calls(0).arguments()), json({{"city", "Oslo"}}));
  EXPECT_EQ(chat.messages(3).role(), v1::ROLE_TOOL);
  EXPECT_EQ(chat.messages(3).tool_call_id(), "tu_1");
  EXPECT_EQ(chat.messages(3).content(), "[tool error] down");
  EXPECT_EQ(chat.messages(4).role(), v1::ROLE_USER);
  EXPECT_EQ(chat.messages(4).content(), "Try again?");
  ASSERT_EQ(chat.tools().tools_size(), 1);
  EXPECT_EQ(chat.tools().tools(0).name(), "get_weather");
  EXPECT_EQ(json::parse(chat.tools().tools(0).parameters_json())["type"], "object");
  EXPECT_EQ(chat.tools().choice(), "required");
  EXPECT_FALSE(chat.tools().parallel_tool_calls());

  // A user turn of results alone is only those results.
  auto results = ParseMessagesRequest(R"({"model": "m", "max_tokens": 5, "messages": [
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a",
         "content": [{"type": "text", "text": "1"}]},
        {"type": "tool_result", "tool_use_id": "b"}]}]})",
                                      &e);
  ASSERT_TRUE(results.ok()) << e.message;
  ASSERT_EQ(results->chat.messages_size(), 2);
  EXPECT_EQ(results->chat.messages(1).tool_call_id(), "b");
  EXPECT_EQ(results->chat.messages(1).content(), "");
}

TEST(AnthropicApiTest, WhatTheDoorDoesNotHonourIsRefusedByName) {
  struct Case {
    const char* extra;
    const char* param;
    const char* why;
  };
  const Case cases[] = {
      {R"("top_k": 5)", "top_k", "not sent top_k"},
      {R"("thinking": {"type": "enabled", "budget_tokens": 1024})", "thinking", "cluster config"},
      {R"("mcp_servers": [])", "mcp_servers", "client runs its tools"},
      {R"("service_tier": "priority")", "service_tier", "standard_only"},
      {R"("top_logprobs": 1)", "top_logprobs", "refused rather than ignored"},
      {R"("stop_sequences": ["a", "b", "c", "d", "e"])", "stop_sequences", "at most 4"},
      {R"("metadata": {"user_id": "u", "team": "x"})", "metadata.team", "not a field"},
      {R"("tools": [{"type": "bash_20250124", "name": "bash"}])", "tools[0].type", "server tools"},
      {R"("tools": [{"name": "f"}])", "tools[0]", "input_schema object"},
      {R"("tool_choice": {"type": "tool"})", "tool_choice.name", "is required"},
      {R"("tool_choice": {"type": "sometimes"})", "tool_choice.type", "auto, any, tool or none"},
  };
  for (const Case& c : cases) {
    HttpError e;
    const std::string body = absl::StrCat(
        R"({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], )",
        c.extra, "}");
    EXPECT_FALSE(ParseMessagesRequest(body, &e).ok()) << c.extra;
    EXPECT_EQ(e.status, 400) << c.extra;
    EXPECT_EQ(e.param, c.param) << c.extra;
    EXPECT_THAT(e.message, ::testing::StartsWith(c.param)) << c.extra;
    EXPECT_THAT(e.message, HasSubstr(c.why)) << c.extra;
  }
  const Case in_messages[] = {
      {R"({"role": "user", "content": [{"type": "image", "source": {}}]})",
       "messages[0].content[0].source.type", "base64"},
      {R"({"role": "user", "content": [{"type": "document", "source": {}}]})",
       "messages[0].content[0].type", "reads text and images"},
      {R"({"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]})",
       "messages[0].content[0].type", "no thinking is sent back"},
      {R"({"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f",
          "input": {}}]})",
       "messages[0].content[0].type", "goes in an assistant message"},
      {R"({"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f",
          "input": [1]}]})",
       "messages[0].content[0]", "input object"},
      {R"({"role": "system", "content": "x"})", "messages[0].role", "system is its own field"},
      {R"({"role": "user", "content": [{"type": "text", "text": "x", "citations": [{}]}]})",
       "messages[0].content[0].citations", "written anew"},
  };
  for (const Case& c : in_messages) {
    HttpError e;
    const std::string body =
        absl::StrCat(R"({"model": "m", "max_tokens": 5, "messages": [)", c.extra, "]}");
    EXPECT_FALSE(ParseMessagesRequest(body, &e).ok()) << c.extra;
    EXPECT_EQ(e.param, c.param) << c.extra;
    EXPECT_THAT(e.message, HasSubstr(c.why)) << c.extra;
  }
  HttpError e;
  EXPECT_FALSE(ParseMessagesRequest(R"({"model": "m", "messages": []})", &e).ok());
  EXPECT_EQ(e.param, "max_tokens");
}

// docs/http-api.md's table names every top-level field the parser knows.
TEST(AnthropicApiTest, TheReadmeFieldTableListsExactlyTheKnownFields) {
  std::ifstream readme(std::string(MOA_SOURCE_DIR) + "/docs/http-api.md");
  ASSERT_TRUE(readme.good());
  std::set<std::string> in_table;
  bool in_section = false;
  for (std::string line; std::getline(readme, line);) {
    if (line == "#### Fields of a Messages request") {
      in_section = true;
      continue;
    }
    if (!in_section) continue;
    if (absl::StartsWith(line, "####") || absl::StartsWith(line, "`cache_control`")) break;
    if (!absl::StartsWith(line, "| `")) continue;
    const std::string cell = line.substr(2, line.find(" |", 2) - 2);
    for (absl::string_view part : absl::StrSplit(cell, ", ")) {
      if (part.size() > 2 && part.front() == '`')
        in_table.insert(std::string(part.substr(1, part.size() - 2)));
    }
  }
  const std::vector<std::string> known = KnownMessagesFields();
  EXPECT_EQ(in_table, std::set<std::string>(known.begin(), known.end()));
}

TEST(AnthropicApiTest, ErrorsHaveAnthropicsShapeAndKind) {
  auto kind = [](int status) {
    return json::parse(ErrorJson({status, "m", "", "", ""}))["error"]["type"].get<std::string>();
  };
  EXPECT_EQ(kind(400), "invalid_request_error");
  EXPECT_EQ(kind(401), "authentication_error");
  EXPECT_EQ(kind(404), "not_found_error");
  EXPECT_EQ(kind(429), "rate_limit_error");
  EXPECT_EQ(kind(503), "overloaded_error");
  EXPECT_EQ(kind(500), "api_error");
  EXPECT_EQ(json::parse(ErrorJson({400, "m", "", "", ""}))["type"], "error");
}

v1::ChatEvent Text(const std::string& text) {
  v1::ChatEvent e;
  e.set_answer_delta(text);
  return e;
}

v1::ChatEvent Calls(const std::string& arguments) {
  v1::ChatEvent e;
  v1::ToolCall* c = e.mutable_answer_tool_calls()->add_calls();
  c->set_id("call_1");
  c->set_name("get_weather");
  c->set_arguments(arguments);
  return e;
}

v1::ChatEvent Summary(const std::string& finish) {
  v1::ChatEvent e;
  e.mutable_summary()->set_finish_reason(finish);
  auto* u = e.mutable_summary()->add_usage();
  u->mutable_usage()->set_prompt_tokens(10);
  u->mutable_usage()->set_completion_tokens(4);
  return e;
}

// The SSE events' types in order, and their data.
std::vector<json> Events(const std::string& sse) {
  std::vector<json> out;
  for (absl::string_view block : absl::StrSplit(sse, "\n\n", absl::SkipEmpty())) {
    std::vector<std::string> lines = absl::StrSplit(block, '\n');
    EXPECT_EQ(lines.size(), 2u) << block;
    EXPECT_TRUE(absl::StartsWith(lines[0], "event: ")) << block;
    json data = json::parse(lines[1].substr(6));
    EXPECT_EQ(lines[0].substr(7), data["type"].get<std::string>());
    out.push_back(std::move(data));
  }
  return out;
}

TEST(AnthropicApiTest, AStreamIsTypedEventsWithATextBlockThenToolUseBlocks) {
  ParsedRequest request;
  auto writer = MessagesSurface().NewWriter(request, "agent", 0);
  std::string sse = writer->Head();
  sse += writer->Event(Text("Let me "));
  sse += writer->Event(Text("look."));
  sse += writer->Event(Calls(R"({"city":"Oslo"})"));
  sse += writer->Event(Summary("tool_calls"));
  sse += writer->Tail(absl::OkStatus());
  std::vector<std::string> types;
  std::vector<json> events = Events(sse);
  for (const json& e : events) types.push_back(e["type"]);
  EXPECT_THAT(types,
              ::testing::ElementsAre("message_start", "content_block_start", "content_block_delta",
                                     "content_block_delta", "content_block_stop",
                                     "content_block_start", "content_block_delta",
                                     "content_block_stop", "message_delta", "message_stop"));
  EXPECT_EQ(events[0]["message"]["model"], "agent");
  EXPECT_EQ(events[1]["content_block"]["type"], "text");
  EXPECT_EQ(events[3]["delta"]["text"], "look.");
  EXPECT_EQ(events[5]["index"], 1);
  EXPECT_EQ(events[5]["content_block"]["type"], "tool_use");
  EXPECT_EQ(events[5]["content_block"]["name"], "get_weather");
  EXPECT_EQ(events[6]["delta"]["type"], "input_json_delta");
  EXPECT_EQ(json::parse(events[6]["delta"]["partial_json"].get<std::string>()),
            json({{"city", "Oslo"}}));
  EXPECT_EQ(events[8]["delta"]["stop_reason"], "tool_use");
  EXPECT_EQ(events[8]["usage"]["output_tokens"], 4);

  // Whole: the same as one Message.
  auto whole = MessagesSurface().NewWriter(request, "agent", 0);
  for (const auto& e : {Text("Let me look."), Calls(R"({"city":"Oslo"})"), Summary("tool_calls")}) {
    whole->Event(e);
  }
  json body = json::parse(*whole->Body());
  EXPECT_EQ(body["content"][0], json({{"type", "text"}, {"text", "Let me look."}}));
  EXPECT_EQ(body["content"][1]["input"], json({{"city", "Oslo"}}));
  EXPECT_EQ(body["stop_reason"], "tool_use");
  EXPECT_EQ(body["usage"], json({{"input_tokens", 10}, {"output_tokens", 4}}));
}

TEST(AnthropicApiTest, AToolCallWhoseArgumentsAreNoObjectFailsByNameNotSilently) {
  ParsedRequest request;
  auto whole = MessagesSurface().NewWriter(request, "agent", 0);
  whole->Event(Calls("[1, 2]"));
  whole->Event(Summary("tool_calls"));
  auto body = whole->Body();
  ASSERT_FALSE(body.ok());
  EXPECT_THAT(std::string(body.status().message()),
              HasSubstr("call of tool get_weather has arguments that are not a JSON object"));
  auto streamed = MessagesSurface().NewWriter(request, "agent", 0);
  std::string sse = streamed->Head();  // Apart: operands of + run in no set order.
  sse += streamed->Event(Calls("not json"));
  sse += streamed->Tail(absl::OkStatus());
  std::vector<json> events = Events(sse);
  ASSERT_EQ(events.size(), 2u) << sse;
  EXPECT_EQ(events[1]["type"], "error");
  EXPECT_EQ(events[1]["error"]["type"], "api_error");
}

}  // namespace
}  // namespace moa::orchestrator::anthropic
