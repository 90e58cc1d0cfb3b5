// The Anthropic and Gemini dialects against the providers' documented
// examples (tests/data/providers, each with its source): request bodies
// compared as JSON, streams read byte for byte split at every position.
#include "lib/llm/dialect.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lib/llm/anthropic_dialect.h"
#include "lib/llm/gemini_dialect.h"
#include "lib/llm/openai_json.h"

namespace moa::llm {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string ReadData(const std::string& name) {
  std::ifstream in(std::string(MOA_SOURCE_DIR) + "/tests/data/providers/" + name, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  EXPECT_FALSE(s.str().empty()) << name;
  return s.str();
}

// What a whole stream carried, put together as the client does.
struct Read {
  std::string text;
  std::string reasoning;
  std::map<int, ToolCall> calls;
  std::optional<std::string> finish_reason;
  Usage usage;
  bool done = false;
  std::optional<absl::Status> error;
  bool operator==(const Read& o) const {
    auto same_calls = [&] {
      if (calls.size() != o.calls.size()) return false;
      for (const auto& [i, c] : calls) {
        auto it = o.calls.find(i);
        if (it == o.calls.end() || it->second.id != c.id || it->second.name != c.name ||
            it->second.arguments != c.arguments) {
          return false;
        }
      }
      return true;
    };
    return text == o.text && reasoning == o.reasoning && same_calls() &&
           finish_reason == o.finish_reason && usage.prompt_tokens == o.usage.prompt_tokens &&
           usage.completion_tokens == o.usage.completion_tokens &&
           usage.reasoning_tokens == o.usage.reasoning_tokens && done == o.done &&
           error.has_value() == o.error.has_value();
  }
};

Read ReadStream(absl::string_view bytes, StreamReader& reader, size_t split) {
  Read out;
  SseParser parser;
  auto on_event = [&](const SseEvent& e) {
    absl::StatusOr<StreamChunk> chunk = reader.Read(e);
    ASSERT_TRUE(chunk.ok()) << chunk.status() << " in " << e.data;
    out.text += chunk->delta;
    out.reasoning += chunk->reasoning;
    for (const ToolCallFragment& f : chunk->tool_calls) {
      ToolCall& c = out.calls[f.index];
      if (c.id.empty()) c.id = f.id;
      if (c.name.empty()) c.name = f.name;
      c.arguments += f.arguments;
    }
    if (chunk->finish_reason) out.finish_reason = chunk->finish_reason;
    if (chunk->usage) out.usage = *chunk->usage;
    if (chunk->done) out.done = true;
    if (chunk->error) out.error = chunk->error;
  };
  EXPECT_TRUE(parser.Feed(bytes.substr(0, split), on_event));
  EXPECT_TRUE(parser.Feed(bytes.substr(split), on_event));
  return out;
}

// Reads `file` whole, then split at every byte, and expects the same each
// time; returns the whole read.
template <typename NewReader>
Read ReadEverySplit(const std::string& file, NewReader new_reader) {
  const std::string bytes = ReadData(file);
  std::unique_ptr<StreamReader> whole = new_reader();
  Read expected = ReadStream(bytes, *whole, bytes.size());
  for (size_t split = 0; split < bytes.size(); ++split) {
    std::unique_ptr<StreamReader> reader = new_reader();
    Read got = ReadStream(bytes, *reader, split);
    if (!(got == expected)) {
      ADD_FAILURE() << file << " read differently when split at byte " << split;
      break;
    }
  }
  return expected;
}

TEST(AnthropicDialectTest, ReadsTheDocumentedTextStreamAtEverySplit) {
  Read r = ReadEverySplit("anthropic_stream_text.sse", NewAnthropicStreamReader);
  EXPECT_EQ(r.text, "Hello!");
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.usage.prompt_tokens, 25);
  EXPECT_EQ(r.usage.completion_tokens, 15);
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(r.calls.empty());
}

TEST(AnthropicDialectTest, ReadsTheDocumentedToolUseStreamAtEverySplit) {
  Read r = ReadEverySplit("anthropic_stream_tool_use.sse", NewAnthropicStreamReader);
  EXPECT_EQ(r.text, "Okay,  let's check the weather for San Francisco, CA:");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(r.calls[0].arguments),
            json::parse(R"({"location": "San Francisco, CA", "unit": "fahrenheit"})"));
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.usage.prompt_tokens, 472);
  EXPECT_EQ(r.usage.completion_tokens, 89);
}

