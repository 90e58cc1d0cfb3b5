// The orchestrator's gRPC service (ChatReactor over the Engine) on a real
// server with fake backends: events and status on the wire, API keys, and a
// client cancel reaching every child call.
#include "services/orchestrator/orchestrator_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/server/grpc_server.h"
#include "tests/fakes/fake_generation_backend.h"
#include "tests/support/requests.h"
#include "tests/support/test_support.h"

namespace moa::orchestrator {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::testing::HasSubstr;

class OrchestratorServiceTest : public ::testing::Test {
 protected:
  OrchestratorServiceTest()
      : config_(*config::ParseClusterConfig(
            "models:\n  a: {endpoint: 'x:1'}\n  b: {endpoint: 'x:2'}\n  z: {endpoint: 'x:3'}\n"
            "aggregator: {endpoint: 'x:4'}\n"
            "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\n",
            "test")),
        metrics_(registry_, {{"moa", {{"a", "b"}}, "z"}}) {}

  void Serve(FakeGenerationBackend* proposers, const ApiKeys* keys) {
    engine_ = std::make_unique<Engine>(EngineOptions{}, &config_,
                                       MoaEnv{{proposers, &aggregator_}, &metrics_}, &admission_);
    service_ = std::make_unique<OrchestratorService>(engine_.get(), keys);
    server_ = *server::GrpcServer::Start({.host = "127.0.0.1", .port = 0, .name = "test"},
                                         {service_.get()});
    stub_ = v1::OrchestratorService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }

  static v1::ChatRequest Question() { return ::moa::testing::UserQuestion(); }

  static FakeGenerationBackend::Reply Answer(const cluster::GenerationCall& c) {
    return {{c.model, " says hi"}, FakeGenerationBackend::Ok()};
  }

  config::ClusterConfig config_;
  prometheus::Registry registry_;
  telemetry::OrchestratorMetrics metrics_;
  Admission admission_{8};
  ApiKeys no_keys_ = *ApiKeys::Load("", "");
  FakeGenerationBackend proposers_{Answer};
  FakeGenerationBackend aggregator_{Answer};
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<OrchestratorService> service_;
  std::unique_ptr<server::GrpcServer> server_;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
};

TEST_F(OrchestratorServiceTest, ChatStreamsEveryEventThenOk) {
  Serve(&proposers_, &no_keys_);
  grpc::ClientContext context;
  auto reader = stub_->Chat(&context, Question());
  std::string answer;
  v1::ChatEvent event;
  std::vector<v1::ChatEvent::EventCase> kinds;
  while (reader->Read(&event)) {
    kinds.push_back(event.event_case());
    if (event.has_answer_delta()) answer += event.answer_delta();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(answer, "z says hi");
  ASSERT_FALSE(kinds.empty());
  EXPECT_EQ(kinds.front(), v1::ChatEvent::kAccepted);
  EXPECT_EQ(kinds.back(), v1::ChatEvent::kSummary);
  EXPECT_TRUE(
      ::moa::testing::WaitFor([&] { return admission_.inflight() == 0; }, absl::Seconds(5)));
}

TEST_F(OrchestratorServiceTest, RefusalsCarryTheirCodeAndNoModelIsCalled) {
  ApiKeys keys = *ApiKeys::Load("", "sk-good");
  Serve(&proposers_, &keys);
  {
    grpc::ClientContext context;
    auto reader = stub_->Chat(&context, Question());
    v1::ChatEvent event;
    while (reader->Read(&event)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer sk-good");
    v1::ChatRequest request = Question();
    request.set_pipeline("nope");
    auto reader = stub_->Chat(&context, request);
    v1::ChatEvent event;
    while (reader->Read(&event)) {
    }
    grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr("available: moa"));
  }
  EXPECT_TRUE(proposers_.calls().empty());
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer sk-good");
  v1::ListPipelinesResponse pipelines;
  ASSERT_TRUE(stub_->ListPipelines(&context, {}, &pipelines).ok());
  ASSERT_EQ(pipelines.pipelines_size(), 1);
  EXPECT_TRUE(pipelines.pipelines(0).default_());
}

TEST_F(OrchestratorServiceTest, AClientCancelEndsEveryChildCall) {
  FakeGenerationBackend held([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  });
  Serve(&held, &no_keys_);
  grpc::ClientContext context;
  auto reader = stub_->Chat(&context, Question());
  v1::ChatEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_TRUE(event.has_accepted());
  ASSERT_TRUE(::moa::testing::WaitFor([&] { return held.calls().size() == 2; }, absl::Seconds(5)));
  context.TryCancel();
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(::moa::testing::WaitFor([&] { return held.cancelled() == 2; }, absl::Seconds(5)));
  EXPECT_TRUE(
      ::moa::testing::WaitFor([&] { return admission_.inflight() == 0; }, absl::Seconds(5)));
}

}  // namespace
}  // namespace moa::orchestrator
