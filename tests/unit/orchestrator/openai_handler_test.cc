// The OpenAI HTTP server's routing and exchange (OpenAiHandler) with a fake
// connection and fake backends: no sockets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "absl/synchronization/mutex.h"
#include "services/orchestrator/openai_http_server.h"
#include "tests/fakes/fake_generation_backend.h"

namespace moa::orchestrator {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::testing::HasSubstr;
using json = nlohmann::json;

// Records what the handler sends.
class FakeExchange : public net::HttpExchange {
 public:
  void Respond(net::HttpResponse response) override {
    absl::MutexLock lock(&mu_);
    status_ = response.status;
    headers_ = response.headers;
    body_ += response.body;
    ended_ = true;
  }
  void StartStream(net::HttpResponse head, std::string keepalive) override {
    absl::MutexLock lock(&mu_);
    status_ = head.status;
    streaming_ = true;
    keepalive_ = std::move(keepalive);
  }
  void Write(std::string data) override {
    absl::MutexLock lock(&mu_);
    body_ += data;
  }
  void End() override {
    absl::MutexLock lock(&mu_);
    ended_ = true;
  }
  void Abort() override {}
  void OnClosed(std::function<void(bool)> callback) override {
    absl::MutexLock lock(&mu_);
    on_closed_ = std::move(callback);
  }
  boost::asio::any_io_executor executor() const override { return ioc_.get_executor(); }

  // The client goes away.
  void Leave() {
    std::function<void(bool)> callback;
    {
      absl::MutexLock lock(&mu_);
      callback = std::move(on_closed_);
    }
    if (callback) callback(false);
  }

  int status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  std::string body() {
    absl::MutexLock lock(&mu_);
    return body_;
  }
  bool ended() {
    absl::MutexLock lock(&mu_);
    return ended_;
  }
  bool streaming() {
    absl::MutexLock lock(&mu_);
    return streaming_;
  }
  std::vector<std::pair<std::string, std::string>> headers() {
    absl::MutexLock lock(&mu_);
    return headers_;
  }

 private:
  mutable boost::asio::io_context ioc_;
  absl::Mutex mu_;
  int status_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string body_;
  bool ended_ = false;
  bool streaming_ = false;
  std::string keepalive_;
  std::function<void(bool)> on_closed_;
};

net::HttpRequestHeader Header(boost::beast::http::verb method, const std::string& target,
                              const std::string& auth = "") {
  net::HttpRequestHeader h;
  h.method(method);
  h.target(target);
  h.version(11);
  if (!auth.empty()) h.set(boost::beast::http::field::authorization, auth);
  return h;
}

net::HttpRequest Post(const std::string& body) {
  net::HttpRequest r;
  r.method(boost::beast::http::verb::post);
  r.target("/v1/chat/completions");
  r.body() = body;
  return r;
}

class OpenAiHandlerTest : public ::testing::Test {
 protected:
  OpenAiHandlerTest()
      : config_(*config::ParseClusterConfig(
            "models:\n  a: {endpoint: 'x:1'}\n  b: {endpoint: 'x:2'}\n  z: {endpoint: 'x:3'}\n"
            "aggregator: {endpoint: 'x:4'}\n"
            "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\n",
            "test")),
        metrics_(registry_, {}) {}

  OpenAiHandler Handler(const ApiKeys* keys) {
    return OpenAiHandler({.engine = &engine_, .api_keys = keys, .readiness = nullptr});
  }

  static FakeGenerationBackend::Reply Answer(const cluster::GenerationCall& c) {
    return {{c.model + " says hi"}, FakeGenerationBackend::Ok(c.model)};
  }

  config::ClusterConfig config_;
  prometheus::Registry registry_;
  telemetry::OrchestratorMetrics metrics_;
  Admission admission_{4};
  ApiKeys no_keys_ = *ApiKeys::Load("", "");
  FakeGenerationBackend proposers_{Answer};
  FakeGenerationBackend aggregator_{Answer};
  Engine engine_{{}, &config_, {{&proposers_, &aggregator_}, &metrics_}, &admission_};
};

TEST_F(OpenAiHandlerTest, HeadersAloneAnswerHealthModelsRoutesMethodsAndKeys) {
  ApiKeys keys = *ApiKeys::Load("", "sk-good");
  OpenAiHandler handler = Handler(&keys);
  using boost::beast::http::verb;
  EXPECT_EQ(handler.Screen(Header(verb::get, "/healthz"))->status, 200);
  EXPECT_EQ(handler.Screen(Header(verb::get, "/v1/models"))->status, 401);
  EXPECT_EQ(handler.Screen(Header(verb::post, "/v1/chat/completions", "Bearer sk-bad"))->status,
            401);
  auto models = handler.Screen(Header(verb::get, "/v1/models", "Bearer sk-good"));
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "moa");
  EXPECT_EQ(handler.Screen(Header(verb::get, "/v1/chat/completions", "Bearer sk-good"))->status,
            405);
  EXPECT_EQ(handler.Screen(Header(verb::get, "/nope", "Bearer sk-good"))->status, 404);
  // A chat completion with a good key goes on to its body.
  EXPECT_FALSE(handler.Screen(Header(verb::post, "/v1/chat/completions", "Bearer sk-good")));
  admission_.BeginDrain();
  auto ready = handler.Screen(Header(verb::get, "/readyz"));
  EXPECT_EQ(ready->status, 503);
  EXPECT_THAT(ready->body, HasSubstr("draining"));
}