TEST(AnthropicDialectTest, ThinkingIsReasoningNeverAnswerText) {
  Read r = ReadEverySplit("anthropic_stream_thinking.sse", NewAnthropicStreamReader);
  EXPECT_EQ(r.text, "27 * 453 = 12,231");
  EXPECT_THAT(r.reasoning, HasSubstr("453 = 400 + 50 + 3"));
  EXPECT_THAT(r.text, ::testing::Not(HasSubstr("step by step")));
  EXPECT_EQ(r.finish_reason, "stop");
}

TEST(AnthropicDialectTest, AnOverloadedErrorEventIsUnavailable) {
  Read r = ReadEverySplit("anthropic_stream_error.sse", NewAnthropicStreamReader);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.error->message()), HasSubstr("overloaded_error"));
  EXPECT_FALSE(r.done);
}

TEST(AnthropicDialectTest, ErrorTypesMapToStatuses) {
  auto code_of = [](absl::string_view type) {
    auto reader = NewAnthropicStreamReader();
    auto chunk = reader->Read({"error", absl::StrCat(R"({"type":"error","error":{"type":")", type,
                                                     R"(","message":"m"}})")});
    EXPECT_TRUE(chunk.ok() && chunk->error);
    return chunk.ok() && chunk->error ? chunk->error->code() : absl::StatusCode::kOk;
  };
  EXPECT_EQ(code_of("rate_limit_error"), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(code_of("invalid_request_error"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of("authentication_error"), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(code_of("api_error"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(code_of("some_new_error"), absl::StatusCode::kUnavailable);
}

TEST(AnthropicDialectTest, MalformedEventsAreNamedErrors) {
  for (
      const char* data : {
          "not json",
          "[1]",
          R"({"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}})",
          R"({"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}})",
          R"({"type":"message_delta","delta":{"stop_reason":"exploded"}})",
          R"({"type":"message_delta","usage":{"output_tokens":-1}})",
          R"({"type":"message_start","message":{"usage":"lots"}})",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":7}})",
      }) {
    auto reader = NewAnthropicStreamReader();
    absl::StatusOr<StreamChunk> chunk = reader->Read({"", data});
    EXPECT_EQ(chunk.status().code(), absl::StatusCode::kInternal) << data;
  }
}

TEST(AnthropicDialectTest, BodyMatchesTheDocumentedToolRequest) {
  ChatRequest req;
  req.messages = {{Role::kUser, "What's the weather like in San Francisco?"},
                  {Role::kAssistant, "I'll check the current weather in San Francisco for you."},
                  {Role::kTool, "15 degrees"}};
  req.messages[1].tool_calls = {
      {"toolu_01A09q90qw90lq917835lq9", "get_weather", R"({"location": "San Francisco, CA"})"}};
  req.messages[2].tool_call_id = "toolu_01A09q90qw90lq917835lq9";
  req.params.max_tokens = 1024;
  req.tools.tools = {{"get_weather", "Get the current weather in a given location",
                      R"({"type": "object", "properties": {"location": {"type": "string",
                          "description": "The city and state, e.g. San Francisco, CA"}},
                          "required": ["location"]})"}};
  absl::StatusOr<std::string> body = BuildAnthropicBody("claude-opus-4-1", req, {});
  ASSERT_TRUE(body.ok()) << body.status();
  json expected = json::parse(ReadData("anthropic_request_tools.json"));
  // Two forms the API documents as the same: a string content is one text
  // block; and this client always streams.
  expected["messages"][0]["content"] = {
      {{"type", "text"}, {"text", expected["messages"][0]["content"]}}};
  expected["stream"] = true;
  EXPECT_EQ(json::parse(*body), expected);
}

TEST(AnthropicDialectTest, BodyPutsSystemApartMergesTurnsAndTrimsAPrefill) {
  ChatRequest req;
  req.messages = {{Role::kSystem, "be brief"},
                  {Role::kUser, "a"},
                  {Role::kUser, "b"},
                  {Role::kSystem, "and kind"},
                  {Role::kAssistant, "The answer is  \n"}};
  req.params.temperature = 0.5;
  req.params.stop = {"END"};
  json body = json::parse(*BuildAnthropicBody("m", req, {}));
  EXPECT_EQ(body["system"], "be brief\n\nand kind");
  ASSERT_EQ(body["messages"].size(), 2u);
  EXPECT_EQ(body["messages"][0]["content"].size(), 2u);
  EXPECT_EQ(body["messages"][1]["content"][0]["text"], "The answer is");
  EXPECT_EQ(body["max_tokens"], kAnthropicDefaultMaxTokens);
  EXPECT_EQ(body["stop_sequences"], json::array({"END"}));
  EXPECT_EQ(body["temperature"], 0.5);
}

