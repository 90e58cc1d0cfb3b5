#include "lib/llm/openai_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace moa::llm {
namespace {

using nlohmann::json;

TEST(OpenAiJsonTest, BodyAsksForStreamingWithUsageAndOnlySetParams) {
  ChatRequest req;
  req.messages = {{llm::Role::kSystem, "be brief"}, {llm::Role::kUser, "hi"}};
  req.params.temperature = 0.7;
  req.params.max_tokens = 64;
  json body = json::parse(BuildChatCompletionBody("meta/llama", req));
  EXPECT_EQ(body["model"], "meta/llama");
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_EQ(body["messages"][0]["role"], "system");
  EXPECT_EQ(body["messages"][1]["content"], "hi");
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.7);
  EXPECT_EQ(body["max_tokens"], 64);
  EXPECT_FALSE(body.contains("top_p"));
  EXPECT_FALSE(body.contains("seed"));
  EXPECT_FALSE(body.contains("stop"));
}

TEST(OpenAiJsonTest, BodyCarriesSeedTopPAndStop) {
  ChatRequest req;
  req.messages = {{llm::Role::kUser, "hi"}};
  req.params.top_p = 0.9;
  req.params.seed = 42;
  req.params.stop = {"\n\n", "END"};
  json body = json::parse(BuildChatCompletionBody("m", req));
  EXPECT_FALSE(body.contains("continue_final_message"));
  req.continue_final_message = true;
  json vllm = json::parse(BuildChatCompletionBody("m", req));
  EXPECT_EQ(vllm["continue_final_message"], true) << "vLLM continues the trailing message";
  EXPECT_EQ(vllm["add_generation_prompt"], false);
  EXPECT_DOUBLE_EQ(body["top_p"].get<double>(), 0.9);
  EXPECT_EQ(body["seed"], 42);
  EXPECT_EQ(body["stop"], json::array({"\n\n", "END"}));
}

TEST(OpenAiJsonTest, ChunkWithContentAndFinishReason) {
  auto chunk = ParseStreamChunk(
      R"({"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]})");
  ASSERT_TRUE(chunk.ok());
  EXPECT_EQ(chunk->delta, "Hi");
  EXPECT_EQ(chunk->finish_reason, "stop");
  EXPECT_FALSE(chunk->usage);
  EXPECT_FALSE(chunk->error);
}

TEST(OpenAiJsonTest, RoleOnlyAndNullContentChunksHaveNoDelta) {
  auto role = ParseStreamChunk(R"({"choices":[{"delta":{"role":"assistant"}}]})");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(role->delta, "");
  auto null_content = ParseStreamChunk(R"({"choices":[{"delta":{"content":null}}]})");
  ASSERT_TRUE(null_content.ok());
  EXPECT_EQ(null_content->delta, "");
}

TEST(OpenAiJsonTest, UsageChunkWithEmptyChoices) {
  auto chunk =
      ParseStreamChunk(R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34}})");
  ASSERT_TRUE(chunk.ok());
  ASSERT_TRUE(chunk->usage);
  EXPECT_EQ(chunk->usage->prompt_tokens, 12);
  EXPECT_EQ(chunk->usage->completion_tokens, 34);
}

