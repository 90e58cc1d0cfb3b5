// moa-proposer's service on a loopback port, with the upstream simulator as
// its upstream: streaming, cancellation, deadlines, faults, validation,
// overload and metrics.
#include "services/proposer/proposer_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/base/circuit_breaker.h"
#include "lib/llm/breaking_client.h"
#include "lib/llm/curl_llm_client.h"
#include "lib/net/http_server.h"
#include "lib/server/grpc_server.h"
#include "lib/server/health_check.h"
#include "lib/telemetry/exposer.h"
#include "tests/support/raw_grpc.h"
#include "tests/support/test_support.h"
#include "tools/upstream-sim/answer.h"
#include "tools/upstream-sim/sim_server.h"

namespace moa::proposer {
namespace {

using ::testing::HasSubstr;

constexpr char kProfiles[] = R"(default:
  time_to_first_token: 0.01
  tokens_per_second: 2000
  answer_tokens: 16
models:
  slow: {time_to_first_token: 0.02, tokens_per_second: 20, answer_tokens: 400}
  endless: {time_to_first_token: 0.01, tokens_per_second: 100000, answer_tokens: 10000}
  long: {time_to_first_token: 0.01, tokens_per_second: 1000000, answer_tokens: 30000}
  fail-500: {faults: {http_500: 1}}
  fail-429: {faults: {http_429: 1, retry_after_seconds: 3}}
  hang: {faults: {hang: 1}}
  reset: {faults: {reset: 1}}
  malformed: {faults: {malformed: 1}}
)";

// One proposer per upstream model name, all on the same simulator.
class ProposerServiceTest : public ::testing::Test {
 protected:
  static constexpr char kKey[] = "sk-proposer-test-789";

  void SetUp() override {
    sim::SimOptions options;
    options.profiles = *sim::ParseProfiles(kProfiles, "test");
    options.api_key = kKey;
    sim_ = *sim::SimServer::Start(std::move(options));
  }

  struct Proposer {
    std::shared_ptr<prometheus::Registry> registry;
    std::unique_ptr<telemetry::UpstreamMetrics> metrics;
    std::unique_ptr<telemetry::MetricsServer> metrics_server;
    std::unique_ptr<llm::CurlLlmClient> client;
    std::unique_ptr<CircuitBreaker> breaker;  // With it, the service calls through it.
    std::unique_ptr<llm::BreakingClient> breaking;
    std::unique_ptr<ProposerService> service;
    std::unique_ptr<server::GrpcServer> server;
    std::unique_ptr<v1::ProposerService::Stub> stub;
    std::shared_ptr<grpc::Channel> channel;
  };

  Proposer& Start(const std::string& model, int max_inflight = 64, const std::string& key = kKey,
                  std::string base_url = "", int64_t max_answer_bytes = 1 << 20,
                  std::optional<BreakerOptions> breaker = std::nullopt) {
    auto p = std::make_unique<Proposer>();
    p->registry = std::make_shared<prometheus::Registry>();
    p->metrics = std::make_unique<telemetry::UpstreamMetrics>(*p->registry, model);
    p->metrics_server = *telemetry::MetricsServer::Start("127.0.0.1", 0, p->registry);
    llm::UpstreamOptions up;
    up.base_url =
        base_url.empty() ? absl::StrCat("http://127.0.0.1:", sim_->port(), "/v1") : base_url;
    up.model = model;
    up.api_key = key;
    up.first_token_timeout = absl::Milliseconds(300);
    up.retry.initial_backoff = absl::Milliseconds(10);
    up.retry.max_retry_after = absl::Seconds(1);  // fail-429's 3 s is not waited for.
    p->client = *llm::CurlLlmClient::Create(up);
    llm::LlmClient* client = p->client.get();
    if (breaker) {
      p->breaker = std::make_unique<CircuitBreaker>("model " + model, *breaker, Clock::Real());
      p->breaking = std::make_unique<llm::BreakingClient>(client, p->breaker.get());
      client = p->breaking.get();
    }
    p->service = std::make_unique<ProposerService>(
        ProposerOptions{
            .model = model, .max_inflight = max_inflight, .max_answer_bytes = max_answer_bytes},
        client, p->metrics.get());
    p->server = *server::GrpcServer::Start({.host = "127.0.0.1", .port = 0, .name = "test"},
                                           {p->service.get()});
    p->channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", p->server->port()),
                                     grpc::InsecureChannelCredentials());
    p->stub = v1::ProposerService::NewStub(p->channel);
    proposers_.push_back(std::move(p));
    return *proposers_.back();
  }

