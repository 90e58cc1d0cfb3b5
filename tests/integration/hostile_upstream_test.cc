// CurlLlmClient against an upstream that misbehaves in ways the simulator's
// faults do not: keep-alive comments instead of text, answers that are no
// event stream, redirects, giant headers and finish reasons. A scripted
// server (lib/net's HttpServer) sends exactly the bytes of each case.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/llm/curl_llm_client.h"
#include "lib/net/http_server.h"
#include "tests/support/recording_observer.h"
#include "tests/support/test_support.h"

namespace moa::llm {
namespace {

using ::moa::testing::RecordingObserver;
using ::testing::HasSubstr;

// Answers every request with `script`, run on a thread of its own so it may
// write for as long as it likes (until the server stops).
class ScriptedUpstream : public net::HttpHandler {
 public:
  using Script = std::function<void(net::HttpExchange&, const std::atomic<bool>& stop)>;
  explicit ScriptedUpstream(Script script) : script_(std::move(script)) {
    auto server = net::HttpServer::Start({.name = "scripted"}, this);
    if (server.ok()) server_ = *std::move(server);
  }
  ~ScriptedUpstream() override {
    stop_ = true;
    for (auto& t : threads_) t.join();
    server_.reset();
  }
  void Handle(net::HttpRequest, std::shared_ptr<net::HttpExchange> exchange) override {
    threads_.emplace_back([this, exchange] { script_(*exchange, stop_); });
  }
  std::string base_url() const { return absl::StrCat("http://127.0.0.1:", server_->port(), "/v1"); }

 private:
  Script script_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::unique_ptr<net::HttpServer> server_;
};

constexpr char kDelta[] = R"(data: {"choices":[{"delta":{"content":"Hi"}}]})"
                          "\n\n";

std::unique_ptr<CurlLlmClient> Client(const ScriptedUpstream& upstream,
                                      const Clock* clock = nullptr,
                                      UpstreamApi api = UpstreamApi::kOpenAi) {
  UpstreamOptions o;
  o.base_url = upstream.base_url();
  o.api = api;
  o.model = "m";
  o.retry.max_attempts = 1;
  o.first_token_timeout = absl::Seconds(10);
  o.idle_timeout = absl::Seconds(3);
  if (clock != nullptr) o.clock = clock;
  return *CurlLlmClient::Create(o);
}

absl::Status Call(CurlLlmClient& client) {
  ChatRequest r;
  r.messages = {{Role::kUser, "hi"}};
  auto obs = std::make_shared<RecordingObserver>();
  client.Start(r, obs);
  if (!obs->WaitDone(absl::Seconds(20))) return absl::DeadlineExceededError("test: no end");
  return obs->result().status();
}

// One delta, then an SSE comment every 20 ms forever: comments are no
// progress, so the call ends one idle timeout after the delta.
TEST(HostileUpstreamTest, CommentsForeverDoNotHoldACallPastItsIdleTimeout) {
  ScriptedUpstream upstream([](net::HttpExchange& x, const std::atomic<bool>& stop) {
    x.StartStream({200, "text/event-stream", "", {}});
    x.Write(kDelta);
    while (!stop) {
      x.Write(":\n\n");
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  FakeClock clock;
  auto client = Client(upstream, &clock);
  ChatRequest r;
  r.messages = {{Role::kUser, "hi"}};
  auto obs = std::make_shared<RecordingObserver>();
  client->Start(r, obs);
  ASSERT_TRUE(moa::testing::WaitFor([&] { return !obs->deltas().empty(); }, absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(100));  // Comments keep arriving.
  clock.Advance(absl::Seconds(2));
  EXPECT_FALSE(obs->WaitDone(absl::Milliseconds(300))) << "at 2 s of 3";
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(obs->WaitDone(absl::Seconds(5))) << "comments held the call past its idle timeout";
  EXPECT_EQ(obs->result().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(obs->result().status().message(), HasSubstr("stalled"));
}

TEST(HostileUpstreamTest, AnAnswerThatIsNoEventStreamIsNamedByItsContentType) {
  for (const auto& [type, body] : std::vector<std::pair<std::string, std::string>>{
           {"text/html", "<html><body>Welcome to the portal</body></html>"},
           {"application/json",
            R"({"choices":[{"message":{"role":"assistant","content":"whole"}}]})"}}) {
    ScriptedUpstream upstream([type, body](net::HttpExchange& x, const std::atomic<bool>&) {
      x.Respond({200, type, body, {}});
    });
    auto client = Client(upstream);
    absl::Status s = Call(*client);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(s.message(), HasSubstr("Content-Type " + type)) << s;
    EXPECT_THAT(s.message(), HasSubstr("not an event stream")) << s;
    EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("closed the stream"))) << s;
  }
}

TEST(HostileUpstreamTest, ARedirectIsNamedWithWhereItPoints) {
  ScriptedUpstream upstream([](net::HttpExchange& x, const std::atomic<bool>&) {
    x.Respond({301, "text/plain", "", {{"Location", "http://elsewhere.invalid/v1/chat"}}});
  });
  auto client = Client(upstream);
  absl::Status s = Call(*client);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("HTTP 301, a redirect to http://elsewhere.invalid/v1/chat"));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("HTTP 0")));
}

TEST(HostileUpstreamTest, AGiantResponseHeaderIsNamedAsSuch) {
  ScriptedUpstream upstream([](net::HttpExchange& x, const std::atomic<bool>&) {
    x.StartStream({200, "text/event-stream", "", {{"X-Big", std::string(2 << 20, 'a')}}});
    x.Write(kDelta);
    x.End();
  });
  auto client = Client(upstream);
  absl::Status s = Call(*client);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("header")) << s;
}

TEST(HostileUpstreamTest, AHugeFinishReasonIsAProtocolErrorNotPassedOn) {
  ScriptedUpstream upstream([](net::HttpExchange& x, const std::atomic<bool>&) {
    x.StartStream({200, "text/event-stream", "", {}});
    x.Write(kDelta);
    x.Write(absl::StrCat(R"(data: {"choices":[{"delta":{},"finish_reason":")",
                         std::string(3 << 20, 'x'), "\"}]}\n\n"));
    x.End();
  });
  auto client = Client(upstream);
  absl::Status s = Call(*client);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s.code();
  EXPECT_THAT(s.message(), HasSubstr("finish_reason"));
  EXPECT_LT(s.message().size(), 1000u);
}

