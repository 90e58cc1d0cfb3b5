#include "services/orchestrator/openai_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moa::orchestrator {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

absl::StatusOr<openai::ParsedRequest> Parse(const std::string& body, openai::HttpError* e) {
  return openai::ParseChatCompletionRequest(body, e);
}

TEST(OpenAiApiTest, ParsesEverySupportedField) {
  openai::HttpError e;
  auto r = Parse(R"({"model": "moa", "messages": [
      {"role": "developer", "content": "sys"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
      {"role": "assistant", "content": "prev"}],
    "temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 64, "stop": "END", "seed": 7,
    "stream": true, "stream_options": {"include_usage": true}, "n": 1, "user": "u-1",
    "frequency_penalty": 0, "presence_penalty": 0, "logprobs": false, "tools": [],
    "tool_choice": "none", "parallel_tool_calls": true, "response_format": {"type": "text"},
    "modalities": ["text"], "store": false, "metadata": {}, "service_tier": "auto",
    "logit_bias": {}, "top_logprobs": 0, "audio": null, "prediction": null})",
                 &e);
  ASSERT_TRUE(r.ok()) << e.message;
  EXPECT_EQ(r->chat.pipeline(), "moa");
  ASSERT_EQ(r->chat.messages_size(), 3);
  EXPECT_EQ(r->chat.messages(0).role(), v1::ROLE_SYSTEM);
  EXPECT_EQ(r->chat.messages(1).content(), "ab");
  EXPECT_EQ(r->chat.messages(2).role(), v1::ROLE_ASSISTANT);
  EXPECT_EQ(r->chat.params().temperature(), 0.5);
  EXPECT_EQ(r->chat.params().top_p(), 0.9);
  EXPECT_EQ(r->chat.params().max_tokens(), 64);
  EXPECT_EQ(r->chat.params().stop(0), "END");
  EXPECT_EQ(r->chat.params().seed(), 7);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->end_user, "u-1");
}