  static v1::GenerateRequest Question(const std::string& text = "What is MoA?") {
    v1::GenerateRequest req;
    auto* m = req.add_messages();
    m->set_role(v1::ROLE_USER);
    m->set_content(text);
    return req;
  }

  struct Result {
    std::vector<std::string> deltas;
    std::optional<v1::Completion> completion;
    grpc::Status status;
    std::multimap<grpc::string_ref, grpc::string_ref> trailers;
    std::string retry_after;
    bool from_upstream = false;  // The moa-from-upstream trailer.
  };

  static Result Generate(Proposer& p, const v1::GenerateRequest& req,
                         absl::Duration deadline = absl::Seconds(10)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    auto reader = p.stub->Generate(&ctx, req);
    Result r;
    v1::GenerateResponse resp;
    while (reader->Read(&resp)) {
      if (resp.has_completion()) {
        r.completion = resp.completion();
      } else {
        r.deltas.push_back(resp.delta());
      }
    }
    r.status = reader->Finish();
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
      if (k == "retry-after") r.retry_after = std::string(v.data(), v.size());
      if (k == "moa-from-upstream") r.from_upstream = true;
    }
    return r;
  }

  nlohmann::json SimLog() { return nlohmann::json::parse(sim_->RequestLogJson())["requests"]; }

  std::string Metrics(Proposer& p) {
    return moa::testing::HttpGet(
               absl::StrCat("http://127.0.0.1:", p.metrics_server->port(), "/metrics"))
        .body;
  }

  std::unique_ptr<sim::SimServer> sim_;
  std::vector<std::unique_ptr<Proposer>> proposers_;
};

TEST_F(ProposerServiceTest, DeltasArriveInOrderThenCompletionWithUsageAndTimings) {
  Proposer& p = Start("m1");
  Result r = Generate(p, Question());
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  std::vector<std::string> expected = sim::AnswerTokens("m1", {{"user", "What is MoA?"}}, 16);
  EXPECT_EQ(absl::StrJoin(r.deltas, ""), absl::StrJoin(expected, ""))
      << "the concatenated deltas are the upstream's answer in order";
  ASSERT_TRUE(r.completion);
  EXPECT_EQ(r.completion->model(), "m1");
  EXPECT_EQ(r.completion->finish_reason(), "stop");
  EXPECT_EQ(r.completion->usage().completion_tokens(), 16);
  EXPECT_GT(r.completion->usage().prompt_tokens(), 0);
  EXPECT_GT(
      r.completion->time_to_first_token().nanos() + r.completion->time_to_first_token().seconds(),
      0);
  EXPECT_GE(r.completion->duration().seconds() * 1e9 + r.completion->duration().nanos(),
            r.completion->time_to_first_token().seconds() * 1e9 +
                r.completion->time_to_first_token().nanos());
  EXPECT_EQ(r.completion->attempts(), 1);
}

TEST_F(ProposerServiceTest, SamplingParamsReachTheUpstream) {
  Proposer& p = Start("m1");
  v1::GenerateRequest req = Question();
  req.mutable_params()->set_max_tokens(4);
  req.mutable_params()->set_temperature(0.3);
  Result r = Generate(p, req);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.completion->finish_reason(), "length");
  EXPECT_EQ(r.completion->usage().completion_tokens(), 4);
}

