// BreakingBackend in front of a fake backend: a model that keeps failing
// fails at once without a call; other models are untouched.
#include "lib/cluster/breaking_backend.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/base/retry_after.h"
#include "tests/fakes/fake_generation_backend.h"
#include "tests/support/recording_observer.h"

namespace moa::cluster {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::moa::testing::RecordingObserver;
using ::testing::HasSubstr;

TEST(BreakingBackendTest, AModelThatKeepsFailingFailsFastWithoutACall) {
  FakeGenerationBackend inner([](const GenerationCall& c) {
    if (c.model == "down") {
      absl::Status s = absl::UnavailableError("model down: HTTP 503");
      MarkFromUpstream(s);
      return FakeGenerationBackend::Reply{{}, s};
    }
    if (c.model == "restarting") {  // Our own replica, not the model.
      return FakeGenerationBackend::Reply{{}, absl::UnavailableError("Socket closed")};
    }
    return FakeGenerationBackend::Reply{{"ok"}, FakeGenerationBackend::Ok()};
  });
  FakeClock clock;
  std::vector<std::string> opened;
  BreakingBackend backend(&inner, {"down", "up", "restarting"},
                          {.min_calls = 3, .cooldown = absl::Seconds(5)}, &clock,
                          [&](const std::string& model, CircuitBreaker::State s) {
                            if (s == CircuitBreaker::State::kOpen) opened.push_back(model);
                          });
  auto call = [&](const std::string& model) {
    GenerationCall c;
    c.model = model;
    auto observer = std::make_shared<RecordingObserver>();
    backend.Start(c, observer);
    return observer->result().status();
  };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(call("down").code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(opened, ::testing::ElementsAre("down"));
  const size_t calls_before = inner.calls().size();
  absl::Status fast = call("down");
  EXPECT_EQ(fast.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(fast.message(), HasSubstr("model down is cooling down"));
  EXPECT_EQ(inner.calls().size(), calls_before) << "no call reached the backend";
  EXPECT_TRUE(call("up").ok());
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(call("restarting").ok());
  EXPECT_THAT(opened, ::testing::ElementsAre("down"))
      << "failures of the path to a model are not the model's";
  EXPECT_TRUE(call("elsewhere").ok()) << "a model without a breaker passes through";
  EXPECT_EQ(inner.calls().size(), calls_before + 12);
}

}  // namespace
}  // namespace moa::cluster