// Nothing a client sends is silently ignored: a field this server does not
// know, or a value asking for what it does not do, is a 400 naming it, with
// a message that says why; the same field at its default (or null) passes.
TEST(OpenAiApiTest, EveryFieldIsHonouredOrRefusedByNameNeverIgnored) {
  struct Case {
    const char* field;  // Added to a valid request.
    const char* param;
    const char* why;
  };
  const Case cases[] = {
      {R"("tools": [{"type": "custom", "custom": {"name": "f"}}])", "tools[0].type",
       "only function tools"},
      {R"("tools": [{"type": "function", "function": {"name": "f", "examples": []}}])",
       "tools[0].function.examples", "not a field this server knows"},
      {R"("tools": [{"type": "function", "function": {"name": "f", "parameters": 5}}])",
       "tools[0].function.parameters", "JSON Schema object"},
      {R"("tool_choice": {"type": "allowed_tools", "allowed_tools": {}})", "tool_choice",
       "allowed_tools"},
      {R"("tools": [], "parallel_tool_calls": false, "functions": [{"name": "f"}])", "functions",
       "deprecated form of tools"},
      {R"("parallel_tool_calls": "yes")", "parallel_tool_calls", "true or false"},
      {R"("response_format": {"type": "xml"})", "response_format.type", "json_schema"},
      {R"("response_format": {"type": "json_schema", "json_schema": {"name": "x"}})",
       "response_format.json_schema.schema", "JSON Schema object"},
      {R"("response_format": {"type": "json_schema", "json_schema": {"schema": {},
          "examples": []}})",
       "response_format.json_schema.examples", "not a field this server knows"},
      {R"("logprobs": true)", "logprobs", "synthesis"},
      {R"("top_logprobs": 3)", "top_logprobs", "synthesis"},
      {R"("frequency_penalty": 0.5)", "frequency_penalty", "must be 0"},
      {R"("presence_penalty": -1)", "presence_penalty", "must be 0"},
      {R"("logit_bias": {"50256": -100})", "logit_bias", "token ids"},
      {R"("modalities": ["text", "audio"])", "modalities", "the answer is text"},
      {R"("audio": {"voice": "alloy", "format": "wav"})", "audio", "the answer is text"},
      {R"("prediction": {"type": "content", "content": "x"})", "prediction", "not predicted"},
      {R"("web_search_options": {})", "web_search_options", "search"},
      {R"("reasoning_effort": "high")", "reasoning_effort", "cluster config"},
      {R"("verbosity": "low")", "verbosity", "cluster config"},
      {R"("store": true)", "store", "stores no completions"},
      {R"("metadata": {"a": "b"})", "metadata", "stored completions"},
      {R"("service_tier": "flex")", "service_tier", "\"auto\""},
      {R"("top_k": 40)", "top_k", "not a field of chat completions this server knows"},
      {R"("prompt_cache_key": "k")", "prompt_cache_key", "refused rather than ignored"},
      {R"("stream_options": {"include_usage": true, "include_obfuscation": true})",
       "stream_options.include_obfuscation", "no padding"},
      {R"("stream_options": {"chunk_size": 3})", "stream_options.chunk_size", "include_usage"},
      {R"("moa_policy": {"min_proposal": 2})", "moa_policy.min_proposal", "min_proposals"},
      {R"("moa_streaming": {"mode": "staircase", "first_chunk": 4})", "moa_streaming.first_chunk",
       "first_chunk_tokens"},
      {R"("user": ")"
       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
       "xxxxxxx\"",
       "user", "at most 256 bytes"},
  };
  for (const Case& c : cases) {
    openai::HttpError e;
    const std::string body = absl::StrCat(
        R"({"model": "moa", "messages": [{"role": "user", "content": "x"}], )", c.field, "}");
    EXPECT_FALSE(Parse(body, &e).ok()) << c.field;
    EXPECT_EQ(e.status, 400) << c.field;
    EXPECT_EQ(e.param, c.param) << c.field;
    EXPECT_THAT(e.message, ::testing::StartsWith(c.param)) << c.field;
    EXPECT_THAT(e.message, HasSubstr(c.why)) << c.field;
  }
  // In messages and their parts too.
  const Case in_messages[] = {
      {R"({"role": "user", "content": "x", "name": "eve"})", "messages[0].name",
       "participant names"},
      {R"({"role": "user", "content": "x", "speaker": "eve"})", "messages[0].speaker",
       "not a field this server knows"},
      {R"({"role": "assistant", "content": "x", "tool_calls": [{"id": "c"}]})",
       "messages[0].tool_calls[0]", "needs an id and a function object"},
      {R"({"role": "user", "content": "x", "tool_calls": [{"id": "c", "type": "function",
           "function": {"name": "f", "arguments": "{}"}}]})",
       "messages[0].tool_calls", "only an assistant message"},
      {R"({"role": "tool", "content": "x"})", "messages[0].tool_call_id", "is required"},
      {R"({"role": "user", "content": "x", "tool_call_id": "c"})", "messages[0].tool_call_id",
       "only on a tool message"},
      {R"({"role": "assistant", "content": "x", "refusal": "no"})", "messages[0].refusal",
       "its text"},
      {R"({"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {}}]})",
       "messages[0].content[0].cache_control", "not a field this server knows"},
  };
  for (const Case& c : in_messages) {
    openai::HttpError e;
    const std::string body = absl::StrCat(R"({"model": "moa", "messages": [)", c.field, "]}");
    EXPECT_FALSE(Parse(body, &e).ok()) << c.field;
    EXPECT_EQ(e.param, c.param) << c.field;
    EXPECT_THAT(e.message, HasSubstr(c.why)) << c.field;
  }
  // What an SDK hands back as the assistant's turn, empty fields and all.
  openai::HttpError e;
  EXPECT_TRUE(Parse(R"({"model": "moa", "messages": [{"role": "user", "content": "x"},
      {"role": "assistant", "content": "y", "refusal": null, "tool_calls": [],
       "function_call": null, "audio": null}], "safety_identifier": "h-1"})",
                    &e)
                  .ok())
      << e.message;
}

