// CurlLlmClient against the upstream simulator on a loopback port.
#include "lib/llm/curl_llm_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/time/clock.h"
#include "tests/support/recording_observer.h"
#include "tests/support/test_support.h"
#include "tools/upstream-sim/sim_server.h"

namespace moa::llm {
namespace {

using ::moa::testing::RecordingObserver;
using ::testing::HasSubstr;

constexpr char kProfiles[] = R"(default:
  time_to_first_token: 0.01
  tokens_per_second: 1000
  answer_tokens: 12
models:
  slow: {time_to_first_token: 0.05, tokens_per_second: 20, answer_tokens: 400}
  fail-500: {faults: {http_500: 1}}
  fail-429: {faults: {http_429: 1, retry_after_seconds: 0.2}}
  hang: {faults: {hang: 1}}
  stall: {time_to_first_token: 0.05, tokens_per_second: 0.001, answer_tokens: 5}
  reset: {faults: {reset: 1}}
  malformed: {faults: {malformed: 1}}
  flaky: {faults: {http_500: 0.5}}
  agent: {tool_calls: true, tool_arguments: '{"city": "Oslo"}'}
  thinker: {reasoning_tokens: 40}
)";

class CurlLlmClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim::SimOptions options;
    options.profiles = *sim::ParseProfiles(kProfiles, "test");
    options.api_key = "sk-test-secret-123";
    auto server = sim::SimServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    sim_ = *std::move(server);
  }

  std::unique_ptr<CurlLlmClient> Client(
      const std::string& model,
      absl::FunctionRef<void(UpstreamOptions&)> tweak = [](UpstreamOptions&) {}) {
    UpstreamOptions o;
    o.base_url = absl::StrCat("http://127.0.0.1:", sim_->port(), "/v1");
    o.model = model;
    o.api_key = "sk-test-secret-123";
    o.retry.initial_backoff = absl::Milliseconds(10);
    o.first_token_timeout = absl::Seconds(5);
    tweak(o);
    return *CurlLlmClient::Create(o);
  }

  static ChatRequest Question(const std::string& text = "What is MoA?") {
    ChatRequest r;
    r.messages = {{llm::Role::kUser, text}};
    return r;
  }

  nlohmann::json Log() { return nlohmann::json::parse(sim_->RequestLogJson())["requests"]; }

  // Timeouts and retry delays run on this clock in the tests that set
  // UpstreamOptions::clock to it: time moves only when a test says so.
  FakeClock clock_;
  std::unique_ptr<sim::SimServer> sim_;
};

TEST_F(CurlLlmClientTest, StreamsDeltasThenCompletionWithUsageAndTimings) {
  auto client = Client("m1");
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
  auto result = obs->result();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(obs->deltas().size(), 1u) << "tokens arrive as separate deltas";
  EXPECT_THAT(obs->text(), HasSubstr("[m1 answer"));
  EXPECT_EQ(result->finish_reason, "stop");
  EXPECT_EQ(result->usage.completion_tokens, 12);
  EXPECT_GT(result->usage.prompt_tokens, 0);
  EXPECT_GT(result->time_to_first_token, absl::ZeroDuration());
  EXPECT_GE(result->duration, result->time_to_first_token);
  EXPECT_EQ(result->attempts, 1);
  // The simulator logs "completed" once its last write is done, which may be
  // a moment after the client has read everything.
  ASSERT_TRUE(
      moa::testing::WaitFor([&] { return Log()[0]["outcome"] == "completed"; }, absl::Seconds(2)));
  auto log = Log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["stream"], true);
  EXPECT_EQ(log[0]["messages"][0]["content"], "What is MoA?");
}

