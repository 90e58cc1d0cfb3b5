// Staircase streaming: the chunk schedule, and MoaCall's steps against fake
// backends on the injected clock.
#include "services/orchestrator/engine/staircase.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/orchestrator/engine/moa_call.h"
#include "tests/fakes/fake_generation_backend.h"
#include "tests/fakes/recording_moa_call_sink.h"

namespace moa::orchestrator {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::moa::testing::RecordingSink;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(StaircaseScheduleTest, ChunksGrowAndEndWhereTheirSumsEnd) {
  StaircaseSchedule s{16, 2.0, 6};
  EXPECT_EQ(s.ChunkTokens(1), 16u);
  EXPECT_EQ(s.ChunkTokens(2), 32u);
  EXPECT_EQ(s.ChunkTokens(3), 64u);
  EXPECT_EQ(s.ChunkEndBytes(1), 16u * kBytesPerToken);
  EXPECT_EQ(s.ChunkEndBytes(3), (16u + 32u + 64u) * kBytesPerToken);
  StaircaseSchedule flat{10, 1.0, 4};
  EXPECT_EQ(flat.ChunkTokens(4), 10u);
  StaircaseSchedule steep{4096, 8.0, 32};
  EXPECT_EQ(steep.ChunkTokens(32), 1000000u) << "capped, no overflow";
}

TEST(StaircaseScheduleTest, ACutNeverSplitsAUtf8Character) {
  EXPECT_EQ(Utf8Prefix("abc", 10), "abc");
  EXPECT_EQ(Utf8Prefix("abcdef", 3), "abc");
  EXPECT_EQ(Utf8Prefix("ab\xC3\xA9z", 3), "ab") << "é is two bytes";
  EXPECT_EQ(Utf8Prefix("ab\xC3\xA9z", 4), "ab\xC3\xA9");
  EXPECT_EQ(Utf8Prefix("\xF0\x9F\x98\x80!", 2), "");
}

TEST(StaircaseScheduleTest, TheRequestOverridesThePipelineFieldByField) {
  config::StreamingConfig pipeline;
  pipeline.mode = config::StreamingConfig::Mode::kStaircase;
  pipeline.first_chunk_tokens = 8;
  EXPECT_FALSE(ResolveStaircase({}, {}).has_value()) << "normal by default";
  auto s = ResolveStaircase(pipeline, {});
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->first_chunk_tokens, 8);
  EXPECT_EQ(s->growth, kDefaultChunkGrowth);
  config::StreamingConfig over;
  over.growth = 3;
  EXPECT_EQ(ResolveStaircase(pipeline, over)->growth, 3);
  over.mode = config::StreamingConfig::Mode::kNormal;
  EXPECT_FALSE(ResolveStaircase(pipeline, over).has_value()) << "a request may turn it off";
}