// docs/http-api.md's field table names every field the parser knows, and only
// those: a field added to one without the other fails here.
TEST(OpenAiApiTest, TheReadmeFieldTableListsExactlyTheKnownFields) {
  std::ifstream readme(std::string(MOA_SOURCE_DIR) + "/docs/http-api.md");
  ASSERT_TRUE(readme.good());
  std::set<std::string> in_table;
  bool in_section = false;
  for (std::string line; std::getline(readme, line);) {
    if (line == "#### Fields of a chat-completions request") {
      in_section = true;
      continue;
    }
    if (!in_section) continue;
    if (absl::StartsWith(line, "#")) break;  // The next section.
    if (!absl::StartsWith(line, "| `")) continue;
    // The first cell: `a`, `b.c`, `d` (nested names are not top-level).
    const std::string cell = line.substr(2, line.find(" |", 2) - 2);
    for (size_t at = cell.find('`'); at != std::string::npos; at = cell.find('`', at)) {
      const size_t end = cell.find('`', at + 1);
      const std::string name = cell.substr(at + 1, end - at - 1);
      if (name.find('.') == std::string::npos) in_table.insert(name);
      at = end + 1;
    }
  }
  const std::vector<std::string> known = openai::KnownChatFields();
  EXPECT_EQ(in_table, std::set<std::string>(known.begin(), known.end()));
}

TEST(OpenAiApiTest, ResponseFormatBecomesTheRequestsAnswerFormat) {
  openai::HttpError e;
  auto r = Parse(R"({"model": "moa", "messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "weather",
      "strict": true, "description": "a forecast", "schema": {"type": "object"}}}})",
                 &e);
  ASSERT_TRUE(r.ok()) << e.message;
  const v1::ResponseFormat& f = r->chat.response_format();
  EXPECT_EQ(f.type(), v1::ResponseFormat::JSON_SCHEMA);
  EXPECT_EQ(f.name(), "weather");
  EXPECT_EQ(f.description(), "a forecast");
  EXPECT_TRUE(f.strict());
  EXPECT_EQ(json::parse(f.schema_json()), json::parse(R"({"type": "object"})"));
  auto object = Parse(R"({"model": "moa", "messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "json_object"}})",
                      &e);
  ASSERT_TRUE(object.ok()) << e.message;
  EXPECT_EQ(object->chat.response_format().type(), v1::ResponseFormat::JSON_OBJECT);
}

TEST(OpenAiApiTest, TheMoaPolicyExtensionBecomesTheRequestsLayerPolicy) {
  openai::HttpError error;
  auto r = Parse(
      R"({"model":"moa","messages":[{"role":"user","content":"hi"}],
          "moa_policy":{"min_proposals":2,"straggler_grace_seconds":1.5,
                        "straggler_grace_factor":0.5,"layer_deadline_share":0.3}})",
      &error);
  ASSERT_TRUE(r.ok()) << error.message;
  const v1::LayerPolicy& p = r->chat.policy();
  EXPECT_EQ(p.min_proposals(), 2);
  EXPECT_EQ(p.straggler_grace().seconds(), 1);
  EXPECT_EQ(p.straggler_grace().nanos(), 500000000);
  EXPECT_EQ(p.straggler_grace_factor(), 0.5);
  EXPECT_EQ(p.layer_deadline_share(), 0.3);
  // "all" as in the config: every proposal of each layer.
  auto all = Parse(R"({"model":"moa","messages":[{"role":"user","content":"hi"}],
                       "moa_policy":{"min_proposals":"all"}})",
                   &error);
  ASSERT_TRUE(all.ok()) << error.message;
  EXPECT_EQ(all->chat.policy().min_proposals(), std::numeric_limits<int32_t>::max());
  for (const char* bad :
       {R"("moa_policy":3)", R"("moa_policy":{"min_proposals":"2"})",
        R"("moa_policy":{"min_proposals":"ALL"})", R"("moa_policy":{"min_proposals":0})",
        R"("moa_policy":{"straggler_grace_seconds":-1})"}) {
    openai::HttpError e;
    auto b = Parse(
        absl::StrCat(R"({"model":"moa","messages":[{"role":"user","content":"hi"}],)", bad, "}"),
        &e);
    EXPECT_FALSE(b.ok()) << bad;
    EXPECT_EQ(e.status, 400) << bad;
    EXPECT_THAT(e.param, ::testing::HasSubstr("moa_policy")) << bad;
  }
}

