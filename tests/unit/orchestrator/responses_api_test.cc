// The Responses door: input items become the Chat request's turns, tools
// and format; what needs stored state is refused by name; the answer is a
// Response or its typed events.
#include "services/orchestrator/responses_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moa::orchestrator::responses {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(ResponsesApiTest, ItemsBecomeTurnsToolsAndFormatOfTheChatRequest) {
  HttpError e;
  auto parsed = ParseResponsesRequest(R"({"model": "agent", "instructions": "Be brief.",
    "input": [
      {"role": "user", "content": [{"type": "input_text", "text": "Weather in "},
                                   {"type": "input_text", "text": "Oslo and Bergen?"}]},
      {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "get_weather",
       "arguments": "{\"city\":\"Oslo\"}", "status": "completed"},
      {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
      {"type": "function_call_output", "call_id": "c1", "output": "12 C"},
      {"type": "function_call_output", "call_id": "c2", "output": "9 C"},
      {"type": "message", "role": "assistant", "id": "m1", "status": "completed",
       "content": [{"type": "output_text", "text": "Noted.", "annotations": []}]}],
    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"},
               "strict": true}],
    "tool_choice": {"type": "function", "name": "get_weather"}, "parallel_tool_calls": false,
    "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
    "max_output_tokens": 99, "stream": true, "store": false, "user": "u-2"})",
                                      &e);
  ASSERT_TRUE(parsed.ok()) << e.message;
  const v1::ChatRequest& chat = parsed->chat;
  ASSERT_EQ(chat.messages_size(), 6);
  EXPECT_EQ(chat.messages(0).role(), v1::ROLE_SYSTEM);
  EXPECT_EQ(chat.messages(1).content(), "Weather in Oslo and Bergen?");
  EXPECT_EQ(chat.messages(2).role(), v1::ROLE_ASSISTANT);
  ASSERT_EQ(chat.messages(2).tool_calls_size(), 2) << "calls made together are one turn";
  EXPECT_EQ(chat.messages(2).tool_calls(1).id(), "c2");
  EXPECT_EQ(chat.messages(3).role(), v1::ROLE_TOOL);
  EXPECT_EQ(chat.messages(4).tool_call_id(), "c2");
  EXPECT_EQ(chat.messages(5).content(), "Noted.");
  EXPECT_EQ(chat.tools().choice_function(), "get_weather");
  EXPECT_FALSE(chat.tools().parallel_tool_calls());
  EXPECT_TRUE(chat.tools().tools(0).strict());
  EXPECT_EQ(chat.response_format().type(), v1::ResponseFormat::JSON_SCHEMA);
  EXPECT_EQ(chat.response_format().name(), "w");
  EXPECT_EQ(chat.params().max_tokens(), 99);
  EXPECT_TRUE(parsed->stream);
  EXPECT_EQ(parsed->end_user, "u-2");
}

TEST(ResponsesApiTest, WhatNeedsStoredStateOrIsNotHonouredIsRefusedByName) {
  struct Case {
    const char* extra;
    const char* param;
    const char* why;
  };
  const Case cases[] = {
      {R"("previous_response_id": "resp_1")", "previous_response_id", "stores no responses"},
      {R"("conversation": "conv_1")", "conversation", "stores no responses"},
      {R"("store": true)", "store", "must be false"},
      {R"("background": true)", "background", "must be false"},
      {R"("reasoning": {"effort": "low"})", "reasoning", "cluster config"},
      {R"("include": ["reasoning.encrypted_content"])", "include", "must be empty"},
      {R"("truncation": "auto")", "truncation", "disabled"},
      {R"("frequency_penalty": 1)", "frequency_penalty", "refused rather than ignored"},
      {R"("tools": [{"type": "file_search"}])", "tools[0].type", "only function tools"},
      {R"("text": {"format": {"type": "xml"}})", "text.format.type", "json_schema"},
      {R"("text": {"format": {"type": "json_schema", "name": "x"}})", "text.format.schema",
       "JSON Schema object"},
      {R"("text": {"verbosity": "low"})", "text.verbosity", "not supported"},
      {R"("stream_options": {"include_obfuscation": true})", "stream_options.include_obfuscation",
       "no padding"},
  };
  for (const Case& c : cases) {
    HttpError e;
    const std::string body = absl::StrCat(R"({"model": "m", "input": "x", )", c.extra, "}");
    EXPECT_FALSE(ParseResponsesRequest(body, &e).ok()) << c.extra;
    EXPECT_EQ(e.status, 400) << c.extra;
    EXPECT_EQ(e.param, c.param) << c.extra;
    EXPECT_THAT(e.message, ::testing::StartsWith(c.param)) << c.extra;
    EXPECT_THAT(e.message, HasSubstr(c.why)) << c.extra;
  }
  const Case items[] = {
      {R"({"type": "item_reference", "id": "msg_1"})", "input[0].type", "stores no responses"},
      {R"({"type": "reasoning", "summary": []})", "input[0].type", "not an item this server"},
      {R"({"role": "user", "content": [{"type": "input_file", "file_id": "f"}]})",
       "input[0].content[0].type", "files are not supported"},
      {R"({"role": "user", "content": [{"type": "input_image", "file_id": "f"}]})",
       "input[0].content[0].file_id", "not a field"},
      {R"({"type": "function_call", "name": "f"})", "input[0]", "call_id"},
      {R"({"role": "tool", "content": "x"})", "input[0].role", "user, assistant"},
  };
  for (const Case& c : items) {
    HttpError e;
    const std::string body = absl::StrCat(R"({"model": "m", "input": [)", c.extra, "]}");
    EXPECT_FALSE(ParseResponsesRequest(body, &e).ok()) << c.extra;
    EXPECT_EQ(e.param, c.param) << c.extra;
    EXPECT_THAT(e.message, HasSubstr(c.why)) << c.extra;
  }
}