TEST(StaircaseScheduleTest, ARequestsOutOfRangeValuesNameTheirField) {
  v1::StreamingOptions o;
  o.set_first_chunk_tokens(0);
  EXPECT_THAT(std::string(StreamingFromProto(o).status().message()),
              HasSubstr("streaming.first_chunk_tokens"));
  o.Clear();
  o.set_growth(std::numeric_limits<double>::quiet_NaN());
  EXPECT_THAT(std::string(StreamingFromProto(o).status().message()), HasSubstr("growth"));
  o.Clear();
  o.set_max_steps(1);
  EXPECT_THAT(std::string(StreamingFromProto(o).status().message()), HasSubstr("max_steps"));
  o.Clear();
  o.set_mode(static_cast<v1::StreamingOptions::Mode>(7));
  EXPECT_EQ(StreamingFromProto(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.Clear();
  o.set_mode(v1::StreamingOptions::STAIRCASE);
  o.set_max_steps(3);
  auto c = StreamingFromProto(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->mode, config::StreamingConfig::Mode::kStaircase);
  EXPECT_EQ(c->max_steps, 3);
}

class StaircaseCallTest : public ::testing::Test {
 protected:
  StaircaseCallTest() : metrics_(registry_, {}) {}

  // Proposers a and b (held: the test streams them); chunks of 2 tokens
  // (8 bytes), doubling; 2 of 2 needed.
  std::shared_ptr<MoaCall> Start(int max_steps = 6) { return StartOn(aggregator_, max_steps); }
  std::shared_ptr<MoaCall> StartOn(FakeGenerationBackend& aggregator, int max_steps = 6) {
    MoaCall::Options o;
    o.pipeline.name = "p";
    o.pipeline.layers = {{"a", "b"}};
    o.pipeline.aggregator = "agg";
    o.conversation = {{llm::Role::kUser, "question"}};
    o.staircase = StaircaseSchedule{2, 2.0, max_steps};
    return MoaCall::Start(std::move(o), {{&proposers_, &aggregator}, &metrics_, &clock_}, sink_);
  }

  // Each step writes "S<n> "; a step given max_tokens is cut at it
  // ("length"), the last one ends itself.
  static FakeGenerationBackend::Reply Step(const cluster::GenerationCall& c) {
    llm::Completion done = FakeGenerationBackend::Ok(c.model, 10, 2);
    done.finish_reason = c.params.max_tokens ? "length" : "stop";
    int n = 1;
    for (char ch : c.continue_from) n += ch == ' ';
    return {{absl::StrCat("S", n, " ")}, done};
  }

  std::vector<v1::AnswerStep> Steps() {
    std::vector<v1::AnswerStep> out;
    for (const auto& e : sink_->events()) {
      if (e.has_answer_step()) out.push_back(e.answer_step());
    }
    return out;
  }
  std::string Answer() {
    std::string out;
    for (const auto& e : sink_->events()) {
      if (e.has_answer_delta()) out += e.answer_delta();
    }
    return out;
  }

  FakeClock clock_;
  prometheus::Registry registry_;
  telemetry::OrchestratorMetrics metrics_;
  std::shared_ptr<RecordingSink> sink_ = std::make_shared<RecordingSink>();
  FakeGenerationBackend proposers_{[](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  }};
  FakeGenerationBackend aggregator_{Step};
};

TEST_F(StaircaseCallTest, StepsSeeLongerPrefixesAndContinueTheAnswerWithoutGapsOrRepeats) {
  Start();
  EXPECT_FALSE(proposers_.calls()[0].whole_text) << "the last layer streams its text";
  proposers_.Stream(0, {"aaaaaaaaaa"});
  EXPECT_TRUE(aggregator_.calls().empty()) << "b has not reached the first chunk";
  proposers_.Stream(1, {"bbbbbbbbbb"});
  ASSERT_EQ(aggregator_.calls().size(), 1u);
  const cluster::GenerationCall first = aggregator_.calls()[0];
  ASSERT_EQ(first.references.size(), 2u);
  EXPECT_EQ(first.references[0].text, "aaaaaaaa") << "the first chunk only: 2 tokens, 8 bytes";
  EXPECT_TRUE(first.references[0].partial);
  EXPECT_EQ(first.continue_from, "");
  EXPECT_EQ(first.params.max_tokens, 2);
  // Chunk 2 ends at (2 + 4) tokens = 24 bytes.
  proposers_.Stream(0, {"aaaaaaaaaaaaaaaaaaaa"});
  proposers_.Stream(1, {"bbbbbbbbbbbbb"});
  EXPECT_EQ(aggregator_.calls().size(), 1u) << "b has 23 bytes";
  proposers_.Stream(1, {"bbbbbbb"});
  ASSERT_EQ(aggregator_.calls().size(), 2u);
  const cluster::GenerationCall second = aggregator_.calls()[1];
  EXPECT_EQ(second.references[0].text, std::string(24, 'a'));
  EXPECT_EQ(second.references[1].text, std::string(24, 'b'));
  EXPECT_EQ(second.continue_from, "S1 ") << "the answer so far, continued";
  EXPECT_EQ(second.params.max_tokens, 4);
  proposers_.Answer(0, {"!"}, FakeGenerationBackend::Ok("a"));
  EXPECT_EQ(aggregator_.calls().size(), 2u) << "b is neither done nor at chunk 3";
  proposers_.Answer(1, {"?"}, FakeGenerationBackend::Ok("b"));
  ASSERT_EQ(aggregator_.calls().size(), 3u);
  const cluster::GenerationCall last = aggregator_.calls()[2];
  EXPECT_EQ(last.references[0].text, std::string(30, 'a') + "!") << "whole";
  EXPECT_FALSE(last.references[0].partial);
  EXPECT_EQ(last.references[1].text, std::string(30, 'b') + "?");
  EXPECT_EQ(last.continue_from, "S1 S2 ");
  EXPECT_FALSE(last.params.max_tokens.has_value()) << "the last step finishes the answer";

  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  EXPECT_EQ(Answer(), "S1 S2 S3 ");
  auto steps = Steps();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].step(), 1);
  EXPECT_FALSE(steps[0].last());
  EXPECT_EQ(steps[0].references(0).bytes(), 8);
  EXPECT_TRUE(steps[0].references(0).partial());
  EXPECT_EQ(steps[1].answer_bytes(), 3);
  EXPECT_TRUE(steps[2].last());
  const v1::Summary s = sink_->events().back().summary();
  EXPECT_EQ(s.answer_steps(), 3);
  EXPECT_EQ(s.answer().usage().prompt_tokens(), 30) << "every step's prompt counted";
  EXPECT_EQ(s.answer().usage().completion_tokens(), 6);
  EXPECT_EQ(s.finish_reason(), "stop");
}