// A tool call streamed in fragments (the name first, the arguments in two
// pieces) is assembled into the completion; the tools reach the upstream.
TEST_F(CurlLlmClientTest, AToolCallStreamedInPiecesIsAssembledIntoTheCompletion) {
  auto client = Client("agent");
  ChatRequest request = Question("Weather in Oslo?");
  request.tools.tools = {{"get_weather", "", R"({"type":"object"})", false}};
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(request, obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
  auto result = obs->result();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(obs->text(), "") << "no text, only the call";
  EXPECT_EQ(result->finish_reason, "tool_calls");
  ASSERT_EQ(result->tool_calls.size(), 1u);
  EXPECT_EQ(result->tool_calls[0].name, "get_weather");
  EXPECT_EQ(result->tool_calls[0].arguments, R"({"city": "Oslo"})");
  EXPECT_THAT(result->tool_calls[0].id, ::testing::StartsWith("call_sim_"));
  EXPECT_EQ(Log()[0]["params"]["tools"][0]["function"]["name"], "get_weather");

  // The same model after the result: text, and the turns sent natively.
  request.messages.push_back({Role::kAssistant, "", result->tool_calls});
  request.messages.push_back({Role::kTool, "12 C", {}, result->tool_calls[0].id});
  auto after = std::make_shared<RecordingObserver>();
  client->Start(request, after);
  ASSERT_TRUE(after->WaitDone(absl::Seconds(10)));
  ASSERT_TRUE(after->result().ok()) << after->result().status();
  EXPECT_EQ(after->result()->finish_reason, "stop");
  EXPECT_TRUE(after->result()->tool_calls.empty());
  EXPECT_FALSE(after->text().empty());
  auto sent = Log()[1]["messages"];
  EXPECT_EQ(sent[2]["role"], "tool");
  EXPECT_EQ(sent[1]["tool_calls"][0]["function"]["name"], "get_weather");
}

// Azure OpenAI: the deployment's URL with its api-version, the key in
// api-key (the simulator refuses a Bearer token there), the same stream.
TEST_F(CurlLlmClientTest, AnAzureDeploymentIsCalledAtItsUrlWithItsApiKeyHeader) {
  auto client = Client("m1", [](UpstreamOptions& o) {
    o.base_url = o.base_url.substr(0, o.base_url.size() - 3);  // The resource, not /v1.
    o.api = UpstreamApi::kAzure;
    o.api_version = "2024-10-21";
  });
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
  ASSERT_TRUE(obs->result().ok()) << obs->result().status();
  EXPECT_THAT(obs->text(), HasSubstr("[m1 answer"));
  EXPECT_EQ(Log()[0]["model"], "m1");

  UpstreamOptions bad;
  bad.base_url = "https://example.openai.azure.com";
  bad.model = "gpt-4o";
  bad.api = UpstreamApi::kAzure;
  EXPECT_THAT(std::string(CurlLlmClient::Create(bad).status().message()),
              HasSubstr("needs its api_version"));
  bad.api_version = "2024-10-21";
  bad.model = "gpt 4o/../x";
  EXPECT_THAT(std::string(CurlLlmClient::Create(bad).status().message()),
              HasSubstr("deployment name"));
}

// Each dialect against the simulator speaking it: the simulator's answer
// depends only on the model and the conversation, so the same question
// gets the same text, usage and finish through every API.
void SetApi(UpstreamOptions& o, UpstreamApi api) {
  o.api = api;
  if (api == UpstreamApi::kGemini)
    o.base_url = o.base_url.substr(0, o.base_url.size() - 3) + "/v1beta";
}

constexpr UpstreamApi kDialects[] = {UpstreamApi::kOpenAi, UpstreamApi::kAnthropic,
                                     UpstreamApi::kGemini};

TEST_F(CurlLlmClientTest, EveryDialectGetsTheSameAnswerToTheSameConversation) {
  ChatRequest request = Question();
  request.messages.insert(request.messages.begin(), {Role::kSystem, "Be brief."});
  std::string first_text;
  for (UpstreamApi api : kDialects) {
    SCOPED_TRACE(UpstreamApiName(api));
    auto client = Client("m1", [&](UpstreamOptions& o) { SetApi(o, api); });
    auto obs = std::make_shared<RecordingObserver>();
    client->Start(request, obs);
    ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
    ASSERT_TRUE(obs->result().ok()) << obs->result().status();
    EXPECT_GT(obs->deltas().size(), 1u) << "streamed in pieces";
    EXPECT_EQ(obs->result()->finish_reason, "stop");
    EXPECT_EQ(obs->result()->usage.completion_tokens, 12);
    EXPECT_GT(obs->result()->usage.prompt_tokens, 0);
    if (first_text.empty()) first_text = obs->text();
    EXPECT_EQ(obs->text(), first_text);
  }
  auto log = Log();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[1]["params"]["system"], "Be brief.");  // Anthropic: its own field.
  EXPECT_EQ(log[1]["params"]["max_tokens"], 4096);     // Required there: the default.
  EXPECT_EQ(log[2]["params"]["systemInstruction"]["parts"][0]["text"], "Be brief.");
  EXPECT_EQ(log[2]["messages"][0]["parts"][0]["text"], "What is MoA?");
}