TEST(OpenAiApiTest, ToolsAndToolTurnsBecomeTheChatRequestsTools) {
  openai::HttpError e;
  auto parsed = Parse(R"({"model": "moa", "messages": [
      {"role": "user", "content": "weather in Oslo?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
          "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "12 C"}]}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": true}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": false})",
                      &e);
  ASSERT_TRUE(parsed.ok()) << e.message;
  const v1::ChatRequest& chat = parsed->chat;
  ASSERT_EQ(chat.messages_size(), 3);
  EXPECT_EQ(chat.messages(1).role(), v1::ROLE_ASSISTANT);
  EXPECT_EQ(chat.messages(1).content(), "");
  ASSERT_EQ(chat.messages(1).tool_calls_size(), 1);
  EXPECT_EQ(chat.messages(1).tool_calls(0).id(), "call_1");
  EXPECT_EQ(chat.messages(1).tool_calls(0).name(), "get_weather");
  EXPECT_EQ(chat.messages(1).tool_calls(0).arguments(), R"({"city":"Oslo"})");
  EXPECT_EQ(chat.messages(2).role(), v1::ROLE_TOOL);
  EXPECT_EQ(chat.messages(2).tool_call_id(), "call_1");
  EXPECT_EQ(chat.messages(2).content(), "12 C");
  ASSERT_EQ(chat.tools().tools_size(), 1);
  EXPECT_EQ(chat.tools().tools(0).name(), "get_weather");
  EXPECT_EQ(chat.tools().tools(0).description(), "Now");
  EXPECT_TRUE(chat.tools().tools(0).strict());
  EXPECT_EQ(nlohmann::json::parse(chat.tools().tools(0).parameters_json())["type"], "object");
  EXPECT_EQ(chat.tools().choice_function(), "get_weather");
  EXPECT_EQ(chat.tools().choice(), "");
  EXPECT_FALSE(chat.tools().parallel_tool_calls());
  EXPECT_TRUE(chat.tools().has_parallel_tool_calls());

  // "none" without tools asks for nothing, as OpenAI reads it.
  auto none = Parse(R"({"model": "moa", "messages": [{"role": "user", "content": "x"}],
      "tools": [], "tool_choice": "none", "parallel_tool_calls": true})",
                    &e);
  ASSERT_TRUE(none.ok()) << e.message;
  EXPECT_EQ(none->chat.tools().ByteSizeLong(), 0u);
}

TEST(OpenAiApiTest, ImagePartsBecomeTheMessagesImages) {
  openai::HttpError e;
  auto parsed = Parse(R"({"model": "moa", "messages": [{"role": "user", "content": [
      {"type": "text", "text": "What is this?"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "high"}}]}]})",
                      &e);
  ASSERT_TRUE(parsed.ok()) << e.message;
  const v1::ChatMessage& m = parsed->chat.messages(0);
  EXPECT_EQ(m.content(), "What is this?");
  ASSERT_EQ(m.images_size(), 1);
  EXPECT_EQ(m.images(0).url(), "data:image/png;base64,AA==");
  EXPECT_EQ(m.images(0).detail(), "high");
  EXPECT_FALSE(Parse(R"({"model": "moa", "messages": [{"role": "user", "content": [
      {"type": "image_url", "image_url": {"url": "x", "size": 3}}]}]})",
                     &e)
                   .ok());
  EXPECT_EQ(e.param, "messages[0].content[0].image_url.size");
}

TEST(OpenAiApiTest, AnAnswerOfToolCallsIsRenderedAsOpenAiToolCalls) {
  openai::CallRecord record;
  v1::ChatEvent calls;
  v1::ToolCall* c = calls.mutable_answer_tool_calls()->add_calls();
  c->set_id("call_1");
  c->set_name("get_weather");
  c->set_arguments(R"({"city":"Oslo"})");
  record.Add(calls);
  v1::ChatEvent summary;
  summary.mutable_summary()->set_finish_reason("tool_calls");
  record.Add(summary);
  auto body = nlohmann::json::parse(openai::CompletionJson("id", 1, "moa", "", record));
  const auto& choice = body["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_TRUE(choice["message"]["content"].is_null());
  EXPECT_EQ(choice["message"]["tool_calls"][0]["id"], "call_1");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["type"], "function");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["arguments"], R"({"city":"Oslo"})");
  auto delta = nlohmann::json::parse(openai::ToolCallsDeltaJson(calls.answer_tool_calls()));
  EXPECT_EQ(delta["tool_calls"][0]["index"], 0);
  EXPECT_EQ(delta["tool_calls"][0]["function"]["arguments"], R"({"city":"Oslo"})");
}

