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

}  // namespace
}  // namespace moa::llm