TEST_F(CurlLlmClientTest, EveryDialectCallsAToolAndReadsItsResult) {
  for (UpstreamApi api : kDialects) {
    SCOPED_TRACE(UpstreamApiName(api));
    auto client = Client("agent", [&](UpstreamOptions& o) { SetApi(o, api); });
    ChatRequest request = Question("Weather in Oslo?");
    request.tools.tools = {{"get_weather", "", R"({"type":"object"})", false}};
    auto obs = std::make_shared<RecordingObserver>();
    client->Start(request, obs);
    ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
    ASSERT_TRUE(obs->result().ok()) << obs->result().status();
    EXPECT_EQ(obs->result()->finish_reason, "tool_calls");
    ASSERT_EQ(obs->result()->tool_calls.size(), 1u);
    EXPECT_EQ(obs->result()->tool_calls[0].name, "get_weather");
    EXPECT_EQ(nlohmann::json::parse(obs->result()->tool_calls[0].arguments),
              nlohmann::json::parse(R"({"city": "Oslo"})"));
    EXPECT_FALSE(obs->result()->tool_calls[0].id.empty());
    request.messages.push_back({Role::kAssistant, "", obs->result()->tool_calls});
    request.messages.push_back({Role::kTool, "12 C", {}, obs->result()->tool_calls[0].id});
    auto after = std::make_shared<RecordingObserver>();
    client->Start(request, after);
    ASSERT_TRUE(after->WaitDone(absl::Seconds(10)));
    ASSERT_TRUE(after->result().ok()) << after->result().status();
    EXPECT_EQ(after->result()->finish_reason, "stop");
    EXPECT_FALSE(after->text().empty());
  }
}