TEST(ResponsesApiTest, TheReadmeFieldTableListsExactlyTheKnownFields) {
  std::ifstream readme(std::string(MOA_SOURCE_DIR) + "/docs/http-api.md");
  ASSERT_TRUE(readme.good());
  std::set<std::string> in_table;
  bool in_section = false;
  for (std::string line; std::getline(readme, line);) {
    if (line == "#### Fields of a Responses request") {
      in_section = true;
      continue;
    }
    if (!in_section) continue;
    if (absl::StartsWith(line, "#")) break;
    if (!absl::StartsWith(line, "| `")) continue;
    const std::string cell = line.substr(2, line.find(" |", 2) - 2);
    for (absl::string_view part : absl::StrSplit(cell, ", ")) {
      if (part.size() > 2 && part.front() == '`') {
        in_table.insert(std::string(part.substr(1, part.size() - 2)));
      }
    }
  }
  const std::vector<std::string> known = KnownResponsesFields();
  EXPECT_EQ(in_table, std::set<std::string>(known.begin(), known.end()));
}

TEST(ResponsesApiTest, AStreamIsNumberedTypedEventsEndingInCompletedOrIncomplete) {
  ParsedRequest request;
  auto writer = ResponsesSurface().NewWriter(request, "moa", 7);
  v1::ChatEvent text;
  text.set_answer_delta("Hi");
  v1::ChatEvent calls;
  v1::ToolCall* c = calls.mutable_answer_tool_calls()->add_calls();
  c->set_id("c1");
  c->set_name("f");
  c->set_arguments("{}");
  v1::ChatEvent summary;
  summary.mutable_summary()->set_finish_reason("length");
  // One call per statement: the writer numbers events in the order it is called.
  std::string sse = writer->Head();
  sse += writer->Event(text);
  sse += writer->Event(calls);
  sse += writer->Event(summary);
  sse += writer->Tail(absl::OkStatus());
  std::vector<std::string> types;
  int64_t sequence = 0;
  json last;
  for (absl::string_view block : absl::StrSplit(sse, "\n\n", absl::SkipEmpty())) {
    std::vector<std::string> lines = absl::StrSplit(block, '\n');
    ASSERT_EQ(lines.size(), 2u);
    last = json::parse(lines[1].substr(6));
    EXPECT_EQ(lines[0].substr(7), last["type"]);
    EXPECT_EQ(last["sequence_number"], sequence++);
    types.push_back(last["type"]);
  }
  EXPECT_THAT(
      types,
      ::testing::ElementsAre(
          "response.created", "response.in_progress", "response.output_item.added",
          "response.content_part.added", "response.output_text.delta", "response.output_text.done",
          "response.content_part.done", "response.output_item.done", "response.output_item.added",
          "response.function_call_arguments.delta", "response.function_call_arguments.done",
          "response.output_item.done", "response.incomplete"));
  EXPECT_EQ(last["response"]["status"], "incomplete");
  EXPECT_EQ(last["response"]["incomplete_details"]["reason"], "max_output_tokens");
  EXPECT_EQ(last["response"]["output"][1]["call_id"], "c1");
  EXPECT_EQ(last["response"]["created_at"], 7);
}

}  // namespace
}  // namespace moa::orchestrator::responses
