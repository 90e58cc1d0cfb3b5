// Hedged calls on the fake clock with a fake backend: who wins, what is
// cancelled, when no hedge starts, and the budget.
#include "lib/cluster/hedging_backend.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/fakes/fake_generation_backend.h"
#include "tests/support/recording_observer.h"

namespace moa::cluster {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::moa::testing::RecordingObserver;

FakeGenerationBackend::Reply Held(const GenerationCall&) {
  return {{}, absl::UnknownError("unused"), /*hold=*/true};
}

class HedgingBackendTest : public ::testing::Test {
 protected:
  std::shared_ptr<RecordingObserver> Call(HedgingBackend& backend) {
    GenerationCall call;
    call.model = "m";
    auto observer = std::make_shared<RecordingObserver>();
    backend.Start(call, observer);
    return observer;
  }

  FakeClock clock_;
  FakeGenerationBackend inner_{Held};
  std::vector<std::pair<std::string, bool>> hedges_;
  HedgingBackend::OnHedge record_ = [this](const std::string& m, bool won) {
    hedges_.emplace_back(m, won);
  };
};

TEST_F(HedgingBackendTest, AHedgeThatAnswersFirstWinsAndTheFirstCallIsCancelled) {
  HedgingBackend backend(&inner_, {.hedge_after = absl::Seconds(1)}, &clock_, record_);
  auto observer = Call(backend);
  clock_.Advance(absl::Milliseconds(999));
  EXPECT_EQ(inner_.calls().size(), 1u);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_EQ(inner_.calls().size(), 2u) << "the hedge";
  inner_.Answer(1, {"fast"}, FakeGenerationBackend::Ok());
  EXPECT_EQ(observer->text(), "fast");
  EXPECT_TRUE(observer->result().ok());
  EXPECT_EQ(inner_.cancelled(), 1) << "the first call lost and was cancelled";
  inner_.Answer(0, {"slow"}, FakeGenerationBackend::Ok());  // Too late: ignored.
  EXPECT_EQ(observer->text(), "fast");
  EXPECT_EQ(observer->done_calls(), 1);
  EXPECT_THAT(hedges_,
              ::testing::ElementsAre(std::make_pair("m", false), std::make_pair("m", true)));
}

TEST_F(HedgingBackendTest, TheFirstCallCanStillWinAfterTheHedgeStarted) {
  HedgingBackend backend(&inner_, {.hedge_after = absl::Seconds(1)}, &clock_);
  auto observer = Call(backend);
  clock_.Advance(absl::Seconds(1));
  ASSERT_EQ(inner_.calls().size(), 2u);
  inner_.Stream(0, {"first "});
  inner_.Answer(1, {"hedge"}, FakeGenerationBackend::Ok());  // Lost: ignored.
  inner_.Answer(0, {"call"}, FakeGenerationBackend::Ok());
  EXPECT_EQ(observer->text(), "first call");
  EXPECT_EQ(observer->done_calls(), 1);
}

TEST_F(HedgingBackendTest, ACallThatAnswersInTimeStartsNoHedge) {
  HedgingBackend backend(&inner_, {.hedge_after = absl::Seconds(1)}, &clock_);
  auto observer = Call(backend);
  inner_.Answer(0, {"quick"}, FakeGenerationBackend::Ok());
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(inner_.calls().size(), 1u);
  EXPECT_EQ(clock_.pending_timers(), 0u);
  EXPECT_EQ(observer->text(), "quick");
}

TEST_F(HedgingBackendTest, AFailureBeforeAnyTextWaitsForTheOtherAttempt) {
  HedgingBackend backend(&inner_, {.hedge_after = absl::Seconds(1)}, &clock_);
  auto observer = Call(backend);
  clock_.Advance(absl::Seconds(1));
  inner_.Answer(0, {}, absl::UnavailableError("replica gone"));
  EXPECT_EQ(observer->done_calls(), 0) << "the hedge still runs";
  inner_.Answer(1, {"saved"}, FakeGenerationBackend::Ok());
  EXPECT_TRUE(observer->result().ok());
  EXPECT_EQ(observer->text(), "saved");
  // Both failing: the call fails once.
  auto second = Call(backend);
  clock_.Advance(absl::Seconds(1));
  inner_.Answer(2, {}, absl::UnavailableError("a"));
  inner_.Answer(3, {}, absl::UnavailableError("b"));
  EXPECT_EQ(second->done_calls(), 1);
  EXPECT_EQ(second->result().status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(HedgingBackendTest, TheDelayIsTheModelsRecentPercentileOnceItHasSamples) {
  HedgingBackend backend(&inner_, {.percentile = 0.95, .min_samples = 20}, &clock_);
  EXPECT_EQ(backend.HedgeDelay("m"), absl::InfiniteDuration()) << "no samples: no hedge";
  for (int i = 0; i < 20; ++i) {
    auto o = Call(backend);
    clock_.Advance(absl::Milliseconds(100 + 10 * i));  // 100 .. 290 ms.
    inner_.Answer(static_cast<size_t>(i), {"x"}, FakeGenerationBackend::Ok());
  }
  EXPECT_EQ(backend.HedgeDelay("m"), absl::Milliseconds(290));
  EXPECT_EQ(backend.HedgeDelay("other"), absl::InfiniteDuration());
}

TEST_F(HedgingBackendTest, TheBudgetBoundsExtraCalls) {
  HedgingBackend backend(
      &inner_, {.hedge_after = absl::Seconds(1), .budget_ratio = 0.1, .budget_burst = 2}, &clock_);
  std::vector<std::shared_ptr<RecordingObserver>> calls;
  for (int i = 0; i < 5; ++i) calls.push_back(Call(backend));
  clock_.Advance(absl::Seconds(1));
  // Two tokens (the burst) for five slow calls: two hedges.
  EXPECT_EQ(inner_.calls().size(), 7u);
}

}  // namespace
}  // namespace moa::cluster
