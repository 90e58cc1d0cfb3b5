// Lifecycle of a cluster of real processes: a drain that both servers share,
// and backends that restart under a running orchestrator.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/server/health_check.h"
#include "tests/support/local_cluster.h"
#include "tests/support/raw_client.h"
#include "tests/support/test_support.h"

namespace moa {
namespace {

using ::testing::HasSubstr;
using testing::LocalCluster;
using testing::RawClient;
using ::testing::StartsWith;

testing::ClusterSpec Spec(const std::vector<std::string>& orchestrator_flags = {}) {
  return testing::SmallClusterSpec(orchestrator_flags);
}

v1::ChatRequest Request(const std::string& pipeline) {
  v1::ChatRequest r;
  r.set_pipeline(pipeline);
  auto* m = r.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content("Hello");
  return r;
}

std::string HttpPost(const std::string& body) {
  return absl::StrCat("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: ", body.size(),
                      "\r\n\r\n", body);
}

TEST(LifecycleTest, SigtermDrainsBothServersAtOnceAndExitsWithinTheGracePlusOneSecond) {
  const absl::Duration grace = absl::Seconds(2);
  LocalCluster cluster(Spec({"--drain_grace=2s"}));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  auto channel =
      grpc::CreateChannel(cluster.orchestrator_address(), grpc::InsecureChannelCredentials());
  ASSERT_EQ(server::HealthCheck(channel), 1);

  // In flight on both servers: a gRPC Chat and an HTTP stream, each waiting on
  // the slow model; plus a keep-alive HTTP connection that is idle.
  grpc::ClientContext grpc_ctx;
  auto grpc_reader = cluster.stub().Chat(&grpc_ctx, Request("slow"));
  RawClient http_stream(cluster.orchestrator_http_port());
  ASSERT_TRUE(http_stream.Send(HttpPost(
      R"({"model":"slow","stream":true,"messages":[{"role":"user","content":"Hello"}]})")));
  RawClient http_whole(cluster.orchestrator_http_port());
  ASSERT_TRUE(http_whole.Send(
      HttpPost(R"({"model":"slow","messages":[{"role":"user","content":"Hello"}]})")));
  RawClient keep_alive(cluster.orchestrator_http_port());
  ASSERT_TRUE(keep_alive.Send("GET /healthz HTTP/1.1\r\n\r\n"));
  ASSERT_THAT(keep_alive.ReadResponse(), StartsWith("HTTP/1.1 200 "));
  ASSERT_TRUE(testing::WaitFor([&] { return cluster.LastSimRequestId() >= 3; }, absl::Seconds(5)));

  const absl::Time sigterm = absl::Now();
  cluster.orchestrator_process().Signal(SIGTERM);
  // At once: gRPC health is NOT_SERVING and new requests are refused.
  EXPECT_TRUE(
      testing::WaitFor([&] { return server::HealthCheck(channel) == 2; }, absl::Milliseconds(500)));
  grpc::ClientContext late_ctx;
  auto late = cluster.stub().Chat(&late_ctx, Request("moa"));
  v1::ChatEvent event;
  while (late->Read(&event)) {
  }
  grpc::Status late_status = late->Finish();
  EXPECT_EQ(late_status.error_code(), grpc::StatusCode::UNAVAILABLE) << late_status.error_message();
  EXPECT_LT(absl::Now() - sigterm, grace);

  // The exit comes within the grace plus one second, both requests ending.
  int code = cluster.orchestrator_process().Wait(grace + absl::Seconds(3));
  const absl::Duration took = absl::Now() - sigterm;
  std::printf("drain with requests in flight on both servers took %s (grace %s)\n",
              absl::FormatDuration(took).c_str(), absl::FormatDuration(grace).c_str());
  EXPECT_EQ(code, 0);
  EXPECT_GE(took, grace - absl::Milliseconds(100));
  EXPECT_LE(took, grace + absl::Seconds(1)) << cluster.orchestrator_process().Output();
  while (grpc_reader->Read(&event)) {
  }
  // Cut by the drain: UNAVAILABLE (503 over HTTP, with Retry-After), as for
  // a request refused while draining, so the client retries elsewhere.
  grpc::Status cut = grpc_reader->Finish();
  EXPECT_EQ(cut.error_code(), grpc::StatusCode::UNAVAILABLE) << cut.error_message();
  std::string whole = http_whole.ReadResponse(absl::Seconds(2));
  EXPECT_THAT(whole, StartsWith("HTTP/1.1 503 ")) << whole;
  EXPECT_THAT(whole, HasSubstr("Retry-After: 1"));
  EXPECT_THAT(whole, HasSubstr("retry on another replica"));
  std::string streamed = http_stream.ReadAll(absl::Seconds(2));
  EXPECT_THAT(streamed, HasSubstr("HTTP/1.1 200 "));
  EXPECT_THAT(streamed, HasSubstr("data: {\"error\""));
  // The idle keep-alive connection was closed at the start of the drain.
  EXPECT_EQ(keep_alive.ReadAll(absl::Seconds(1)), "");
  EXPECT_TRUE(keep_alive.closed());
}

TEST(LifecycleTest, AfterBackendsRestartTheFirstRequestSucceedsWithinOneAndAHalfSeconds) {
  LocalCluster cluster(Spec({}));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  auto ask = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    auto reader = cluster.stub().Chat(&ctx, Request("moa"));
    v1::ChatEvent e;
    while (reader->Read(&e)) {
    }
    return reader->Finish();
  };
  ASSERT_TRUE(ask().ok());
  ASSERT_TRUE(cluster.RestartBackends()) << cluster.error();
  const absl::Time restarted = absl::Now();
  grpc::Status status;
  absl::Time ok_at;
  while (absl::Now() - restarted < absl::Seconds(10)) {
    status = ask();
    if (status.ok()) {
      ok_at = absl::Now();
      break;
    }
  }
  ASSERT_TRUE(status.ok()) << status.error_message();
  const absl::Duration took = ok_at - restarted;
  std::printf("first successful request %s after the backends served again\n",
              absl::FormatDuration(took).c_str());
  EXPECT_LE(took, absl::Milliseconds(1500));
  // The orchestrator's gRPC health follows the same readiness as /readyz.
  auto channel =
      grpc::CreateChannel(cluster.orchestrator_address(), grpc::InsecureChannelCredentials());
  EXPECT_TRUE(
      testing::WaitFor([&] { return server::HealthCheck(channel) == 1; }, absl::Seconds(3)));
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return testing::HttpGet(
                   absl::StrCat("http://127.0.0.1:", cluster.orchestrator_http_port(), "/readyz"))
                   .status == 200;
      },
      absl::Seconds(3)));
}

}  // namespace
}  // namespace moa