TEST_F(CurlLlmClientTest, AnthropicOverloadIsRetriedAndGeminiQuotaIsResourceExhausted) {
  auto anthropic =
      Client("fail-500", [](UpstreamOptions& o) { SetApi(o, UpstreamApi::kAnthropic); });
  auto obs = std::make_shared<RecordingObserver>();
  anthropic->Start(Question(), obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(obs->result().status().message(), HasSubstr("HTTP 529: Overloaded"));
  EXPECT_THAT(obs->result().status().message(), HasSubstr("after 3 attempts"));

  auto gemini = Client("fail-429", [](UpstreamOptions& o) {
    SetApi(o, UpstreamApi::kGemini);
    o.retry.max_attempts = 1;
  });
  auto limited = std::make_shared<RecordingObserver>();
  gemini->Start(Question(), limited);
  ASSERT_TRUE(limited->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(limited->result().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(limited->result().status().message(), HasSubstr("Quota exceeded"));

  auto malformed =
      Client("malformed", [](UpstreamOptions& o) { SetApi(o, UpstreamApi::kAnthropic); });
  auto bad = std::make_shared<RecordingObserver>();
  malformed->Start(Question(), bad);
  ASSERT_TRUE(bad->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(bad->result().status().code(), absl::StatusCode::kInternal);
}

TEST_F(CurlLlmClientTest, EachDialectSendsItsKeyItsOwnWayAndNeverShowsIt) {
  for (UpstreamApi api : {UpstreamApi::kAnthropic, UpstreamApi::kGemini}) {
    SCOPED_TRACE(UpstreamApiName(api));
    auto client = Client("m1", [&](UpstreamOptions& o) {
      SetApi(o, api);
      o.api_key = "sk-wrong-key-456";
    });
    auto obs = std::make_shared<RecordingObserver>();
    client->Start(Question(), obs);
    ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
    EXPECT_FALSE(obs->result().ok());
    EXPECT_THAT(obs->result().status().ToString(), ::testing::Not(HasSubstr("sk-wrong-key-456")));
  }
}

// Anthropic continues a trailing assistant turn (prefill); a request the
// API cannot express fails by name before anything is sent.
TEST_F(CurlLlmClientTest, AnthropicContinuesAPrefillAndRefusesASeedBeforeSending) {
  auto client = Client("m1", [](UpstreamOptions& o) { SetApi(o, UpstreamApi::kAnthropic); });
  ChatRequest request = Question();
  request.messages.push_back({Role::kAssistant, "[m1 answer "});
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(request, obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
  ASSERT_TRUE(obs->result().ok()) << obs->result().status();
  EXPECT_EQ(Log()[0]["continuation"], "prefill");
  ChatRequest seeded = Question();
  seeded.params.seed = 7;
  auto refused = std::make_shared<RecordingObserver>();
  client->Start(seeded, refused);
  ASSERT_TRUE(refused->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(refused->result().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused->result().status().message(), HasSubstr("no seed"));
  EXPECT_EQ(Log().size(), 1u) << "nothing sent for the refused request";
}

// A reasoning model in each API: the settings sent in the API's form, its
// thinking counted apart (where the API says how much), and its text kept
// out of the answer unless include_text.
TEST_F(CurlLlmClientTest, ReasoningIsAskedInEachApisFormAndCountedApart) {
  struct Case {
    UpstreamApi api;
    ReasoningSettings reasoning;
    int64_t reported_reasoning;  // Anthropic does not report it apart.
  };
  ReasoningSettings effort, budget;
  effort.effort = "low";
  budget.budget_tokens = 2048;
  std::string plain_text;
  for (const Case& c :
       {Case{UpstreamApi::kOpenAi, effort, 40}, Case{UpstreamApi::kAnthropic, budget, 0},
        Case{UpstreamApi::kGemini, budget, 40}}) {
    SCOPED_TRACE(UpstreamApiName(c.api));
    for (bool include_text : {false, true}) {
      auto client = Client("thinker", [&](UpstreamOptions& o) {
        SetApi(o, c.api);
        o.reasoning = c.reasoning;
        o.reasoning.include_text = include_text;
      });
      auto obs = std::make_shared<RecordingObserver>();
      client->Start(Question(), obs);
      ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
      ASSERT_TRUE(obs->result().ok()) << obs->result().status();
      EXPECT_EQ(obs->result()->usage.completion_tokens, 12 + 40);
      EXPECT_EQ(obs->result()->usage.reasoning_tokens, c.reported_reasoning);
      if (plain_text.empty()) plain_text = obs->text();
      if (!include_text || c.api == UpstreamApi::kOpenAi) {
        // Chat completions send no thinking text at all.
        EXPECT_EQ(obs->text(), plain_text);
      } else {
        EXPECT_THAT(obs->text(), ::testing::StartsWith("[reasoning]\nlet me think"));
        EXPECT_THAT(obs->text(), ::testing::EndsWith("\n[answer]\n" + plain_text));
      }
    }
  }
  auto log = Log();
  EXPECT_EQ(log[0]["params"]["reasoning_effort"], "low");
  EXPECT_EQ(log[2]["params"]["thinking"]["budget_tokens"], 2048);
  EXPECT_EQ(log[2]["params"]["max_tokens"], 2048 + 4096);
  EXPECT_EQ(log[4]["params"]["generationConfig"]["thinkingConfig"]["thinkingBudget"], 2048);
  EXPECT_EQ(log[5]["params"]["generationConfig"]["thinkingConfig"]["includeThoughts"], true);
}

TEST_F(CurlLlmClientTest, MaxTokensTruncatesWithFinishReasonLength) {
  auto client = Client("m1");
  auto obs = std::make_shared<RecordingObserver>();
  ChatRequest req = Question();
  req.params.max_tokens = 3;
  client->Start(req, obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
  ASSERT_TRUE(obs->result().ok());
  EXPECT_EQ(obs->result()->finish_reason, "length");
  EXPECT_EQ(obs->result()->usage.completion_tokens, 3);
}

TEST_F(CurlLlmClientTest, CancelClosesTheUpstreamConnectionAtOnce) {
  auto client = Client("slow");
  auto obs = std::make_shared<RecordingObserver>();
  auto handle = client->Start(Question(), obs);
  ASSERT_TRUE(moa::testing::WaitFor([&] { return !obs->deltas().empty(); }, absl::Seconds(5)));
  absl::Time cancelled = absl::Now();
  handle->Cancel();
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5)));
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(moa::testing::WaitFor([&] { return Log()[0]["outcome"] == "client_closed"; },
                                    absl::Milliseconds(200)))
      << Log().dump();
  EXPECT_LT(absl::Now() - cancelled, absl::Milliseconds(200));
  handle->Cancel();  // Idempotent.
  EXPECT_EQ(obs->done_calls(), 1);
}

TEST_F(CurlLlmClientTest, DeadlineEndsTheTransfer) {
  auto client = Client("slow", [&](UpstreamOptions& o) { o.clock = &clock_; });
  auto obs = std::make_shared<RecordingObserver>();
  ChatRequest req = Question();
  req.deadline = clock_.Now() + absl::Seconds(30);
  client->Start(req, obs);
  // The answer streams (400 tokens at 20/s) while simulated time stands.
  ASSERT_TRUE(moa::testing::WaitFor([&] { return !obs->deltas().empty(); }, absl::Seconds(5)));
  EXPECT_EQ(obs->done_calls(), 0);
  clock_.Advance(absl::Seconds(31));
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5)));
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(obs->result().status().message(), HasSubstr("exceeded its deadline after 31s"));
  EXPECT_TRUE(moa::testing::WaitFor([&] { return Log()[0]["outcome"] == "client_closed"; },
                                    absl::Seconds(1)));
}

TEST_F(CurlLlmClientTest, RateLimitHonoursRetryAfterThenResourceExhausted) {
  auto client = Client("fail-429", [&](UpstreamOptions& o) {
    o.retry.max_attempts = 2;
    o.clock = &clock_;
  });
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  ASSERT_TRUE(moa::testing::WaitFor([&] { return obs->retries().size() == 1; }, absl::Seconds(5)));
  // The retry waits for Retry-After (0.2 s) on the client's clock, which
  // has not moved: no second attempt yet.
  EXPECT_FALSE(moa::testing::WaitFor([&] { return Log().size() > 1; }, absl::Milliseconds(300)));
  clock_.Advance(absl::Milliseconds(200));
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5)));
  absl::Status s = obs->result().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("HTTP 429"));
  EXPECT_THAT(s.message(), HasSubstr("retry after 0.2s"));
  EXPECT_EQ(Log().size(), 2u);
}