// Tool calls from an upstream are bounded and must be whole: arguments
// without end, a call with no name, an index out of range are the
// upstream's protocol errors, named, never passed on.
TEST(HostileUpstreamTest, ToolCallsThatAreEndlessNamelessOrOutOfRangeAreNamedErrors) {
  struct Case {
    std::string events;
    const char* named;
  };
  std::string endless = R"(data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c",)"
                        R"("function":{"name":"f","arguments":""}}]}}]})"
                        "\n\n";
  const std::string piece = absl::StrCat(
      R"(data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":")",
      std::string(60000, 'a'), "\"}}]}}]}\n\n");
  for (int i = 0; i < 20; ++i) endless += piece;
  const Case cases[] = {
      {endless, "tool calls are over 1 MiB"},
      {R"(data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},)"
       R"("finish_reason":"tool_calls"}]})"
       "\n\n",
       "without a function name"},
      {R"(data: {"choices":[{"delta":{"tool_calls":[{"index":4096,"id":"c"}]}}]})"
       "\n\n",
       "delta.tool_calls"},
  };
  for (const Case& c : cases) {
    ScriptedUpstream upstream([&c](net::HttpExchange& x, const std::atomic<bool>&) {
      x.StartStream({200, "text/event-stream", "", {}});
      x.Write(c.events);
      x.Write("data: [DONE]\n\n");
      x.End();
    });
    auto client = Client(upstream);
    absl::Status s = Call(*client);
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << c.named << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.named));
    EXPECT_LT(s.message().size(), 1000u);
  }
}

// The Anthropic and Gemini readers under the same bounds as OpenAI's: an
// endless tool input, too many calls, a stream cut before its end, an error
// event after the 200: each a named error, never a hang or an abort.
TEST(HostileUpstreamTest, AnthropicAndGeminiStreamsThatMisbehaveAreNamedErrors) {
  struct Case {
    UpstreamApi api;
    std::string events;
    absl::StatusCode code;
    const char* named;
  };
  auto event = [](absl::string_view type, absl::string_view data) {
    return absl::StrCat("event: ", type, "\ndata: ", data, "\n\n");
  };
  const std::string start =
      event("message_start", R"({"type":"message_start","message":{"usage":{"input_tokens":5}}})");
  std::string endless =
      start + event("content_block_start",
                    R"({"type":"content_block_start","index":0,)"
                    R"("content_block":{"type":"tool_use","id":"t","name":"f","input":{}}})");
  const std::string piece = event(
      "content_block_delta",
      absl::StrCat(R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta",)"
                   R"("partial_json":")",
                   std::string(60000, 'a'), "\"}}"));
  for (int i = 0; i < 20; ++i) endless += piece;
  std::string many_calls = R"(data: {"candidates":[{"content":{"parts":[)";
  for (int i = 0; i < 129; ++i) {
    absl::StrAppend(&many_calls, i ? "," : "", R"({"functionCall":{"name":"f","args":{}}})");
  }
  many_calls += "]}}]}\r\n\r\n";
  const Case cases[] = {
      {UpstreamApi::kAnthropic, endless, absl::StatusCode::kInternal, "tool calls are over 1 MiB"},
      {UpstreamApi::kAnthropic,
       start + event("content_block_delta", R"({"type":"content_block_delta","index":0,)"
                                            R"("delta":{"type":"text_delta","text":"Hi"}})"),
       absl::StatusCode::kUnavailable, "closed the stream before it finished"},
      {UpstreamApi::kAnthropic,
       start + event("error", R"({"type":"error","error":{"type":"overloaded_error",)"
                              R"("message":"Overloaded"}})"),
       absl::StatusCode::kUnavailable, "overloaded_error"},
      {UpstreamApi::kGemini,
       "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n",
       absl::StatusCode::kUnavailable, "closed the stream before it finished"},
      {UpstreamApi::kGemini, many_calls, absl::StatusCode::kInternal, "over 128 function calls"},
  };
  for (const Case& c : cases) {
    ScriptedUpstream upstream([&c](net::HttpExchange& x, const std::atomic<bool>&) {
      x.StartStream({200, "text/event-stream", "", {}});
      x.Write(c.events);
      x.End();
    });
    auto client = Client(upstream, nullptr, c.api);
    absl::Status s = Call(*client);
    EXPECT_EQ(s.code(), c.code) << c.named << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.named));
    EXPECT_LT(s.message().size(), 1000u);
  }
}

TEST(HostileUpstreamTest, DeeplyNestedJsonIsRefusedBeforeATreeIsBuilt) {
  ScriptedUpstream upstream([](net::HttpExchange& x, const std::atomic<bool>&) {
    x.StartStream({200, "text/event-stream", "", {}});
    x.Write(absl::StrCat("data: ", std::string(1 << 20, '['), "\n\n"));
    x.End();
  });
  auto client = Client(upstream);
  absl::Status s = Call(*client);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_THAT(s.message(), HasSubstr("nests deeper than 32"));
}

}  // namespace
}  // namespace moa::llm