TEST_F(ProposerServiceTest, MetricsHaveHistogramsAndCountersWithTheModelLabel) {
  Proposer& p = Start("m1");
  for (int i = 0; i < 3; ++i) {
    Result r = Generate(p, Question());
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  }
  std::string m = Metrics(p);
  EXPECT_THAT(m, HasSubstr(R"(moa_upstream_requests_total{model="m1",outcome="ok"} 3)"));
  EXPECT_THAT(m, HasSubstr(R"(moa_upstream_requests_total{model="m1",outcome="unavailable"} 0)"));
  EXPECT_THAT(
      m, HasSubstr(R"(moa_upstream_request_duration_seconds_count{model="m1",outcome="ok"} 3)"));
  EXPECT_THAT(
      m,
      HasSubstr(
          R"(moa_upstream_request_duration_seconds_bucket{model="m1",outcome="ok",le="300"} 3)"));
  EXPECT_THAT(m, HasSubstr(R"(moa_upstream_time_to_first_token_seconds_count{model="m1"} 3)"));
  EXPECT_THAT(
      m, HasSubstr(R"(moa_upstream_time_to_first_token_seconds_bucket{model="m1",le="0.025"})"));
  EXPECT_THAT(m,
              HasSubstr(R"(moa_upstream_inter_token_latency_seconds_bucket{model="m1",le="5"})"));
  EXPECT_THAT(m, HasSubstr(R"(moa_upstream_tokens_total{direction="completion",model="m1"} 48)"));
  EXPECT_THAT(m, HasSubstr(R"(moa_upstream_tokens_total{direction="prompt",model="m1"})"));
  EXPECT_THAT(m, HasSubstr(R"(moa_upstream_inflight{model="m1"} 0)"));
  EXPECT_THAT(m, HasSubstr(R"(moa_upstream_retries_total{model="m1",reason="unavailable"} 0)"));
}

TEST_F(ProposerServiceTest, ClientCancelMidStreamClosesTheUpstreamWithin200ms) {
  Proposer& p = Start("slow");
  grpc::ClientContext ctx;
  auto reader = p.stub->Generate(&ctx, Question());
  v1::GenerateResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  ASSERT_TRUE(resp.has_delta());
  absl::Time cancelled = absl::Now();
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(moa::testing::WaitFor([&] { return SimLog()[0]["outcome"] == "client_closed"; },
                                    absl::Milliseconds(200)))
      << SimLog().dump();
  EXPECT_LT(absl::Now() - cancelled, absl::Milliseconds(200));
  ASSERT_TRUE(moa::testing::WaitFor([&] { return p.service->inflight() == 0; }, absl::Seconds(2)));
  EXPECT_THAT(Metrics(p),
              HasSubstr(R"(moa_upstream_requests_total{model="slow",outcome="cancelled"} 1)"));
}

TEST_F(ProposerServiceTest, CallerDeadlineEndsTheUpstreamTransfer) {
  Proposer& p = Start("slow");
  Result r = Generate(p, Question(), absl::Milliseconds(400));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_FALSE(r.deltas.empty());
  EXPECT_TRUE(moa::testing::WaitFor([&] { return SimLog()[0]["outcome"] == "client_closed"; },
                                    absl::Milliseconds(500)))
      << SimLog().dump();
  ASSERT_TRUE(moa::testing::WaitFor([&] { return p.service->inflight() == 0; }, absl::Seconds(2)));
  EXPECT_THAT(Metrics(p),
              HasSubstr(R"(moa_upstream_requests_total{model="slow",outcome="deadline"} 1)"));
}

struct FaultCase {
  const char* model;
  grpc::StatusCode code;
  const char* message_part;
};