TEST_F(CurlLlmClientTest, HangEndsAtTheFirstTokenTimeout) {
  auto client = Client("hang", [&](UpstreamOptions& o) {
    o.first_token_timeout = absl::Seconds(60);
    o.clock = &clock_;
  });
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  ASSERT_TRUE(moa::testing::WaitFor([&] { return Log().size() == 1; }, absl::Seconds(5)));
  clock_.Advance(absl::Seconds(59));
  EXPECT_FALSE(obs->WaitDone(absl::Milliseconds(1200))) << "a second before the timeout";
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5)));
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(obs->result().status().message(), HasSubstr("no token within 60s"));
  EXPECT_TRUE(moa::testing::WaitFor([&] { return Log()[0]["outcome"] == "client_closed"; },
                                    absl::Seconds(1)));
}

// The timers look only at calls that are due: a call whose first token came
// late must still end exactly one idle timeout after its last data.
TEST_F(CurlLlmClientTest, AStreamThatStallsEndsOneIdleTimeoutAfterItsLastData) {
  auto client = Client("stall", [&](UpstreamOptions& o) {
    o.first_token_timeout = absl::Seconds(60);
    o.idle_timeout = absl::Seconds(10);
    o.clock = &clock_;
  });
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  clock_.Advance(absl::Seconds(8));  // Before the first token arrives (0.05 s real time).
  ASSERT_TRUE(moa::testing::WaitFor([&] { return !obs->deltas().empty(); }, absl::Seconds(5)));
  // The first token came at 8 s: the stream may be silent until 18 s.
  clock_.Advance(absl::Seconds(9));
  EXPECT_FALSE(obs->WaitDone(absl::Milliseconds(1200))) << "at 17 s";
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5))) << "at 18 s";
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kDeadlineExceeded);
  size_t bytes = 0;
  for (const std::string& d : obs->deltas()) bytes += d.size();
  EXPECT_GT(bytes, 0u);
  EXPECT_THAT(obs->result().status().message(),
              HasSubstr(absl::StrCat("stalled for 10s after ", bytes, " bytes")));
}