TEST(AnthropicDialectTest, BodyMapsToolChoiceImagesAndThinking) {
  ChatRequest req;
  req.messages = {{Role::kUser, "look"}};
  req.messages[0].images = {{"data:image/png;base64,iVBORw0K", ""},
                            {"https://example.com/a.png", ""}};
  req.tools.tools = {{"f", "", ""}};
  req.tools.choice = "required";
  req.tools.parallel_tool_calls = false;
  req.params.max_tokens = 3000;
  ReasoningSettings thinking;
  thinking.budget_tokens = 2048;
  json body = json::parse(*BuildAnthropicBody("m", req, thinking));
  EXPECT_EQ(body["tool_choice"], json::parse(R"({"type":"any","disable_parallel_tool_use":true})"));
  EXPECT_EQ(body["tools"][0]["input_schema"], json::parse(R"({"type":"object"})"));
  EXPECT_EQ(body["messages"][0]["content"][1]["source"],
            json::parse(R"({"type":"base64","media_type":"image/png","data":"iVBORw0K"})"));
  EXPECT_EQ(body["messages"][0]["content"][2]["source"]["type"], "url");
  EXPECT_EQ(body["thinking"], json::parse(R"({"type":"enabled","budget_tokens":2048})"));
  req.params.max_tokens.reset();
  EXPECT_EQ(json::parse(*BuildAnthropicBody("m", req, thinking))["max_tokens"],
            2048 + kAnthropicDefaultMaxTokens);
  req.tools.choice.clear();
  req.tools.choice_function = "f";
  req.tools.parallel_tool_calls.reset();
  EXPECT_EQ(json::parse(*BuildAnthropicBody("m", req, {}))["tool_choice"],
            json::parse(R"({"type":"tool","name":"f"})"));
}

TEST(AnthropicDialectTest, RefusesByNameWhatItCannotMap) {
  auto refusal = [](ChatRequest req, ReasoningSettings r = {}) {
    if (req.messages.empty()) req.messages = {{Role::kUser, "hi"}};
    absl::StatusOr<std::string> body = BuildAnthropicBody("m", req, r);
    EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(body.status().message());
  };
  ReasoningSettings thinking;
  thinking.budget_tokens = 2048;
  ChatRequest seed;
  seed.params.seed = 7;
  EXPECT_THAT(refusal(seed), HasSubstr("no seed"));
  ChatRequest hot;
  hot.params.temperature = 1.5;
  EXPECT_THAT(refusal(hot), HasSubstr("temperature must be between 0 and 1"));
  ChatRequest warm;
  warm.params.temperature = 0.7;
  EXPECT_THAT(refusal(warm, thinking), HasSubstr("while thinking is on"));
  ChatRequest small;
  small.params.max_tokens = 1000;
  EXPECT_THAT(refusal(small, thinking), HasSubstr("over the thinking budget"));
  ChatRequest bad_args;
  bad_args.messages = {{Role::kUser, "hi"}, {Role::kAssistant, ""}};
  bad_args.messages[1].tool_calls = {{"c1", "f", "[1,2]"}};
  bad_args.tools.tools = {{"f", "", ""}};
  EXPECT_THAT(refusal(bad_args), HasSubstr("messages[1].tool_calls[0].arguments"));
  ChatRequest prefill;
  prefill.messages = {{Role::kUser, "hi"}, {Role::kAssistant, "The"}};
  EXPECT_THAT(refusal(prefill, thinking), HasSubstr("cannot be continued"));
}

TEST(GeminiDialectTest, ReadsTheDocumentedTextStreamAtEverySplit) {
  Read r = ReadEverySplit("gemini_stream_text.sse", NewGeminiStreamReader);
  EXPECT_EQ(r.text,
            "The old lighthouse keeper, Silas, had seen a thousand storms. None were like this "
            "one.");
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.usage.prompt_tokens, 9);
  // Thinking is billed as output: completion includes it, and says how much.
  EXPECT_EQ(r.usage.completion_tokens, 23 + 1022);
  EXPECT_EQ(r.usage.reasoning_tokens, 1022);
}