TEST_F(ProposerServiceTest, EachUpstreamFaultEndsInItsStatusAndTheProposerKeepsServing) {
  const FaultCase cases[] = {
      {"fail-500", grpc::StatusCode::UNAVAILABLE, "HTTP 500"},
      {"fail-429", grpc::StatusCode::RESOURCE_EXHAUSTED, "HTTP 429"},
      {"hang", grpc::StatusCode::DEADLINE_EXCEEDED, "no token within"},
      {"reset", grpc::StatusCode::UNAVAILABLE, "upstream connection failed"},
      {"malformed", grpc::StatusCode::INTERNAL, "malformed"},
  };
  for (const FaultCase& c : cases) {
    Proposer& p = Start(c.model);
    Result r = Generate(p, Question());
    EXPECT_EQ(r.status.error_code(), c.code) << c.model << ": " << r.status.error_message();
    EXPECT_THAT(r.status.error_message(), HasSubstr(c.message_part)) << c.model;
    EXPECT_THAT(r.status.error_message(), HasSubstr(absl::StrCat("model ", c.model)));
    EXPECT_FALSE(r.completion) << c.model;
    if (std::string(c.model) == "fail-429") {
      EXPECT_EQ(r.retry_after, "3");
    }
  }
  // Every proposer still answers; the simulator's default model is healthy,
  // so a proposer on the same process set keeps serving after faults.
  Proposer& healthy = Start("m1");
  EXPECT_TRUE(Generate(healthy, Question()).status.ok());
  for (auto& p : proposers_) {
    EXPECT_EQ(moa::server::HealthCheck(p->channel), 1);
    // The server's own bookkeeping may run just after the client saw the
    // status: wait for it instead of reading it at one instant.
    EXPECT_TRUE(
        moa::testing::WaitFor([&] { return p->service->inflight() == 0; }, absl::Seconds(5)));
  }
  Result again = Generate(*proposers_[0], Question());
  EXPECT_EQ(again.status.error_code(), grpc::StatusCode::UNAVAILABLE) << "fail-500 still answers";
}

// The upstream's failures are the model's (the orchestrator's breaker counts
// them, a retry of the final answer spends its budget); the proposer's own
// breaker refusing, no call made, is not: it carries its Retry-After only.
TEST_F(ProposerServiceTest, OnlyTheUpstreamsFailuresAreMarkedAsTheModelsNotOurBreakersRefusal) {
  Proposer& p = Start("fail-500", 64, kKey, "", 1 << 20,
                      BreakerOptions{.failure_ratio = 0.5,
                                     .min_calls = 2,
                                     .window = absl::Seconds(60),
                                     .cooldown = absl::Seconds(60)});
  for (int i = 0; i < 2; ++i) {
    Result r = Generate(p, Question());
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(r.status.error_message(), HasSubstr("HTTP 500"));
    EXPECT_TRUE(r.from_upstream) << i;
  }
  const size_t calls = SimLog().size();
  Result refused = Generate(p, Question());
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("model fail-500 is cooling down"));
  EXPECT_FALSE(refused.from_upstream);
  EXPECT_FALSE(refused.retry_after.empty()) << "the rest of the cooldown";
  EXPECT_EQ(SimLog().size(), calls) << "no call while open";
}

TEST_F(ProposerServiceTest, WrongKeyIsUnauthenticatedWithoutTheKeyInTheMessage) {
  Proposer& p = Start("m1", 64, "sk-wrong-key-000");
  Result r = Generate(p, Question());
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(r.status.error_message(), HasSubstr("HTTP 401"));
  EXPECT_THAT(r.status.error_message(), ::testing::Not(HasSubstr("sk-wrong-key-000")));
  EXPECT_THAT(Metrics(p), ::testing::Not(HasSubstr("sk-wrong-key-000")));
}

TEST_F(ProposerServiceTest, EachInvalidRequestGetsInvalidArgumentNamingTheField) {
  Proposer& p = Start("m1");
  struct Case {
    std::function<void(v1::GenerateRequest&)> mutate;
    const char* field;
  };
  const Case cases[] = {
      {[](v1::GenerateRequest& r) { r.clear_messages(); }, "messages"},
      {[](v1::GenerateRequest& r) { r.mutable_messages(0)->set_content(""); },
       "messages[0].content"},
      {[](v1::GenerateRequest& r) { r.mutable_messages(0)->set_role(v1::ROLE_UNSPECIFIED); },
       "messages[0].role"},
      {[](v1::GenerateRequest& r) { r.mutable_params()->set_max_tokens(0); }, "params.max_tokens"},
      {[](v1::GenerateRequest& r) { r.mutable_params()->set_temperature(2.1); },
       "params.temperature"},
      {[](v1::GenerateRequest& r) { r.mutable_params()->set_top_p(0); }, "params.top_p"},
      {[](v1::GenerateRequest& r) { r.mutable_params()->set_top_p(1.01); }, "params.top_p"},
      // limits.max_messages (512 by default) holds for a direct caller too.
      {[](v1::GenerateRequest& r) {
         for (int i = 0; i < 100000; ++i) *r.add_messages() = r.messages(0);
       },
       "over limits.max_messages (512)"},
  };
  for (const Case& c : cases) {
    v1::GenerateRequest req = Question();
    c.mutate(req);
    Result r = Generate(p, req);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(r.status.error_message(), HasSubstr(c.field));
  }
  EXPECT_TRUE(SimLog().empty()) << "invalid requests never reach the upstream";
}