TEST_F(CurlLlmClientTest, ServerErrorIsRetriedThenUnavailable) {
  auto client = Client("fail-500");
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(obs->result().status().message(), HasSubstr("HTTP 500"));
  EXPECT_THAT(obs->result().status().message(), HasSubstr("after 3 attempts"));
  EXPECT_EQ(obs->retries().size(), 2u);
  EXPECT_EQ(Log().size(), 3u);
}

TEST_F(CurlLlmClientTest, RetriesRecoverAFlakyUpstream) {
  auto client = Client("flaky", [](UpstreamOptions& o) {
    o.retry.max_attempts = 10;
    o.retry.budget_tokens = 1000;  // This test is about retries, not their budget.
  });
  int retried = 0;
  for (int i = 0; i < 10; ++i) {
    auto obs = std::make_shared<RecordingObserver>();
    client->Start(Question(absl::StrCat("q", i)), obs);
    ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
    ASSERT_TRUE(obs->result().ok()) << obs->result().status();
    retried += obs->result()->attempts > 1;
  }
  EXPECT_GT(retried, 0) << "with a 50% fault rate some call needed a retry";
}

TEST_F(CurlLlmClientTest, TheRetryBudgetStopsRetriesWhenMostCallsFail) {
  auto client = Client("fail-500");  // 3 attempts, a budget of 10 tokens.
  absl::Status last;
  for (int i = 0; i < 10; ++i) {
    auto obs = std::make_shared<RecordingObserver>();
    client->Start(Question(absl::StrCat("q", i)), obs);
    ASSERT_TRUE(obs->WaitDone(absl::Seconds(10)));
    last = obs->result().status();
  }
  // Tokens 10 -> 7 after the first call's 3 attempts, 5 after the second's
  // 2 (retries need more than 5), then one attempt per call: 13, not 30.
  EXPECT_EQ(Log().size(), 13u);
  EXPECT_EQ(last.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(last.message(), HasSubstr("no retry: most recent calls to this upstream failed"));
}

TEST_F(CurlLlmClientTest, ResetMidStreamIsUnavailableWithoutRetry) {
  auto client = Client("reset");
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5)));
  EXPECT_FALSE(obs->deltas().empty()) << "half the answer came first";
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(obs->retries().empty()) << "no retry once text was passed on";
}

TEST_F(CurlLlmClientTest, MalformedEventIsInternal) {
  auto client = Client("malformed");
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5)));
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(obs->result().status().message(), HasSubstr("malformed"));
}