TEST_F(StaircaseCallTest, AProposerFailingMidStreamIsLeftOutFromTheNextStepOn) {
  Start();
  proposers_.Stream(0, {"aaaaaaaaaa"});
  proposers_.Stream(1, {"bbbbbbbbbb"});
  ASSERT_EQ(aggregator_.calls().size(), 1u);
  EXPECT_EQ(aggregator_.calls()[0].references.size(), 2u);
  proposers_.Answer(1, {}, absl::UnavailableError("reset mid-stream"));
  proposers_.Stream(0, {std::string(20, 'a')});
  ASSERT_EQ(aggregator_.calls().size(), 2u) << "a alone is the quorum of what is left";
  ASSERT_EQ(aggregator_.calls()[1].references.size(), 1u);
  EXPECT_EQ(aggregator_.calls()[1].references[0].model, "a");
  proposers_.Answer(0, {}, FakeGenerationBackend::Ok("a"));
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  EXPECT_EQ(aggregator_.calls().back().references.size(), 1u);
  EXPECT_EQ(Answer(), "S1 S2 S3 ");
}

TEST_F(StaircaseCallTest, TheLastStepWaitsForEveryProposalAtMaxSteps) {
  Start(/*max_steps=*/2);
  proposers_.Stream(0, {std::string(100, 'a')});
  proposers_.Stream(1, {std::string(100, 'b')});
  EXPECT_EQ(aggregator_.calls().size(), 1u) << "step 2 is the last: it waits";
  proposers_.Answer(0, {}, FakeGenerationBackend::Ok("a"));
  proposers_.Answer(1, {}, FakeGenerationBackend::Ok("b"));
  ASSERT_EQ(aggregator_.calls().size(), 2u);
  EXPECT_EQ(aggregator_.calls()[1].references[0].text.size(), 100u);
  EXPECT_EQ(sink_->events().back().summary().answer_steps(), 2);
}

TEST_F(StaircaseCallTest, AStepTheModelEndsItselfEndsTheAnswerAndCutsTheProposals) {
  FakeGenerationBackend short_answer([](const cluster::GenerationCall& c) {
    return FakeGenerationBackend::Reply{{"Done."}, FakeGenerationBackend::Ok(c.model)};
  });
  StartOn(short_answer);
  proposers_.Stream(0, {"aaaaaaaaaa"});
  proposers_.Stream(1, {"bbbbbbbbbb"});
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  EXPECT_EQ(Answer(), "Done.");
  EXPECT_EQ(proposers_.cancelled(), 2) << "no proposal is needed any more";
  EXPECT_EQ(sink_->events().back().summary().answer_steps(), 1);
}

TEST_F(StaircaseCallTest, CancelClosesTheStepAndEveryProposal) {
  FakeGenerationBackend held([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  });
  auto call = StartOn(held);
  proposers_.Stream(0, {"aaaaaaaaaa"});
  proposers_.Stream(1, {"bbbbbbbbbb"});
  ASSERT_EQ(held.calls().size(), 1u);
  held.Stream(0, {"partial "});
  call->Cancel();
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(held.cancelled(), 1);
  EXPECT_EQ(proposers_.cancelled(), 2);
  EXPECT_EQ(sink_->finishes(), 1);
}

TEST_F(StaircaseCallTest, AFailedStepIsAskedAgainContinuingTheAnswer) {
  int calls = 0;
  FakeGenerationBackend flaky([&calls](const cluster::GenerationCall& c) {
    if (++calls == 2) {
      return FakeGenerationBackend::Reply{{"S2-half"}, absl::UnavailableError("reset")};
    }
    return Step(c);
  });
  StartOn(flaky);
  proposers_.Stream(0, {std::string(30, 'a')});
  proposers_.Stream(1, {std::string(30, 'b')});
  // Step 1 ran; step 2 failed after "S2-half" and was asked again.
  ASSERT_EQ(flaky.calls().size(), 3u);
  EXPECT_EQ(flaky.calls()[2].continue_from, "S1 S2-half");
  EXPECT_EQ(flaky.calls()[2].references[0].text, flaky.calls()[1].references[0].text)
      << "the same step again";
  proposers_.Answer(0, {}, FakeGenerationBackend::Ok("a"));
  proposers_.Answer(1, {}, FakeGenerationBackend::Ok("b"));
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  auto steps = Steps();
  EXPECT_EQ(steps.size(), 3u) << "a retry is not a step";
  EXPECT_THAT(Answer(), HasSubstr("S1 S2-half"));
}

}  // namespace
}  // namespace moa::orchestrator