// A caller that opens streams and never reads them (its flow-control
// window fills) keeps no concurrency once the upstream calls ended: the
// limit counts upstream calls, and others are served meanwhile.
TEST_F(ProposerServiceTest, ACallerThatNeverReadsHoldsNoConcurrencyOnceItsUpstreamCallsEnded) {
  Proposer& p = Start("long", /*max_inflight=*/2);
  // Raw HTTP/2 callers that never grant flow-control window: each answer
  // (~150 KB) stops in the proposer's queue after the first 64 KiB. They
  // hold their calls for 10 s, long enough for the rest to happen on a busy
  // machine; the threads are joined before the test ends whatever happened.
  const std::string message = moa::testing::GrpcFrame(Question("a").SerializeAsString(), false);
  std::vector<std::thread> hoarders;
  for (int i = 0; i < 2; ++i) {
    hoarders.emplace_back([&] {
      moa::testing::SendRawGrpcCall(p.server->port(), "/moa.v1.ProposerService/Generate", {},
                                    message, absl::Seconds(10));
    });
  }
  const bool both_read = moa::testing::WaitFor(
      [&] {
        int completed = 0;
        for (const auto& r : SimLog()) completed += r["outcome"] == "completed";
        return completed == 2;
      },
      absl::Seconds(8));
  EXPECT_TRUE(both_read) << "the proposer read both upstream answers whole: " << SimLog().dump();
  if (both_read) {
    EXPECT_TRUE(
        moa::testing::WaitFor([&] { return p.service->inflight() == 0; }, absl::Seconds(2)));
    Result other = Generate(p, Question("c"));
    EXPECT_TRUE(other.status.ok()) << other.status.error_message();
  }
  for (auto& t : hoarders) t.join();
}