TEST_F(CurlLlmClientTest, WrongKeyIsUnauthenticatedAndTheKeyIsNotInTheMessage) {
  auto client = Client("m1", [](UpstreamOptions& o) { o.api_key = "sk-wrong-key-456"; });
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5)));
  absl::Status s = obs->result().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.ToString(), ::testing::Not(HasSubstr("sk-wrong-key-456")));
  EXPECT_EQ(obs->retries().size(), 0u);
}

TEST_F(CurlLlmClientTest, ConnectionRefusedIsUnavailable) {
  int port = moa::testing::PickFreePort();
  UpstreamOptions o;
  o.base_url = absl::StrCat("http://127.0.0.1:", port, "/v1");
  o.model = "m";
  o.retry.max_attempts = 1;
  auto client = *CurlLlmClient::Create(o);
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(Question(), obs);
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5)));
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(CurlLlmClientTest, ManyConcurrentStreamsOnOneEventThread) {
  auto client = Client("m1");
  std::vector<std::shared_ptr<RecordingObserver>> observers;
  for (int i = 0; i < 200; ++i) {
    observers.push_back(std::make_shared<RecordingObserver>());
    client->Start(Question(absl::StrCat("question ", i)), observers.back());
  }
  for (auto& obs : observers) {
    ASSERT_TRUE(obs->WaitDone(absl::Seconds(30)));
    ASSERT_TRUE(obs->result().ok()) << obs->result().status();
    EXPECT_EQ(obs->result()->usage.completion_tokens, 12);
  }
}

TEST_F(CurlLlmClientTest, DestroyingTheClientCancelsCallsInFlight) {
  auto client = Client("slow");
  auto obs = std::make_shared<RecordingObserver>();
  auto handle = client->Start(Question(), obs);
  ASSERT_TRUE(moa::testing::WaitFor([&] { return !obs->deltas().empty(); }, absl::Seconds(5)));
  client.reset();
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(1)));
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kCancelled);
  handle->Cancel();  // Safe after the client is gone.
}

TEST(CurlLlmClientCreateTest, RejectsBadOptions) {
  UpstreamOptions o;
  o.base_url = "ftp://x";
  o.model = "m";
  EXPECT_EQ(CurlLlmClient::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.base_url = "http://x/v1";
  o.model = "";
  EXPECT_EQ(CurlLlmClient::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

// An upstream behind TLS with a private CA (the simulator serving HTTPS
// with a throw-away one): trusted through ca_file; without it, a
// configuration error that says what to set, and no retries.
TEST_F(CurlLlmClientTest, AnHttpsUpstreamWithAPrivateCaIsTrustedThroughCaFile) {
  const std::string dir = ::testing::TempDir() + "moa-upstream-tls-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(moa::testing::MakeThrowawayCa(dir, "ca"));
  sim::SimOptions options;
  options.profiles = *sim::ParseProfiles(kProfiles, "test");
  options.tls_cert_file = dir + "/ca-leaf.crt";
  options.tls_key_file = dir + "/ca-leaf.key";
  auto sim = sim::SimServer::Start(std::move(options));
  ASSERT_TRUE(sim.ok()) << sim.status();
  auto ask = [&](const std::string& ca_file) {
    UpstreamOptions o;
    o.base_url = absl::StrCat("https://localhost:", (*sim)->port(), "/v1");
    o.model = "m1";
    o.ca_file = ca_file;
    auto client = *CurlLlmClient::Create(o);
    auto obs = std::make_shared<RecordingObserver>();
    client->Start(Question(), obs);
    EXPECT_TRUE(obs->WaitDone(absl::Seconds(10)));
    return obs->result();
  };
  auto trusted = ask(dir + "/ca.crt");
  ASSERT_TRUE(trusted.ok()) << trusted.status();
  EXPECT_EQ(trusted->usage.completion_tokens, 12);
  auto untrusted = ask("");
  EXPECT_EQ(untrusted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(untrusted.status().message(), HasSubstr("set upstream.ca_file"));
  auto log = nlohmann::json::parse((*sim)->RequestLogJson())["requests"];
  EXPECT_EQ(log.size(), 1u) << "the untrusted server never got a request, and no retry was made";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moa::llm