TEST(OpenAiJsonTest, ErrorObjectAfterTheOkIsAnError) {
  auto chunk =
      ParseStreamChunk(R"({"error":{"message":"model overloaded","type":"server_error"}})");
  ASSERT_TRUE(chunk.ok());
  ASSERT_TRUE(chunk->error);
  EXPECT_EQ(chunk->error->code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(chunk->error->message().find("model overloaded"), absl::string_view::npos);
}

TEST(OpenAiJsonTest, ErrorObjectWithHttpCodeMapsLikeTheHttpStatus) {
  auto chunk = ParseStreamChunk(R"({"error":{"message":"slow down","code":429}})");
  ASSERT_TRUE(chunk.ok());
  ASSERT_TRUE(chunk->error);
  EXPECT_EQ(chunk->error->code(), absl::StatusCode::kResourceExhausted);
}

TEST(OpenAiJsonTest, MalformedChunkIsInternal) {
  EXPECT_EQ(ParseStreamChunk(R"({"choices": [{"delta": {"content": "tru)").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ParseStreamChunk("[1,2]").status().code(), absl::StatusCode::kInternal);
}

TEST(OpenAiJsonTest, ErrorMessageFromOpenAiBodyAndFromPlainText) {
  EXPECT_EQ(ErrorMessageFromBody(R"({"error":{"message":"Invalid API key","type":"x"}})"),
            "Invalid API key");
  EXPECT_EQ(ErrorMessageFromBody(R"({"error":"model not found"})"), "model not found");
  EXPECT_EQ(ErrorMessageFromBody("Bad Gateway\r\n"), "Bad Gateway  ");
  EXPECT_EQ(ErrorMessageFromBody(""), "no error message");
}

TEST(OpenAiJsonTest, AMistypedUsageIsANamedProtocolErrorNotACrash) {
  // Null means "not reported".
  auto null_usage = ParseStreamChunk(R"({"choices": [], "usage": {"prompt_tokens": null}})");
  ASSERT_TRUE(null_usage.ok()) << null_usage.status();
  EXPECT_EQ(null_usage->usage->prompt_tokens, 0);
  for (const char* bad :
       {R"({"usage": {"prompt_tokens": "12"}})", R"({"usage": {"completion_tokens": 1.5}})",
        R"({"usage": {"prompt_tokens": -3}})",
        R"({"usage": {"prompt_tokens": 99999999999999999999}})", R"({"usage": "lots"})"}) {
    auto chunk = ParseStreamChunk(bad);
    ASSERT_FALSE(chunk.ok()) << bad;
    EXPECT_EQ(chunk.status().code(), absl::StatusCode::kInternal) << bad;
    EXPECT_THAT(std::string(chunk.status().message()), ::testing::HasSubstr("usage")) << bad;
  }
}

TEST(OpenAiJsonTest, ChunksWithOddTypesElsewhereAreTolerated) {
  for (const char* odd :
       {R"({"choices": [{"delta": {"content": 5}, "finish_reason": 1}]})", R"({"choices": "x"})",
        R"({"choices": [{"delta": []}]})", R"({"error": {"message": 5, "code": "x"}})",
        R"({"error": {"code": 99999999999999999999}})"}) {
    EXPECT_NO_THROW((void)ParseStreamChunk(odd)) << odd;
  }
}

TEST(OpenAiJsonTest, UpstreamErrorTextIsCutAndLosesCredentials) {
  std::string body = R"({"error":{"message":"echo Authorization: Bearer sk-secret )" +
                     std::string(5000, 'x') + R"("}})";
  std::string message = ErrorMessageFromBody(body);
  EXPECT_LE(message.size(), 520u);
  EXPECT_EQ(message.find("sk-secret"), std::string::npos);
}

// The scanner that reads common stream events without building a tree.
TEST(OpenAiJsonTest, CommonEventsOfEveryServerTakeTheScanner) {
  const char* common[] = {
      // OpenAI.
      R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1694268190,)"
      R"("model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,)"
      R"("delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]})",
      // vLLM's first event: role and empty content.
      R"({"id":"cmpl-1","object":"chat.completion.chunk","created":1,"model":"m",)"
      R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,)"
      R"("finish_reason":null}]})",
      // The last token event, spaced out.
      " { \"choices\" : [ { \"delta\" : { } , \"finish_reason\" : \"length\" } ] }\r\n",
  };
  for (const char* event : common) {
    auto scanned = ScanCommonStreamChunk(event);
    ASSERT_TRUE(scanned.has_value()) << event;
    auto tree = ParseStreamChunkTree(event);
    ASSERT_TRUE(tree.ok()) << event;
    EXPECT_EQ(scanned->delta, tree->delta) << event;
    EXPECT_EQ(scanned->finish_reason, tree->finish_reason) << event;
  }
  EXPECT_EQ(ScanCommonStreamChunk(common[0])->delta, "Hello");
  EXPECT_EQ(ScanCommonStreamChunk(common[2])->finish_reason, "length");
}