TEST_F(ProposerServiceTest, RequestsOverMaxInflightGetResourceExhaustedAtOnce) {
  Proposer& p = Start("slow", /*max_inflight=*/2);
  grpc::ClientContext c1, c2;
  auto r1 = p.stub->Generate(&c1, Question("a"));
  auto r2 = p.stub->Generate(&c2, Question("b"));
  v1::GenerateResponse resp;
  ASSERT_TRUE(r1->Read(&resp));
  ASSERT_TRUE(r2->Read(&resp));
  absl::Time start = absl::Now();
  Result over = Generate(p, Question("c"));
  EXPECT_EQ(over.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(over.status.error_message(), HasSubstr("limit of 2 concurrent requests"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  c1.TryCancel();
  c2.TryCancel();
  while (r1->Read(&resp)) {
  }
  while (r2->Read(&resp)) {
  }
  r1->Finish();
  r2->Finish();
  ASSERT_TRUE(moa::testing::WaitFor([&] { return p.service->inflight() == 0; }, absl::Seconds(2)));
  v1::GenerateRequest small = Question("d");
  small.mutable_params()->set_max_tokens(2);
  EXPECT_TRUE(Generate(p, small).status.ok()) << "capacity is back after the streams ended";
}

TEST_F(ProposerServiceTest, WholeTextArrivesAsOneDeltaBeforeTheCompletion) {
  Proposer& p = Start("m1");
  v1::GenerateRequest req = Question("whole");
  req.set_whole_text(true);
  Result r = Generate(p, req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  // The first-byte mark (empty) when the upstream began, then the text in
  // one message instead of one per token.
  ASSERT_EQ(r.deltas.size(), 2u);
  EXPECT_EQ(r.deltas[0], "");
  EXPECT_EQ(r.deltas[1], absl::StrJoin(sim::AnswerTokens("m1", {{"user", "whole"}}, 16), ""));
  ASSERT_TRUE(r.completion);
  EXPECT_GT(
      r.completion->time_to_first_token().nanos() + r.completion->time_to_first_token().seconds(),
      0)
      << "the time to first token is still the upstream's";
}

TEST_F(ProposerServiceTest, SlowReaderGetsDeltasMergedNotLost) {
  Proposer& p = Start("m1");
  v1::GenerateRequest req = Question("long");
  grpc::ClientContext ctx;
  auto reader = p.stub->Generate(&ctx, req);
  absl::SleepFor(absl::Milliseconds(200));  // Let the whole answer queue up.
  std::string text;
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    if (resp.has_delta()) text += resp.delta();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(text, absl::StrJoin(sim::AnswerTokens("m1", {{"user", "long"}}, 16), ""));
}

// An upstream that answers every chat request with the same SSE body.
class CannedUpstream : public net::HttpHandler {
 public:
  explicit CannedUpstream(std::string sse) : sse_(std::move(sse)) {}
  void Handle(net::HttpRequest, std::shared_ptr<net::HttpExchange> exchange) override {
    exchange->Respond({200, "text/event-stream", sse_, {}});
  }

 private:
  std::string sse_;
};

TEST_F(ProposerServiceTest, AMistypedUsageFromTheUpstreamFailsTheCallNotTheProcess) {
  const std::string answer =
      "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
  CannedUpstream null_usage(answer +
                            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":null}}\n\n"
                            "data: [DONE]\n\n");
  CannedUpstream string_usage(answer +
                              "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":\"7\"}}\n\n"
                              "data: [DONE]\n\n");
  auto null_server = *net::HttpServer::Start({}, &null_usage);
  auto string_server = *net::HttpServer::Start({}, &string_usage);
  Proposer& lenient =
      Start("m1", 64, kKey, absl::StrCat("http://127.0.0.1:", null_server->port(), "/v1"));
  Result r = Generate(lenient, Question());
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.completion->usage().prompt_tokens(), 0);

  Proposer& strict =
      Start("m2", 64, kKey, absl::StrCat("http://127.0.0.1:", string_server->port(), "/v1"));
  for (int i = 0; i < 3; ++i) {
    r = Generate(strict, Question());
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_THAT(r.status.error_message(), HasSubstr("usage.prompt_tokens"));
  }
  // The process is still here and serving.
  EXPECT_TRUE(Generate(lenient, Question()).status.ok());
}

TEST_F(ProposerServiceTest, AnAnswerOverMaxAnswerBytesIsCutWithFinishReasonLength) {
  Proposer& p = Start("endless", 64, kKey, "", /*max_answer_bytes=*/4096);
  int64_t before = 0;
  {
    auto log = nlohmann::json::parse(sim_->RequestLogJson());
    before = log["requests"].empty() ? 0 : log["requests"].back()["id"].get<int64_t>();
  }
  for (bool whole : {true, false}) {
    v1::GenerateRequest req = Question(whole ? "whole" : "streamed");
    req.set_whole_text(whole);
    Result r = Generate(p, req);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    std::string text = absl::StrJoin(r.deltas, "");
    EXPECT_LE(text.size(), 4096u);
    EXPECT_GT(text.size(), 3000u);
    ASSERT_TRUE(r.completion);
    EXPECT_EQ(r.completion->finish_reason(), "length");
  }
  // The upstream transfers were closed, not left to run.
  EXPECT_TRUE(moa::testing::WaitFor(
      [&] {
        auto log = nlohmann::json::parse(sim_->RequestLogJson(before));
        if (log["requests"].size() != 2) return false;
        for (const auto& e : log["requests"]) {
          if (e["outcome"] != "client_closed") return false;
        }
        return true;
      },
      absl::Seconds(5)));
}

// An LlmClient that answers from inside Start, as a client may: the
// reactor must not hold its lock across Start, and the answer must arrive
// whole and once.
class InlineClient final : public llm::LlmClient {
 public:
  std::shared_ptr<llm::CallHandle> Start(llm::ChatRequest request,
                                         std::shared_ptr<llm::StreamObserver> observer) override {
    {
      absl::MutexLock lock(&mu_);
      last_ = request;
    }
    observer->OnDelta("echo: ");
    observer->OnDelta(request.messages.back().content);
    llm::Completion done;
    done.finish_reason = "stop";
    done.usage = {2, 3};
    observer->OnDone(done);
    return std::make_shared<Handle>();
  }

  llm::ChatRequest last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }

 private:
  struct Handle final : llm::CallHandle {
    void Cancel() override {}
  };
  absl::Mutex mu_;
  llm::ChatRequest last_;
};

TEST_F(ProposerServiceTest, AnAnswerSoFarIsContinuedInTheUpstreamsWay) {
  for (llm::Continuation how :
       {llm::Continuation::kPrefill, llm::Continuation::kVllm, llm::Continuation::kInstruction}) {
    auto registry = std::make_shared<prometheus::Registry>();
    telemetry::UpstreamMetrics metrics(*registry, "inline");
    InlineClient client;
    ProposerService service({.model = "inline", .continuation = how}, &client, &metrics);
    auto server =
        *server::GrpcServer::Start({.host = "127.0.0.1", .port = 0, .name = "test"}, {&service});
    Proposer p;
    p.stub = v1::ProposerService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server->port()), grpc::InsecureChannelCredentials()));
    v1::GenerateRequest request = Question("ping");
    request.set_continue_from("the answer so");
    ASSERT_TRUE(Generate(p, request).status.ok());
    const llm::ChatRequest sent = client.last();
    ASSERT_EQ(sent.messages.size(), 2u);
    if (how == llm::Continuation::kInstruction) {
      EXPECT_EQ(sent.messages[1].role, llm::Role::kUser);
      EXPECT_EQ(sent.messages[1].content, absl::StrCat(llm::kContinueInstruction, "the answer so"));
    } else {
      EXPECT_EQ(sent.messages[1].role, llm::Role::kAssistant);
      EXPECT_EQ(sent.messages[1].content, "the answer so");
    }
    EXPECT_EQ(sent.continue_final_message, how == llm::Continuation::kVllm);
  }
}

