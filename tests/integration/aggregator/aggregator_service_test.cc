// AggregatorService over a real gRPC server, called through
// AggregatorBackend, with a fake backend standing in for the proposers: one
// that answers from inside Start (as a real backend may), one that holds.
#include "services/aggregator/aggregator_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/cluster/grpc_backends.h"
#include "lib/server/grpc_server.h"
#include "tests/fakes/fake_generation_backend.h"
#include "tests/support/recording_observer.h"
#include "tests/support/test_support.h"

namespace moa::aggregator {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::moa::testing::RecordingObserver;
using ::testing::HasSubstr;

class AggregatorServiceTest : public ::testing::Test {
 protected:
  void Serve(FakeGenerationBackend* proposers) {
    AggregatorOptions options;
    options.models = {"z"};
    options.instruction = "Synthesize these:";
    service_ = std::make_unique<AggregatorService>(options, proposers, &metrics_, &clock_);
    server_ = *server::GrpcServer::Start({.host = "127.0.0.1", .port = 0, .name = "test"},
                                         {service_.get()});
    backend_ =
        std::make_unique<cluster::AggregatorBackend>(absl::StrCat("127.0.0.1:", server_->port()));
  }

  static cluster::GenerationCall Synthesis(const std::string& model) {
    cluster::GenerationCall call;
    call.model = model;
    call.messages = {{llm::Role::kUser, "question"}};
    call.references = {{"a", "answer A"}, {"b", "answer B"}};
    call.params.temperature = 0.25;
    call.deadline = absl::Now() + absl::Seconds(10);
    return call;
  }

  FakeClock clock_;
  prometheus::Registry registry_;
  telemetry::CallMetrics metrics_{registry_, "moa_aggregator", "Aggregations", {"z"}};
  std::unique_ptr<AggregatorService> service_;
  std::unique_ptr<server::GrpcServer> server_;
  std::unique_ptr<cluster::AggregatorBackend> backend_;
};

TEST_F(AggregatorServiceTest, ABackendThatAnswersInsideStartStreamsTheSynthesis) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall& c) {
    llm::Completion done = FakeGenerationBackend::Ok();
    done.time_to_first_token = absl::Milliseconds(7);
    return FakeGenerationBackend::Reply{{"syn", "thesis"}, done};
  });
  Serve(&proposers);
  auto observer = std::make_shared<RecordingObserver>();
  backend_->Start(Synthesis("z"), observer);
  ASSERT_TRUE(observer->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(observer->text(), "synthesis");
  auto result = observer->result();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->usage.completion_tokens, 5);
  EXPECT_EQ(result->time_to_first_token, absl::Milliseconds(7));
  // What the aggregator asked of the synthesizing model.
  ASSERT_EQ(proposers.calls().size(), 1u);
  const cluster::GenerationCall sent = proposers.calls()[0];
  EXPECT_EQ(sent.model, "z");
  ASSERT_EQ(sent.messages.size(), 2u);
  EXPECT_EQ(sent.messages[0].role, llm::Role::kSystem);
  EXPECT_THAT(sent.messages[0].content, HasSubstr("Synthesize these:"));
  EXPECT_THAT(sent.messages[0].content, HasSubstr("answer B"));
  EXPECT_EQ(sent.messages[1].content, "question");
  EXPECT_EQ(sent.params.temperature, 0.25);
  EXPECT_TRUE(sent.references.empty()) << "references travel inside the prompt";
}

TEST_F(AggregatorServiceTest, ACallerThatCancelsEndsTheSynthesizingCall) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  });
  Serve(&proposers);
  auto observer = std::make_shared<RecordingObserver>();
  auto handle = backend_->Start(Synthesis("z"), observer);
  ASSERT_TRUE(
      ::moa::testing::WaitFor([&] { return proposers.calls().size() == 1; }, absl::Seconds(10)));
  handle->Cancel();
  ASSERT_TRUE(observer->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(observer->result().status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(
      ::moa::testing::WaitFor([&] { return proposers.cancelled() == 1; }, absl::Seconds(10)));
}

TEST_F(AggregatorServiceTest, ARequestOutsideTheClusterIsRefusedBeforeAnyCall) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{"x"}, FakeGenerationBackend::Ok()};
  });
  Serve(&proposers);
  auto observer = std::make_shared<RecordingObserver>();
  backend_->Start(Synthesis("ghost"), observer);
  ASSERT_TRUE(observer->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(observer->result().status().code(), absl::StatusCode::kNotFound);
  cluster::GenerationCall too_long = Synthesis("z");
  too_long.continue_from = std::string((1 << 20) + 1, 'x');  // Over limits.max_answer_bytes.
  observer = std::make_shared<RecordingObserver>();
  backend_->Start(too_long, observer);
  ASSERT_TRUE(observer->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(observer->result().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(observer->result().status().message(), HasSubstr("continue_from"));
  cluster::GenerationCall huge_analysis = Synthesis("z");
  huge_analysis.analysis = std::string((1 << 20) + 1, 'x');  // A judge's analysis, too long.
  observer = std::make_shared<RecordingObserver>();
  backend_->Start(huge_analysis, observer);
  ASSERT_TRUE(observer->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(observer->result().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(observer->result().status().message(), HasSubstr("analysis is 1048577 bytes"));
  cluster::GenerationCall no_refs = Synthesis("z");
  no_refs.references.clear();
  observer = std::make_shared<RecordingObserver>();
  backend_->Start(no_refs, observer);
  ASSERT_TRUE(observer->WaitDone(absl::Seconds(10)));
  EXPECT_EQ(observer->result().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(observer->result().status().message(), HasSubstr("references"));
  EXPECT_TRUE(proposers.calls().empty());
}

}  // namespace
}  // namespace moa::aggregator