TEST(OpenAiJsonTest, TheScannerDecodesTextAsTheTreeParserDoes) {
  const char* texts[] = {
      R"({"choices":[{"delta":{"content":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"}}]})",
      "{\"choices\":[{\"delta\":{\"content\":\"\xE6\x97\xA5\xE6\x9C\xAC \xC3\xBC "
      "\xF0\x9F\x98\x80\"}}]}",
      R"({"choices":[{"delta":{"content":"\u0000x"}}], "n": [-0.5, 0, 12, true, false, null]})",
      R"({"choices":[{"delta":{"content":"a"}}, 5, "x"]})",
  };
  for (const char* event : texts) {
    auto scanned = ScanCommonStreamChunk(event);
    ASSERT_TRUE(scanned.has_value()) << event;
    auto tree = ParseStreamChunkTree(event);
    ASSERT_TRUE(tree.ok()) << event;
    EXPECT_EQ(scanned->delta, tree->delta) << event;
  }
  EXPECT_EQ(ScanCommonStreamChunk(texts[0])->delta,
            "caf\xC3\xA9 \xF0\x9F\x98\x80 \"q\" \\ / \b\f\n\r\t");
}

TEST(OpenAiJsonTest, WhatTheScannerDoesNotFullyUnderstandGoesToTheTreeParser) {
  const char* others[] = {
      R"({"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}})",
      R"({"error":{"message":"overloaded"}})",
      R"({"choices":[{"delta":{"content":"a","content":"b"}}]})",  // Duplicate key.
      R"({"choices":[],"choices":[{"delta":{"content":"b"}}]})",
      R"({"choices":[{"delta":{"content":"a"}}],"n":1e400})",  // Exponent.
      R"({"choices":[{"delta":{"content":"a"}}],"n":1234567890123456789})",
      R"({"cho\u0069ces":[{"delta":{"content":"a"}}]})",             // Escaped key.
      "\xEF\xBB\xBF{\"choices\":[]}",                                // Byte order mark.
      "{\"choices\":[{\"delta\":{\"content\":\"\xC0\xAF\"}}]}",      // Overlong UTF-8.
      "{\"choices\":[{\"delta\":{\"content\":\"\xED\xA0\x80\"}}]}",  // Encoded surrogate.
      R"({"choices":[{"delta":{"content":"\udc00"}}]})",             // Lone low surrogate.
      R"({"choices":[{"delta":{"content":5}}]})",
      R"({"choices":[7]})",
      R"({"choices":[{"delta":"x"}]})",
      R"({"choices":[{"delta":{"content":"a"}}]} x)",
      R"({"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})",
      "{\"choices\":[{\"delta\":{\"content\":\"a\tb\"}}]}",  // Raw control character.
      "[1]",
      "",
  };
  for (const char* event : others) {
    EXPECT_FALSE(ScanCommonStreamChunk(event).has_value()) << event;
  }
  // And the tree parser decides: invalid text is the upstream's protocol error.
  for (int i : {8, 9, 10, 14, 16}) {
    EXPECT_EQ(ParseStreamChunk(others[i]).status().code(), absl::StatusCode::kInternal)
        << others[i];
  }
  auto usage = ParseStreamChunk(others[0]);
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->usage->completion_tokens, 2);
  auto last_wins = ParseStreamChunk(others[2]);
  ASSERT_TRUE(last_wins.ok());
  EXPECT_EQ(last_wins->delta, "b");
}

}  // namespace
}  // namespace moa::llm

