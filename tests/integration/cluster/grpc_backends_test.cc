// lib/cluster over a real gRPC server on loopback: the server side of a
// generation stream (GenerationStreamReactor) and the client side
// (ProposerBackend), with a service that answers from inside its handler.
#include "lib/cluster/grpc_backends.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/base/retry_after.h"
#include "lib/cluster/generation_stream_reactor.h"
#include "lib/server/grpc_server.h"
#include "moa/v1/proposer.grpc.pb.h"
#include "tests/support/recording_observer.h"

namespace moa::cluster {
namespace {

using ::moa::testing::RecordingObserver;
using ::testing::HasSubstr;

class Reactor final : public GenerationStreamReactor<v1::GenerateResponse> {
 public:
  using GenerationStreamReactor::GenerationStreamReactor;
  void OnClientGone() override {}
};

// Answers every Generate inline: the text of the first message as three
// deltas, or, for "busy", RESOURCE_EXHAUSTED with a retry delay.
class InlineProposer final : public v1::ProposerService::WithRawCallbackMethod_Generate<
                                 v1::ProposerService::CallbackService> {
 public:
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* raw) override {
    auto parsed = server::ParseRawRequest<v1::GenerateRequest>(*raw);
    if (!parsed.ok()) return server::RefusedStream(parsed.status());
    const v1::GenerateRequest* request = &*parsed;
    auto* reactor = new Reactor(context);
    if (request->whole_text()) reactor->HoldTextUntilComplete();
    const std::string& text = request->messages(0).content();
    if (text == "busy") {
      absl::Status busy = absl::ResourceExhaustedError("busy");
      SetRetryAfter(busy, absl::Milliseconds(1500));
      MarkFromUpstream(busy);
      reactor->Complete(busy);
      return reactor;
    }
    for (size_t i = 0; i < text.size(); i += 2) reactor->PushDelta(text.substr(i, 2));
    v1::Completion done;
    done.set_model("m");
    done.set_finish_reason("stop");
    done.mutable_usage()->set_prompt_tokens(4);
    done.mutable_usage()->set_completion_tokens(3);
    done.mutable_duration()->set_seconds(2);
    done.set_attempts(2);
    reactor->Complete(done);
    return reactor;
  }
};

class GrpcBackendsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ =
        *server::GrpcServer::Start({.host = "127.0.0.1", .port = 0, .name = "test"}, {&service_});
    config_ = *config::ParseClusterConfig(
        absl::StrCat("models:\n  m: {endpoint: '127.0.0.1:", server_->port(), "'}\n",
                     "aggregator: {endpoint: 'x:1'}\n"
                     "pipelines:\n  p: {layers: [[m]], aggregator: m}\n"),
        "test");
    backend_ = std::make_unique<ProposerBackend>(config_);
  }

  std::shared_ptr<RecordingObserver> Call(const std::string& text, bool whole_text) {
    GenerationCall call;
    call.model = "m";
    call.messages = {{llm::Role::kUser, text}};
    call.params.max_tokens = 5;
    call.whole_text = whole_text;
    call.deadline = absl::Now() + absl::Seconds(10);
    auto observer = std::make_shared<RecordingObserver>();
    backend_->Start(call, observer);
    EXPECT_TRUE(observer->WaitDone(absl::Seconds(10)));
    return observer;
  }

  InlineProposer service_;
  std::unique_ptr<server::GrpcServer> server_;
  config::ClusterConfig config_;
  std::unique_ptr<ProposerBackend> backend_;
};

TEST_F(GrpcBackendsTest, AnInlineAnswerArrivesWholeAndConvertedToOurTypes) {
  auto observer = Call("hello world", /*whole_text=*/false);
  EXPECT_EQ(observer->text(), "hello world");
  auto result = observer->result();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->finish_reason, "stop");
  EXPECT_EQ(result->usage.prompt_tokens, 4);
  EXPECT_EQ(result->usage.completion_tokens, 3);
  EXPECT_EQ(result->duration, absl::Seconds(2));
  EXPECT_EQ(result->attempts, 2);
  EXPECT_EQ(observer->done_calls(), 1);
}

TEST_F(GrpcBackendsTest, WholeTextComesAsOneDeltaBeforeTheCompletion) {
  auto observer = Call("hello world", /*whole_text=*/true);
  // The first-byte mark (an empty delta), then the text whole.
  EXPECT_THAT(observer->deltas(), ::testing::ElementsAre("", "hello world"));
  EXPECT_TRUE(observer->result().ok());
}

TEST_F(GrpcBackendsTest, AnErrorKeepsItsCodeAndSendsItsRetryDelayAsTrailer) {
  auto observer = Call("busy", /*whole_text=*/false);
  EXPECT_EQ(observer->result().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GetRetryAfter(observer->result().status()), absl::Seconds(2)) << "whole seconds";
  EXPECT_TRUE(IsFromUpstream(observer->result().status()));
  // The trailer, read with a plain stub.
  auto stub = v1::ProposerService::NewStub(backend_->ChannelFor("m"));
  grpc::ClientContext context;
  v1::GenerateRequest request;
  auto* m = request.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content("busy");
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto trailer = context.GetServerTrailingMetadata().find("retry-after");
  ASSERT_NE(trailer, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(trailer->second.data(), trailer->second.size()), "2");
}

TEST_F(GrpcBackendsTest, AModelOutsideTheConfigIsNotFoundAtOnce) {
  GenerationCall call;
  call.model = "ghost";
  call.messages = {{llm::Role::kUser, "x"}};
  auto observer = std::make_shared<RecordingObserver>();
  backend_->Start(call, observer);
  ASSERT_TRUE(observer->WaitDone(absl::Seconds(1)));
  EXPECT_EQ(observer->result().status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(observer->result().status().message(), HasSubstr("ghost"));
}

}  // namespace
}  // namespace moa::cluster