TEST(GeminiDialectTest, ReadsTheDocumentedFunctionCallAtEverySplit) {
  Read r = ReadEverySplit("gemini_stream_function_call.sse", NewGeminiStreamReader);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "schedule_meeting");
  EXPECT_EQ(json::parse(r.calls[0].arguments)["attendees"], json::array({"Bob", "Alice"}));
  EXPECT_TRUE(r.calls[0].id.empty());  // Gemini sends none; the client makes one up.
  EXPECT_EQ(r.finish_reason, "stop");  // The client says tool_calls when calls came.
}

TEST(GeminiDialectTest, ThoughtPartsAreReasoning) {
  Read r = ReadEverySplit("gemini_stream_thinking.sse", NewGeminiStreamReader);
  EXPECT_EQ(r.text, "The Japanese person owns the zebra.");
  EXPECT_THAT(r.reasoning, HasSubstr("Analyzing the puzzle"));
  EXPECT_EQ(r.usage.reasoning_tokens, 1400);
  EXPECT_EQ(r.usage.completion_tokens, 1408);
}

TEST(GeminiDialectTest, ErrorsBlocksAndMalformedEvents) {
  auto read = [](absl::string_view data) {
    auto reader = NewGeminiStreamReader();
    return reader->Read({"", std::string(data)});
  };
  auto limited = read(
      R"({"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}})");
  ASSERT_TRUE(limited.ok() && limited->error);
  EXPECT_EQ(limited->error->code(), absl::StatusCode::kResourceExhausted);
  auto blocked = read(R"({"promptFeedback":{"blockReason":"SAFETY"}})");
  ASSERT_TRUE(blocked.ok() && blocked->error);
  EXPECT_THAT(std::string(blocked->error->message()), HasSubstr("blockReason SAFETY"));
  auto filtered = read(R"({"candidates":[{"finishReason":"RECITATION"}]})");
  ASSERT_TRUE(filtered.ok());
  EXPECT_EQ(filtered->finish_reason, "content_filter");
  auto bad_call = read(R"({"candidates":[{"finishReason":"MALFORMED_FUNCTION_CALL"}]})");
  ASSERT_TRUE(bad_call.ok() && bad_call->error);
  for (const char* data :
       {"{", R"({"candidates":{}})", R"({"candidates":[{"content":{"parts":[{"text":1}]}}]})",
        R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":[1]}}]}}]})",
        R"({"candidates":[{"finishReason":"stop now please"}]})",
        R"({"usageMetadata":{"promptTokenCount":"9"}})"}) {
    EXPECT_EQ(read(data).status().code(), absl::StatusCode::kInternal) << data;
  }
}

TEST(GeminiDialectTest, BodyMatchesTheDocumentedFunctionCallingRequest) {
  json doc = json::parse(ReadData("gemini_request_tools.json"));
  ChatRequest req;
  req.messages = {{Role::kUser, doc["contents"][0]["parts"][0]["text"].get<std::string>()},
                  {Role::kAssistant, ""},
                  {Role::kTool, "Meeting scheduled."}};
  req.messages[1].tool_calls = {{"call_1", "schedule_meeting",
                                 doc["contents"][1]["parts"][0]["functionCall"]["args"].dump()}};
  req.messages[2].tool_call_id = "call_1";
  const json& declaration = doc["tools"][0]["functionDeclarations"][0];
  req.tools.tools = {{"schedule_meeting", declaration["description"].get<std::string>(),
                      declaration["parameters"].dump()}};
  absl::StatusOr<std::string> body = BuildGeminiBody(req, {});
  ASSERT_TRUE(body.ok()) << body.status();
  // The one documented alternative this client takes: the declaration's
  // schema as JSON Schema (parametersJsonSchema) rather than the OpenAPI
  // subset (parameters), so a client's schema is sent as written.
  json& d = doc["tools"][0]["functionDeclarations"][0];
  d["parametersJsonSchema"] = d["parameters"];
  d.erase("parameters");
  EXPECT_EQ(json::parse(*body), doc);
}

