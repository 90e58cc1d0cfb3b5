// Admission: slots shared by both servers, and the drain they share.
#include "services/orchestrator/engine/admission.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/fakes/fake_generation_backend.h"

namespace moa::orchestrator {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::testing::HasSubstr;

class CountingSink : public MoaCallSink {
 public:
  void OnEvent(v1::ChatEvent) override {}
  void OnFinish(absl::Status status) override {
    absl::MutexLock lock(&mu_);
    statuses_.push_back(status);
  }
  std::vector<absl::Status> statuses() {
    absl::MutexLock lock(&mu_);
    return statuses_;
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::Status> statuses_;
};

TEST(AdmissionTest, SlotsAreLimitedAndFreedAgain) {
  Admission admission(2);
  EXPECT_TRUE(admission.TryAcquire().ok());
  EXPECT_TRUE(admission.TryAcquire().ok());
  absl::Status full = admission.TryAcquire();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("limit of 2 concurrent requests"));
  admission.Release();
  EXPECT_TRUE(admission.TryAcquire().ok());
  EXPECT_EQ(admission.inflight(), 2);
}

TEST(AdmissionTest, OnceTheDrainBeginsEveryNewRequestIsUnavailable) {
  Admission admission(10);
  admission.BeginDrain();
  EXPECT_TRUE(admission.draining());
  absl::Status refused = admission.TryAcquire();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.message(), HasSubstr("shutting down"));
  EXPECT_EQ(admission.inflight(), 0);
}

TEST(AdmissionTest, FinishDrainCancelsWhatStillRunsAfterTheGrace) {
  prometheus::Registry registry;
  telemetry::OrchestratorMetrics metrics(registry, {});
  // Proposers that never answer on their own.
  FakeGenerationBackend proposers([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  });
  FakeGenerationBackend aggregator([](const cluster::GenerationCall& c) {
    return FakeGenerationBackend::Reply{{"x"}, FakeGenerationBackend::Ok(c.model)};
  });
  Admission admission(10);
  auto sink = std::make_shared<CountingSink>();
  std::vector<std::shared_ptr<MoaCall>> calls;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(admission.TryAcquire().ok());
    MoaCall::Options o;
    o.pipeline.name = "p";
    o.pipeline.layers = {{"a"}};
    o.pipeline.aggregator = "agg";
    o.conversation = {{llm::Role::kUser, "q"}};
    // The server releases its slot when the call finishes; do the same here.
    struct ReleasingSink : MoaCallSink {
      ReleasingSink(Admission* a, std::shared_ptr<CountingSink> s) : admission(a), inner(s) {}
      void OnEvent(v1::ChatEvent e) override { inner->OnEvent(std::move(e)); }
      void OnFinish(absl::Status s) override {
        inner->OnFinish(s);
        admission->Release();
      }
      Admission* admission;
      std::shared_ptr<CountingSink> inner;
    };
    auto call = MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics},
                               std::make_shared<ReleasingSink>(&admission, sink));
    admission.Track(call);
    calls.push_back(call);
  }
  calls.clear();  // Admission keeps only weak references.
  EXPECT_EQ(admission.FinishDrain(absl::Now() + absl::Milliseconds(50)), 3);
  ASSERT_EQ(sink->statuses().size(), 3u);
  // UNAVAILABLE (a 503 over HTTP), as for a request refused while draining:
  // the client may retry on another replica.
  for (const absl::Status& s : sink->statuses()) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("retry on another replica"));
  }
  EXPECT_EQ(admission.inflight(), 0);
}

}  // namespace
}  // namespace moa::orchestrator