TEST(OpenAiApiTest, RejectionsNameTheParam) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({"messages": []})", "model"},
      {R"({"model": "m"})", "messages"},
      {R"({"model": "m", "messages": [{"role": "function", "content": "x"}]})", "messages[0].role"},
      {R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content[0].image_url"},
      {R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]})",
       "messages[0].content[0].type"},
      {R"({"model": "m", "messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2})", "n"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"})",
       "temperature"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0})",
       "max_tokens"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": 3})", "stop"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"})",
       "stream"},
  };
  for (const Case& c : cases) {
    openai::HttpError e;
    EXPECT_FALSE(Parse(c.body, &e).ok()) << c.body;
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error");
  }
  openai::HttpError e;
  EXPECT_FALSE(Parse("not json", &e).ok());
  EXPECT_EQ(e.status, 400);
}

TEST(OpenAiApiTest, StatusesMapToOpenAiErrors) {
  auto bad = openai::ErrorFromStatus(absl::InvalidArgumentError("params.top_p must be in (0, 1]"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.param, "top_p");
  auto field = openai::ErrorFromStatus(absl::InvalidArgumentError("messages[0].content must not"));
  EXPECT_EQ(field.param, "messages[0].content");
  EXPECT_EQ(openai::ErrorFromStatus(absl::NotFoundError("x")).code, "model_not_found");
  EXPECT_EQ(openai::ErrorFromStatus(absl::NotFoundError("x")).status, 404);
  EXPECT_EQ(openai::ErrorFromStatus(absl::UnauthenticatedError("x")).status, 401);
  EXPECT_EQ(openai::ErrorFromStatus(absl::ResourceExhaustedError("x")).status, 429);
  EXPECT_EQ(openai::ErrorFromStatus(absl::UnavailableError("x")).status, 503);
  EXPECT_EQ(openai::ErrorFromStatus(absl::DeadlineExceededError("x")).status, 504);
  json j = json::parse(openai::ErrorJson(bad));
  EXPECT_EQ(j["error"]["param"], "top_p");
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_THAT(j["error"]["message"].get<std::string>(), HasSubstr("top_p"));
}

TEST(OpenAiApiTest, CompletionUsageSumsEveryCallAndTheExtensionListsProposals) {
  openai::CallRecord record;
  v1::ChatEvent accepted;
  accepted.mutable_accepted()->set_pipeline("moa");
  record.Add(accepted);
  v1::ChatEvent failed;
  failed.mutable_proposal_failed()->mutable_ref()->set_layer(1);
  failed.mutable_proposal_failed()->mutable_ref()->set_model("b");
  failed.mutable_proposal_failed()->mutable_status()->set_code(14);
  failed.mutable_proposal_failed()->mutable_status()->set_message("down");
  record.Add(failed);
  v1::ChatEvent summary;
  auto* u1 = summary.mutable_summary()->add_usage();
  u1->set_model("a");
  u1->mutable_usage()->set_prompt_tokens(10);
  u1->mutable_usage()->set_completion_tokens(20);
  auto* u2 = summary.mutable_summary()->add_usage();
  u2->set_model("z");
  u2->mutable_usage()->set_prompt_tokens(40);
  u2->mutable_usage()->set_completion_tokens(30);
  summary.mutable_summary()->set_finish_reason("length");
  record.Add(summary);
  json c = json::parse(openai::CompletionJson("id-1", 5, "moa", "answer", record));
  EXPECT_EQ(c["usage"]["prompt_tokens"], 50);
  EXPECT_EQ(c["usage"]["completion_tokens"], 50);
  EXPECT_EQ(c["usage"]["total_tokens"], 100);
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(c["choices"][0]["message"]["content"], "answer");
  EXPECT_EQ(c["moa"]["pipeline"], "moa");
  EXPECT_EQ(c["moa"]["proposals"][0]["outcome"], "UNAVAILABLE");
  EXPECT_EQ(c["moa"]["proposals"][0]["error"], "down");
  EXPECT_EQ(c["moa"]["usage"][1]["model"], "z");
}

TEST(OpenAiApiTest, ChunksAreSseEventsOfChatCompletionChunks) {
  std::string e = openai::ChunkEvent("id", 1, "moa", openai::ContentDeltaJson("hi \"x\""), "null");
  ASSERT_EQ(e.rfind("data: ", 0), 0u);
  ASSERT_EQ(e.substr(e.size() - 2), "\n\n");
  json j = json::parse(e.substr(6));
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  EXPECT_EQ(j["choices"][0]["delta"]["content"], "hi \"x\"");
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
}

TEST(OpenAiApiTest, WrongTypesAnywhereAre400NamingTheFieldNeverACrash) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({"model":"moa","messages":[{"role":"user","content":[{"type":5,"text":"a"}]}]})",
       "messages[0].content[0].type"},
      {R"({"model":"moa","messages":[{"role":"user","content":[{"type":"text","text":7}]}]})",
       "messages[0].content[0].text"},
      {R"({"model":"moa","messages":[{"role":"user","content":[7]}]})",
       "messages[0].content[0].type"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],
          "stream_options":{"include_usage":"yes"}})",
       "stream_options.include_usage"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"stream_options":3})",
       "stream_options"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"stream":"true"})", "stream"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"seed":"1"})", "seed"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"seed":1.5})", "seed"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"max_tokens":1e30})",
       "max_tokens"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"temperature":"hot"})",
       "temperature"},
      {R"({"model":"moa","messages":[{"role":7,"content":"a"}]})", "messages[0].role"},
      {R"({"model":"moa","messages":["hi"]})", "messages[0].role"},
      {R"({"model":["moa"],"messages":[]})", "model"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"n":"2"})", "n"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"moa_step_seed":"7"})",
       "moa_step_seed"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"moa_step_seed":-1})",
       "moa_step_seed"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],"moa_step_seed":1.5})",
       "moa_step_seed"},
      {R"({"model":"moa","messages":[{"role":"user","content":"a"}],
          "moa_step_seed":18446744073709551615})",
       "moa_step_seed"},
  };
  for (const Case& c : cases) {
    openai::HttpError e;
    absl::StatusOr<openai::ParsedRequest> r;
    ASSERT_NO_THROW(r = Parse(c.body, &e)) << c.body;
    EXPECT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
  }
}