TEST(GeminiDialectTest, BodyMapsSystemSamplingToolChoiceAndThinking) {
  ChatRequest req;
  req.messages = {{Role::kSystem, "be brief"}, {Role::kUser, "hi"}, {Role::kUser, "there"}};
  req.messages[2].images = {{"data:image/jpeg;base64,/9j/4AAQ", ""}};
  req.params.temperature = 0.3;
  req.params.top_p = 0.9;
  req.params.max_tokens = 100;
  req.params.seed = 42;
  req.params.stop = {"END"};
  req.tools.tools = {{"f", "", ""}};
  req.tools.choice_function = "f";
  ReasoningSettings r;
  r.budget_tokens = 512;
  r.include_text = true;
  json body = json::parse(*BuildGeminiBody(req, r));
  EXPECT_EQ(body["systemInstruction"], json::parse(R"({"parts":[{"text":"be brief"}]})"));
  ASSERT_EQ(body["contents"].size(), 1u);
  EXPECT_EQ(body["contents"][0]["parts"][2]["inlineData"],
            json::parse(R"({"mimeType":"image/jpeg","data":"/9j/4AAQ"})"));
  EXPECT_EQ(body["generationConfig"],
            json::parse(R"({"temperature":0.3,"topP":0.9,"maxOutputTokens":100,"seed":42,
                "stopSequences":["END"],"thinkingConfig":{"thinkingBudget":512,
                "includeThoughts":true}})"));
  EXPECT_EQ(
      body["toolConfig"],
      json::parse(R"({"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f"]}})"));
}

TEST(GeminiDialectTest, RefusesByNameWhatItCannotMap) {
  auto refusal = [](ChatRequest req) {
    if (req.messages.empty()) req.messages = {{Role::kUser, "hi"}};
    absl::StatusOr<std::string> body = BuildGeminiBody(req, {});
    EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(body.status().message());
  };
  ChatRequest url_image;
  url_image.messages = {{Role::kUser, "look"}};
  url_image.messages[0].images = {{"https://example.com/a.png", ""}};
  EXPECT_THAT(refusal(url_image), HasSubstr("messages[0].images[0] is no data: URL"));
  ChatRequest serial;
  serial.tools.tools = {{"f", "", ""}};
  serial.tools.parallel_tool_calls = false;
  EXPECT_THAT(refusal(serial), HasSubstr("parallel_tool_calls: false"));
  ChatRequest stops;
  stops.params.stop = {"a", "b", "c", "d", "e", "f"};
  EXPECT_THAT(refusal(stops), HasSubstr("at most 5 stop sequences"));
  ChatRequest big_seed;
  big_seed.params.seed = int64_t{1} << 40;
  EXPECT_THAT(refusal(big_seed), HasSubstr("32-bit"));
  ChatRequest orphan;
  orphan.messages = {{Role::kUser, "hi"}, {Role::kTool, "42"}};
  orphan.messages[1].tool_call_id = "nowhere";
  orphan.tools.tools = {{"f", "", ""}};
  EXPECT_THAT(refusal(orphan), HasSubstr("not in the conversation"));
}