TEST_F(ProposerServiceTest, AnAnswerSoFarOverTheAnswerLimitIsRefusedBeforeAnyCall) {
  auto registry = std::make_shared<prometheus::Registry>();
  telemetry::UpstreamMetrics metrics(*registry, "inline");
  InlineClient client;
  ProposerService service({.model = "inline", .max_answer_bytes = 8}, &client, &metrics);
  auto server =
      *server::GrpcServer::Start({.host = "127.0.0.1", .port = 0, .name = "test"}, {&service});
  Proposer p;
  p.stub = v1::ProposerService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server->port()), grpc::InsecureChannelCredentials()));
  v1::GenerateRequest request = Question("ping");
  request.set_continue_from("nine bytes");
  Result r = Generate(p, request);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.status.error_message(), HasSubstr("limits.max_answer_bytes (8)"));
  EXPECT_TRUE(client.last().messages.empty()) << "no upstream call";
}

TEST_F(ProposerServiceTest, AClientThatAnswersInsideStartIsStreamedWhole) {
  auto registry = std::make_shared<prometheus::Registry>();
  telemetry::UpstreamMetrics metrics(*registry, "inline");
  InlineClient client;
  ProposerService service({.model = "inline"}, &client, &metrics);
  auto server =
      *server::GrpcServer::Start({.host = "127.0.0.1", .port = 0, .name = "test"}, {&service});
  Proposer p;
  p.stub = v1::ProposerService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server->port()), grpc::InsecureChannelCredentials()));
  for (bool whole_text : {false, true}) {
    v1::GenerateRequest request = Question("ping");
    request.set_whole_text(whole_text);
    Result r = Generate(p, request);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(absl::StrJoin(r.deltas, ""), "echo: ping");
    if (whole_text) {
      EXPECT_THAT(r.deltas, ::testing::ElementsAre("", "echo: ping")) << "the mark, the text";
    }
    ASSERT_TRUE(r.completion);
    EXPECT_EQ(r.completion->model(), "inline");
    EXPECT_EQ(r.completion->usage().completion_tokens(), 3);
  }
  EXPECT_TRUE(moa::testing::WaitFor([&] { return service.inflight() == 0; }, absl::Seconds(5)));
}

}  // namespace
}  // namespace moa::proposer