TEST_F(OpenAiHandlerTest, NonStreamingAnswerIsOneCompletionWithUsageAndTheSlotIsFreed) {
  OpenAiHandler handler = Handler(&no_keys_);
  auto exchange = std::make_shared<FakeExchange>();
  handler.Handle(Post(R"({"model":"moa","messages":[{"role":"user","content":"hi"}]})"), exchange);
  ASSERT_TRUE(exchange->ended());
  EXPECT_EQ(exchange->status(), 200);
  json answer = json::parse(exchange->body());
  EXPECT_EQ(answer["choices"][0]["message"]["content"], "z says hi");
  EXPECT_EQ(answer["usage"]["completion_tokens"], 15);
  EXPECT_EQ(admission_.inflight(), 0);
}

TEST_F(OpenAiHandlerTest, StreamingAnswerIsChunksThenDone) {
  OpenAiHandler handler = Handler(&no_keys_);
  auto exchange = std::make_shared<FakeExchange>();
  handler.Handle(Post(R"({"model":"moa","stream":true,"stream_options":{"include_usage":true},
                          "messages":[{"role":"user","content":"hi"}]})"),
                 exchange);
  ASSERT_TRUE(exchange->ended());
  EXPECT_TRUE(exchange->streaming());
  std::string body = exchange->body();
  EXPECT_LT(body.find(R"("role":"assistant")"), body.find("z says hi"));
  EXPECT_LT(body.find("z says hi"), body.find(R"("finish_reason":"stop")"));
  EXPECT_THAT(body, HasSubstr(R"("usage":{"completion_tokens":15)"));
  EXPECT_THAT(body, HasSubstr("data: [DONE]\n\n"));
}

TEST_F(OpenAiHandlerTest, RefusalsAreOpenAiErrorsBeforeAnyBackendCall) {
  OpenAiHandler handler = Handler(&no_keys_);
  struct Case {
    std::string body;
    int status;
    const char* text;
  };
  const Case cases[] = {
      {"{", 400, "not valid JSON"},
      {R"({"model":"nope","messages":[{"role":"user","content":"hi"}]})", 404, "model_not_found"},
      {R"({"model":"moa","messages":[{"role":"user","content":[{"type":1}]}]})", 400,
       "messages[0].content[0].type"},
  };
  for (const Case& c : cases) {
    auto exchange = std::make_shared<FakeExchange>();
    handler.Handle(Post(c.body), exchange);
    EXPECT_EQ(exchange->status(), c.status) << c.body;
    EXPECT_THAT(exchange->body(), HasSubstr(c.text)) << c.body;
  }
  EXPECT_TRUE(proposers_.calls().empty());
  // Draining: 503 with Retry-After, still no call.
  admission_.BeginDrain();
  auto exchange = std::make_shared<FakeExchange>();
  handler.Handle(Post(R"({"model":"moa","messages":[{"role":"user","content":"hi"}]})"), exchange);
  EXPECT_EQ(exchange->status(), 503);
  EXPECT_THAT(exchange->headers(),
              ::testing::Contains(std::make_pair(std::string("Retry-After"), std::string("1"))));
  EXPECT_TRUE(proposers_.calls().empty());
}

TEST_F(OpenAiHandlerTest, AClientThatLeavesCancelsItsRequest) {
  FakeGenerationBackend held([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  });
  Engine engine({}, &config_, {{&held, &aggregator_}, &metrics_}, &admission_);
  OpenAiHandler handler({.engine = &engine, .api_keys = &no_keys_, .readiness = nullptr});
  auto exchange = std::make_shared<FakeExchange>();
  handler.Handle(Post(R"({"model":"moa","messages":[{"role":"user","content":"hi"}]})"), exchange);
  EXPECT_EQ(admission_.inflight(), 1);
  EXPECT_FALSE(exchange->ended());
  exchange->Leave();
  EXPECT_EQ(held.cancelled(), 2);
  EXPECT_EQ(admission_.inflight(), 0);
}

}  // namespace
}  // namespace moa::orchestrator