TEST(DialectTest, MakeDialectBuildsEachApisUrlAndHeaders) {
  auto make = [](UpstreamApi api, std::string model = "m", std::string version = "") {
    DialectOptions o;
    o.api = api;
    o.base_url = "https://h/v1/";
    o.model = std::move(model);
    o.api_version = std::move(version);
    return MakeDialect(o);
  };
  auto openai = make(UpstreamApi::kOpenAi);
  ASSERT_TRUE(openai.ok());
  EXPECT_EQ((*openai)->url(), "https://h/v1/chat/completions");
  EXPECT_THAT((*openai)->AuthHeaders("k"), ::testing::ElementsAre("Authorization: Bearer k"));
  auto azure = make(UpstreamApi::kAzure, "gpt", "2024-10-21");
  ASSERT_TRUE(azure.ok());
  EXPECT_EQ((*azure)->url(),
            "https://h/v1/openai/deployments/gpt/chat/completions?api-version=2024-10-21");
  auto anthropic = make(UpstreamApi::kAnthropic);
  ASSERT_TRUE(anthropic.ok());
  EXPECT_EQ((*anthropic)->url(), "https://h/v1/messages");
  EXPECT_THAT((*anthropic)->AuthHeaders("k"), ::testing::ElementsAre("x-api-key: k"));
  EXPECT_THAT((*anthropic)->FixedHeaders(),
              ::testing::ElementsAre("anthropic-version: 2023-06-01"));
  auto gemini = make(UpstreamApi::kGemini, "gemini-2.5-flash");
  ASSERT_TRUE(gemini.ok());
  EXPECT_EQ((*gemini)->url(), "https://h/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  EXPECT_THAT((*gemini)->AuthHeaders("k"), ::testing::ElementsAre("x-goog-api-key: k"));
  EXPECT_FALSE(make(UpstreamApi::kGemini, "a/b").ok());
  EXPECT_FALSE(make(UpstreamApi::kAzure, "gpt", "").ok());
}

TEST(DialectTest, ReasoningSettingsGoOnlyWhereTheApiHasThem) {
  DialectOptions o;
  o.base_url = "https://h";
  o.model = "m";
  o.reasoning.budget_tokens = 2048;
  EXPECT_THAT(std::string(MakeDialect(o).status().message()), HasSubstr("takes reasoning.effort"));
  o.api = UpstreamApi::kAnthropic;
  EXPECT_TRUE(MakeDialect(o).ok());
  o.reasoning.budget_tokens = 100;
  EXPECT_THAT(std::string(MakeDialect(o).status().message()), HasSubstr(">= 1024"));
  o.reasoning.budget_tokens.reset();
  o.reasoning.effort = "high";
  EXPECT_THAT(std::string(MakeDialect(o).status().message()),
              HasSubstr("takes reasoning.budget_tokens"));
  o.api = UpstreamApi::kOpenAi;
  EXPECT_TRUE(MakeDialect(o).ok());
  o.reasoning.effort = "maximal";
  EXPECT_FALSE(MakeDialect(o).ok());
}

TEST(DialectTest, OpenAiEffortAndReasoningTokens) {
  ChatRequest req;
  req.messages = {{Role::kUser, "hi"}};
  req.params.max_tokens = 500;
  ReasoningSettings r;
  r.effort = "low";
  json body = json::parse(BuildChatCompletionBody("o4-mini", req, r));
  EXPECT_EQ(body["reasoning_effort"], "low");
  EXPECT_EQ(body["max_completion_tokens"], 500);
  EXPECT_FALSE(body.contains("max_tokens"));
  absl::StatusOr<StreamChunk> usage =
      ParseStreamChunk(R"({"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":300,)"
                       R"("completion_tokens_details":{"reasoning_tokens":256}}})");
  ASSERT_TRUE(usage.ok() && usage->usage);
  EXPECT_EQ(usage->usage->reasoning_tokens, 256);
  EXPECT_EQ(usage->usage->completion_tokens, 300);
}

// OpenAI-compatible servers that stream a reasoning model's thinking apart
// (vLLM's reasoning parsers, DeepSeek: reasoning_content; OpenRouter:
// reasoning): reasoning, never answer text; the fast scanner leaves those
// events to the tree parser and agrees with it on a null.
TEST(DialectTest, OpenAiCompatibleReasoningContentIsReasoning) {
  for (const char* key : {"reasoning_content", "reasoning"}) {
    absl::StatusOr<StreamChunk> chunk = ParseStreamChunk(
        absl::StrCat(R"({"choices":[{"delta":{")", key, R"(":"Let me think.","content":null}}]})"));
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    EXPECT_EQ(chunk->reasoning, "Let me think.");
    EXPECT_EQ(chunk->delta, "");
    EXPECT_FALSE(
        ScanCommonStreamChunk(absl::StrCat(R"({"choices":[{"delta":{")", key, R"(":"x"}}]})")));
    auto with_null = ScanCommonStreamChunk(
        absl::StrCat(R"({"choices":[{"delta":{"content":"Hi",")", key, R"(":null}}]})"));
    ASSERT_TRUE(with_null);
    EXPECT_EQ(with_null->delta, "Hi");
  }
}

TEST(DialectTest, DataUrlsAndSystemSplit) {
  auto d = ParseDataUrl("data:image/webp;base64,AAAA");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->media_type, "image/webp");
  EXPECT_EQ(d->base64, "AAAA");
  EXPECT_FALSE(ParseDataUrl("data:image/png,raw"));
  EXPECT_FALSE(ParseDataUrl("https://x/y.png"));
  EXPECT_FALSE(ParseDataUrl("data:;base64,AAAA"));
  SplitSystem s = SplitSystemMessages({{Role::kSystem, "a"}, {Role::kUser, "u"}});
  EXPECT_EQ(s.system, "a");
  ASSERT_EQ(s.messages.size(), 1u);
}

}  // namespace
}  // namespace moa::llm