namespace moa::llm {
namespace {

std::vector<Message> ToolConversation() {
  return {{Role::kUser, "weather in Oslo and Bergen?"},
          {Role::kAssistant,
           "Looking.",
           {{"c1", "get_weather", R"({"city":"Oslo"})"}, {"c2", "get_weather", "{}"}}},
          {Role::kTool, "12 C", {}, "c1"},
          {Role::kTool, "9 C", {}, "c2"}};
}

TEST(OpenAiJsonTest, ACallWithToolsSendsThemAndTheToolTurnsNatively) {
  ChatRequest req;
  req.messages = ToolConversation();
  req.tools.tools = {{"get_weather", "Weather now", R"({"type":"object"})", true}};
  req.tools.choice_function = "get_weather";
  req.tools.parallel_tool_calls = false;
  json body = json::parse(BuildChatCompletionBody("m", req));
  EXPECT_EQ(body["tools"][0]["type"], "function");
  EXPECT_EQ(body["tools"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(body["tools"][0]["function"]["description"], "Weather now");
  EXPECT_EQ(body["tools"][0]["function"]["parameters"], json({{"type", "object"}}));
  EXPECT_EQ(body["tools"][0]["function"]["strict"], true);
  EXPECT_EQ(body["tool_choice"],
            json({{"type", "function"}, {"function", {{"name", "get_weather"}}}}));
  EXPECT_EQ(body["parallel_tool_calls"], false);
  const json& messages = body["messages"];
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[1]["tool_calls"][0]["id"], "c1");
  EXPECT_EQ(messages[1]["tool_calls"][0]["function"]["arguments"], R"({"city":"Oslo"})");
  EXPECT_EQ(messages[2]["role"], "tool");
  EXPECT_EQ(messages[2]["tool_call_id"], "c1");
  req.tools.choice_function.clear();
  req.tools.choice = "required";
  EXPECT_EQ(json::parse(BuildChatCompletionBody("m", req))["tool_choice"], "required");
}

TEST(OpenAiJsonTest, ACallWithoutToolsGetsTheToolTurnsAsText) {
  ChatRequest req;
  req.messages = ToolConversation();
  json body = json::parse(BuildChatCompletionBody("m", req));
  EXPECT_FALSE(body.contains("tools"));
  EXPECT_FALSE(body.contains("tool_choice"));
  const json& messages = body["messages"];
  ASSERT_EQ(messages.size(), 3u) << "the two results are one user turn: " << messages.dump();
  EXPECT_EQ(messages[1]["role"], "assistant");
  EXPECT_EQ(messages[1]["content"],
            "Looking.\n[called tool get_weather with arguments {\"city\":\"Oslo\"}]\n"
            "[called tool get_weather with arguments {}]");
  EXPECT_FALSE(messages[1].contains("tool_calls"));
  EXPECT_EQ(messages[2]["role"], "user");
  EXPECT_EQ(messages[2]["content"],
            "[result of tool get_weather]\n12 C\n\n[result of tool get_weather]\n9 C");
}

TEST(OpenAiJsonTest, AMessageWithImagesIsSentAsTextAndImageParts) {
  ChatRequest req;
  Message m{Role::kUser, "What is this?"};
  m.images = {{"data:image/png;base64,AA==", "low"}, {"https://example.com/cat.jpg", ""}};
  req.messages = {m};
  json body = json::parse(BuildChatCompletionBody("m", req));
  EXPECT_EQ(body["messages"][0]["content"],
            json::parse(R"([{"type": "text", "text": "What is this?"},
              {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}},
              {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}])"));
}

TEST(OpenAiJsonTest, ToolCallFragmentsAreReadAndMalformedOnesNamed) {
  auto first = ParseStreamChunk(
      R"({"choices":[{"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,)"
      R"("id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},)"
      R"("finish_reason":null}]})");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->tool_calls.size(), 1u);
  EXPECT_EQ(first->tool_calls[0].id, "call_1");
  EXPECT_EQ(first->tool_calls[0].name, "get_weather");
  auto next = ParseStreamChunk(
      R"({"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"ci"}}]}}]})");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->tool_calls[0].index, 1);
  EXPECT_EQ(next->tool_calls[0].arguments, "{\"ci");
  // The fast scanner leaves tool calls to the tree parser, but not an empty list.
  EXPECT_FALSE(ScanCommonStreamChunk(R"({"choices":[{"delta":{"tool_calls":[{"index":0}]}}]})"));
  auto empty = ScanCommonStreamChunk(R"({"choices":[{"delta":{"content":"a","tool_calls":[]}}]})");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->delta, "a");
  for (const char* bad : {
           R"({"choices":[{"delta":{"tool_calls":{}}}]})",
           R"({"choices":[{"delta":{"tool_calls":[7]}}]})",
           R"({"choices":[{"delta":{"tool_calls":[{"index":128}]}}]})",
           R"({"choices":[{"delta":{"tool_calls":[{"index":-1}]}}]})",
           R"({"choices":[{"delta":{"tool_calls":[{"id":5}]}}]})",
           R"({"choices":[{"delta":{"tool_calls":[{"function":"f"}]}}]})",
           R"({"choices":[{"delta":{"tool_calls":[{"function":{"arguments":{}}}]}}]})",
       }) {
    auto chunk = ParseStreamChunk(bad);
    ASSERT_FALSE(chunk.ok()) << bad;
    EXPECT_EQ(chunk.status().code(), absl::StatusCode::kInternal) << bad;
    EXPECT_THAT(chunk.status().message(), testing::HasSubstr("delta.tool_calls")) << bad;
  }
}

}  // namespace
}  // namespace moa::llm