TEST(OpenAiApiTest, TheStepSeedExtensionSetsTheRequestsSeed) {
  openai::HttpError e;
  auto r = Parse(R"({"model":"moa","messages":[{"role":"user","content":"a"}],
                     "moa_step_seed":9007199254740991})",
                 &e);
  ASSERT_TRUE(r.ok()) << e.message;
  EXPECT_EQ(r->chat.step_seed(), 9007199254740991u);
  auto unset = Parse(R"({"model":"moa","messages":[{"role":"user","content":"a"}]})", &e);
  ASSERT_TRUE(unset.ok());
  EXPECT_FALSE(unset->chat.has_step_seed());
}

TEST(OpenAiApiTest, DeeplyNestedBodyIs400) {
  openai::HttpError e;
  std::string body = R"({"model":"moa","messages":[{"role":"user","content":"a"}],"x":)" +
                     std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_FALSE(Parse(body, &e).ok());
  EXPECT_EQ(e.status, 400);
}

TEST(OpenAiApiTest, ResponsesWithInvalidUtf8FromPeersStillSerialize) {
  openai::CallRecord record;
  v1::ChatEvent failed;
  failed.mutable_proposal_failed()->mutable_ref()->set_model("m");
  failed.mutable_proposal_failed()->mutable_status()->set_code(14);
  failed.mutable_proposal_failed()->mutable_status()->set_message("bad \xff bytes");
  record.Add(failed);
  std::string out;
  ASSERT_NO_THROW(out = openai::CompletionJson("id", 1, "moa", "answer \xfe", record));
  EXPECT_TRUE(json::accept(out));
  EXPECT_NO_THROW((void)openai::ErrorJson({400, "bad \xff", "t", "p\xfe", ""}));
}

}  // namespace
}  // namespace moa::orchestrator
