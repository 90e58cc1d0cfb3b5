// MoaCall's logic against fake backends: event order, references, usage,
// failures, cancellation.
#include "services/orchestrator/engine/moa_call.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <map>

#include "lib/base/retry_after.h"
#include "lib/wire/wire.h"
#include "tests/fakes/fake_generation_backend.h"
#include "tests/fakes/recording_moa_call_sink.h"

namespace moa::orchestrator {
namespace {

using ::moa::testing::FakeGenerationBackend;
using ::moa::testing::RecordingSink;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class MoaCallTest : public ::testing::Test {
 protected:
  MoaCallTest() : metrics_(registry_, {}) {}

  std::shared_ptr<MoaCall> Start(std::vector<std::vector<std::string>> layers,
                                 FakeGenerationBackend& proposers,
                                 FakeGenerationBackend& aggregator) {
    MoaCall::Options o;
    o.pipeline.name = "p";
    o.pipeline.layers = std::move(layers);
    o.pipeline.aggregator = "agg";
    o.conversation = {{llm::Role::kUser, "question"}};
    return MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_}, sink_);
  }

  // A pipeline "p" of `layers` then "agg", asked one question, with
  // `timeout` from now (none: no deadline).
  MoaCall::Options Asked(std::vector<std::vector<std::string>> layers,
                         absl::Duration timeout = absl::InfiniteDuration()) {
    MoaCall::Options o;
    o.pipeline.name = "p";
    o.pipeline.layers = std::move(layers);
    o.pipeline.aggregator = "agg";
    o.conversation = {{llm::Role::kUser, "question"}};
    if (timeout != absl::InfiniteDuration()) o.deadline = clock_.Now() + timeout;
    return o;
  }
  // Started with the shared retry budget and first-token bounds given. The
  // call is returned to be held, as a server holds its call until it ends
  // (timers hold none).
  std::shared_ptr<MoaCall> StartCall(MoaCall::Options o, FakeGenerationBackend& proposers,
                                     FakeGenerationBackend& aggregator,
                                     SharedRetryBudget* retries = nullptr,
                                     FirstTokenBounds* bounds = nullptr) {
    return MoaCall::Start(std::move(o),
                          {.backends = {&proposers, &aggregator},
                           .metrics = &metrics_,
                           .clock = &clock_,
                           .retries = retries,
                           .first_tokens = bounds},
                          sink_);
  }

  static FakeGenerationBackend::Reply Answer(const cluster::GenerationCall& c) {
    return {{c.model + "-part1 ", c.model + "-part2"}, FakeGenerationBackend::Ok(c.model)};
  }

  FakeClock clock_;
  prometheus::Registry registry_;
  telemetry::OrchestratorMetrics metrics_;
  std::shared_ptr<RecordingSink> sink_ = std::make_shared<RecordingSink>();
};

TEST_F(MoaCallTest, EventsComeInOrderAndTheSummarySumsUsagePerModel) {
  FakeGenerationBackend proposers(Answer), aggregator(Answer);
  Start({{"a", "b"}}, proposers, aggregator);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  std::vector<std::string> kinds;
  for (const auto& e : sink_->events()) {
    switch (e.event_case()) {
      case v1::ChatEvent::kAccepted:
        kinds.push_back("accepted");
        break;
      case v1::ChatEvent::kProposalStarted:
        kinds.push_back("started");
        break;
      case v1::ChatEvent::kProposalDone:
        kinds.push_back("done");
        break;
      case v1::ChatEvent::kAnswerDelta:
        kinds.push_back("answer");
        break;
      case v1::ChatEvent::kSummary:
        kinds.push_back("summary");
        break;
      default:
        kinds.push_back("other");
    }
  }
  EXPECT_THAT(kinds, ElementsAre("accepted", "started", "started", "done", "done", "answer",
                                 "answer", "summary"));
  const v1::Summary s = sink_->events().back().summary();
  ASSERT_EQ(s.usage_size(), 3);
  EXPECT_EQ(s.usage(0).model(), "a");
  EXPECT_EQ(s.usage(2).model(), "agg");
  EXPECT_EQ(s.usage(2).usage().completion_tokens(), 5);
  EXPECT_EQ(s.layer_durations_size(), 1);
  EXPECT_EQ(sink_->finishes(), 1);
}

TEST_F(MoaCallTest, LaterLayersGetThePreviousLayersAnswersOnly) {
  FakeGenerationBackend proposers(Answer), aggregator(Answer);
  Start({{"a", "b"}, {"c"}}, proposers, aggregator);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  auto agg_calls = aggregator.calls();
  ASSERT_EQ(agg_calls.size(), 2u);
  EXPECT_EQ(agg_calls[0].model, "c");
  ASSERT_EQ(agg_calls[0].references.size(), 2u);
  EXPECT_EQ(agg_calls[0].references[0].text, "a-part1 a-part2");
  EXPECT_EQ(agg_calls[0].references[1].text, "b-part1 b-part2");
  EXPECT_EQ(agg_calls[1].model, "agg");
  ASSERT_EQ(agg_calls[1].references.size(), 1u);
  EXPECT_EQ(agg_calls[1].references[0].model, "c");
  for (const auto& c : proposers.calls()) {
    EXPECT_TRUE(c.references.empty());
    EXPECT_TRUE(c.whole_text) << "unwatched proposals travel whole";
  }
  EXPECT_TRUE(agg_calls[0].whole_text);
  EXPECT_FALSE(agg_calls[1].whole_text) << "the answer streams";
}

TEST_F(MoaCallTest, FailedProposalsAreLeftOutOfTheReferences) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall& c) {
    if (c.model == "bad") return FakeGenerationBackend::Reply{{}, absl::UnavailableError("down")};
    return Answer(c);
  });
  FakeGenerationBackend aggregator(Answer);
  Start({{"a", "bad", "b"}}, proposers, aggregator);
  ASSERT_TRUE(sink_->status().ok());
  auto refs = aggregator.calls()[0].references;
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0].model, "a");
  EXPECT_EQ(refs[1].model, "b");
}

TEST_F(MoaCallTest, AllFailingIsUnavailableNamingEachModel) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall& c) {
    return FakeGenerationBackend::Reply{{}, absl::UnavailableError(c.model + " is down")};
  });
  FakeGenerationBackend aggregator(Answer);
  Start({{"a", "b"}}, proposers, aggregator);
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(sink_->status().message(), HasSubstr("a: UNAVAILABLE: a is down"));
  EXPECT_THAT(sink_->status().message(), HasSubstr("b: UNAVAILABLE: b is down"));
  EXPECT_TRUE(aggregator.calls().empty());
}

TEST_F(MoaCallTest, AllTimingOutIsDeadlineExceeded) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::DeadlineExceededError("too slow")};
  });
  FakeGenerationBackend aggregator(Answer);
  Start({{"a"}}, proposers, aggregator);
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(MoaCallTest, AFailedFinalAnswerFailsTheCallWithItsCode) {
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend aggregator([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::ResourceExhaustedError("busy")};
  });
  Start({{"a"}}, proposers, aggregator);
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(sink_->status().message(), HasSubstr("final answer by agg failed ("));
  EXPECT_THAT(sink_->status().message(), HasSubstr("): busy"));
}

TEST_F(MoaCallTest, CancelEndsEveryChildAndFinishesOnceWithCancelled) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall&) {
    FakeGenerationBackend::Reply r{{}, absl::UnknownError("unused")};
    r.hold = true;
    return r;
  });
  FakeGenerationBackend aggregator(Answer);
  auto call = Start({{"a", "b", "c"}}, proposers, aggregator);
  EXPECT_EQ(sink_->finishes(), 0);
  call->Cancel();
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(proposers.cancelled(), 3);
  call->Cancel();
  EXPECT_EQ(sink_->finishes(), 1);
  EXPECT_TRUE(aggregator.calls().empty());
}

TEST_F(MoaCallTest, LayerAnswerAndTotalTimesAreMeasuredOnTheInjectedClock) {
  auto held = [](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  };
  FakeGenerationBackend proposers(held), aggregator(held);
  Start({{"a", "b"}}, proposers, aggregator);
  clock_.Advance(absl::Seconds(2));
  proposers.Answer(0, {"A"}, FakeGenerationBackend::Ok());
  clock_.Advance(absl::Seconds(1));
  proposers.Answer(1, {"B"}, FakeGenerationBackend::Ok());  // Layer 1 took 3 s.
  ASSERT_EQ(aggregator.calls().size(), 1u);
  clock_.Advance(absl::Milliseconds(500));
  aggregator.Stream(0, {"first "});  // The answer's first token at 3.5 s.
  clock_.Advance(absl::Seconds(1));
  aggregator.Answer(0, {"answer"}, FakeGenerationBackend::Ok());  // Done at 4.5 s.
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  const v1::Summary s = sink_->events().back().summary();
  ASSERT_EQ(s.layer_durations_size(), 1);
  EXPECT_EQ(wire::FromProto(s.layer_durations(0)), absl::Seconds(3));
  EXPECT_EQ(wire::FromProto(s.time_to_first_token()), absl::Milliseconds(3500));
  EXPECT_EQ(wire::FromProto(s.total()), absl::Milliseconds(4500));
}

TEST_F(MoaCallTest, ALayerThatFailsPastTheDeadlineIsDeadlineExceeded) {
  auto held = [](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  };
  FakeGenerationBackend proposers(held), aggregator(Answer);
  MoaCall::Options o;
  o.pipeline.name = "p";
  o.pipeline.layers = {{"a", "b"}};
  o.pipeline.aggregator = "agg";
  o.conversation = {{llm::Role::kUser, "question"}};
  o.deadline = clock_.Now() + absl::Seconds(5);
  MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_}, sink_);
  clock_.Advance(absl::Seconds(6));
  proposers.Answer(0, {}, absl::UnavailableError("connection reset"));
  proposers.Answer(1, {}, absl::UnavailableError("connection reset"));
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kDeadlineExceeded)
      << "the request's time ran out, whatever the last error said";
}

// ---- The final answer: another replica, then the fallbacks, while no
// byte of it reached the client.

TEST_F(MoaCallTest, AFinalAnswerThatFailsBeforeItsFirstByteIsAskedAgainThenOfTheFallbacks) {
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend aggregator([](const cluster::GenerationCall& c) {
    if (c.model == "agg") {
      return FakeGenerationBackend::Reply{{}, absl::UnavailableError("Socket closed")};
    }
    return FakeGenerationBackend::Reply{{c.model + " answers"}, FakeGenerationBackend::Ok()};
  });
  MoaCall::Options o;
  o.pipeline.name = "p";
  o.pipeline.layers = {{"a"}};
  o.pipeline.aggregator = "agg";
  o.pipeline.aggregator_fallbacks = {"fb"};
  o.conversation = {{llm::Role::kUser, "question"}};
  MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_}, sink_);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  std::vector<std::string> asked;
  for (const auto& c : aggregator.calls()) asked.push_back(c.model);
  EXPECT_THAT(asked, ElementsAre("agg", "agg", "agg", "fb"));
  for (const auto& c : aggregator.calls()) EXPECT_EQ(c.references.size(), 1u);
  int failed_final = 0;
  std::string answer;
  for (const auto& e : sink_->events()) {
    if (e.has_proposal_failed() && e.proposal_failed().ref().layer() == 2) ++failed_final;
    if (e.has_answer_delta()) answer += e.answer_delta();
  }
  EXPECT_EQ(failed_final, 3) << "each failed attempt is reported";
  EXPECT_EQ(answer, "fb answers");
  EXPECT_EQ(sink_->events().back().summary().answer().model(), "fb");
}

// Past its list (three tries of the aggregator, then the fallbacks), the
// final answer is asked again with backoff while the deadline leaves time:
// a failure in a third of a second no longer ends a request that has
// minutes left.
TEST_F(MoaCallTest, AFinalAnswerPastItsListIsAskedAgainWithBackoffWhileTheDeadlineAllows) {
  FakeGenerationBackend proposers(Answer);
  int failures_left = 5;
  FakeGenerationBackend aggregator([&failures_left](const cluster::GenerationCall& c) {
    if (failures_left-- > 0) {
      return FakeGenerationBackend::Reply{{}, absl::UnavailableError("HTTP 500: flaky")};
    }
    return FakeGenerationBackend::Reply{{"finally"}, FakeGenerationBackend::Ok(c.model)};
  });
  SharedRetryBudget retries;
  auto call = StartCall(Asked({{"a"}}, absl::Seconds(30)), proposers, aggregator, &retries);
  // The three listed tries fail at once; the fourth waits for its backoff.
  EXPECT_EQ(aggregator.calls().size(), 3u);
  EXPECT_FALSE(sink_->finished());
  clock_.Advance(absl::Milliseconds(250));  // At most 250 ms (x jitter).
  EXPECT_EQ(aggregator.calls().size(), 4u);
  clock_.Advance(absl::Milliseconds(500));  // The next at most 500 ms.
  EXPECT_EQ(aggregator.calls().size(), 5u);
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(sink_->finished());
  EXPECT_TRUE(sink_->status().ok()) << sink_->status();
  EXPECT_EQ(aggregator.calls().size(), 6u);
  std::string notes;
  for (const auto& e : sink_->events()) {
    if (e.has_proposal_failed()) notes += e.proposal_failed().status().message() + "\n";
  }
  EXPECT_THAT(notes, HasSubstr("; asking agg again in "));
}

// Without time left for an answer after the backoff, or once the shared
// budget is spent, the request fails as before, naming its attempts.
TEST_F(MoaCallTest, AFinalAnswerIsNotAskedAgainPastTheDeadlineOrTheSharedBudget) {
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend aggregator([](const cluster::GenerationCall&) {
    // The model's own failure, as its proposer marks it: retries spend the
    // budget (a refusal of ours, such as an open breaker, would not).
    absl::Status down = absl::UnavailableError("down");
    MarkFromUpstream(down);
    return FakeGenerationBackend::Reply{{}, down};
  });
  SharedRetryBudget retries(/*tokens=*/2);  // One retry, then under half.
  std::shared_ptr<MoaCall> call;
  auto start = [&](absl::Duration timeout) {
    sink_ = std::make_shared<RecordingSink>();
    call = StartCall(Asked({{"a"}}, timeout), proposers, aggregator, &retries);
  };
  start(absl::Milliseconds(900));  // Backoff + 1 s does not fit.
  ASSERT_TRUE(sink_->finished());
  EXPECT_THAT(sink_->status().message(), HasSubstr("(attempt 3)"));
  start(absl::Minutes(1));
  clock_.Advance(absl::Seconds(1));  // One retry from the budget...
  ASSERT_TRUE(sink_->finished());    // ...and no second: the budget is under half.
  EXPECT_THAT(sink_->status().message(), HasSubstr("(attempt 4)"));
}

// Every model of the layer failed once: the failed ones are asked again
// after a backoff, and the request answers.
TEST_F(MoaCallTest, ALayerWhoseEveryModelFailedIsAskedAgainOnce) {
  std::map<std::string, int> asked;
  FakeGenerationBackend proposers([&asked](const cluster::GenerationCall& c) {
    if (asked[c.model]++ == 0) {
      return FakeGenerationBackend::Reply{{}, absl::ResourceExhaustedError("HTTP 429")};
    }
    return Answer(c);
  });
  FakeGenerationBackend aggregator(Answer);
  SharedRetryBudget retries;
  auto call = StartCall(Asked({{"a", "b"}}, absl::Seconds(30)), proposers, aggregator, &retries);
  EXPECT_FALSE(sink_->finished());
  clock_.Advance(absl::Milliseconds(250));
  ASSERT_TRUE(sink_->finished());
  EXPECT_TRUE(sink_->status().ok()) << sink_->status();
  EXPECT_EQ(asked["a"], 2);
  EXPECT_EQ(asked["b"], 2);
  ASSERT_EQ(aggregator.calls().size(), 1u);
  EXPECT_EQ(aggregator.calls()[0].references.size(), 2u);
}

// A final answer whose call sends nothing within its model's bound is cut
// and asked again, whatever the hedge budget; the breaker counts it.
TEST_F(MoaCallTest, AStuckFinalAnswerIsCutAndAskedAgain) {
  FakeGenerationBackend proposers(Answer);
  int calls = 0;
  FakeGenerationBackend aggregator([&calls](const cluster::GenerationCall& c) {
    if (calls++ == 0) return FakeGenerationBackend::Reply{{}, absl::UnknownError(""), true};
    return FakeGenerationBackend::Reply{{"at last"}, FakeGenerationBackend::Ok(c.model)};
  });
  SharedRetryBudget retries;
  FirstTokenBounds bounds;
  auto call =
      StartCall(Asked({{"a"}}, absl::Seconds(60)), proposers, aggregator, &retries, &bounds);
  // a's first token (0 s on the fake clock) is on record: the floor, 2 s.
  clock_.Advance(absl::Milliseconds(1999));
  EXPECT_EQ(aggregator.calls().size(), 1u);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(sink_->finished());
  EXPECT_TRUE(sink_->status().ok()) << sink_->status();
  EXPECT_EQ(aggregator.calls().size(), 2u);
  // The stuck call is cancelled (an answer given inside Start counts too:
  // cancelling an ended call is a no-op).
  EXPECT_GE(aggregator.cancelled(), 1);
  EXPECT_THAT(aggregator.stuck(), ElementsAre("agg"));
  std::string failed;
  for (const auto& e : sink_->events()) {
    if (e.has_proposal_failed()) failed += e.proposal_failed().status().message();
  }
  EXPECT_THAT(failed, HasSubstr("no first token after 2s; cut as stuck"));
}

TEST_F(MoaCallTest, AnAnswerCutMidStreamIsContinuedNotRepeated) {
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend aggregator([](const cluster::GenerationCall& c) {
    if (c.continue_from.empty()) {
      return FakeGenerationBackend::Reply{{"half an ", "ans"}, absl::UnavailableError("reset")};
    }
    return FakeGenerationBackend::Reply{{"wer."}, FakeGenerationBackend::Ok()};
  });
  Start({{"a"}}, proposers, aggregator);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  ASSERT_EQ(aggregator.calls().size(), 2u);
  EXPECT_EQ(aggregator.calls()[1].continue_from, "half an ans");
  EXPECT_EQ(aggregator.calls()[1].references.size(), 1u) << "the same synthesis, continued";
  std::string answer, resumed;
  for (const auto& e : sink_->events()) {
    if (e.has_answer_delta()) answer += e.answer_delta();
    if (e.has_proposal_failed()) resumed = e.proposal_failed().status().message();
  }
  EXPECT_EQ(answer, "half an answer.") << "every byte once";
  EXPECT_THAT(resumed, HasSubstr("resuming the answer after its first 11 bytes"));
}

// response_format: the final answer is held until whole and checked; one
// that fails is asked for again once, with the answer and what is wrong with
// it as a turn of the conversation; the client sees only the checked answer.
TEST_F(MoaCallTest, AStructuredAnswerIsHeldCheckedAndAskedAgainOnceWithWhatIsWrong) {
  v1::ResponseFormat proto;
  proto.set_type(v1::ResponseFormat::JSON_SCHEMA);
  proto.set_schema_json(R"({"type": "object", "required": ["city"],
      "properties": {"city": {"type": "string"}}})");
  auto format = AnswerFormat::FromProto(proto);
  ASSERT_TRUE(format.ok()) << format.status();
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend aggregator([](const cluster::GenerationCall& c) {
    if (c.messages.back().role != llm::Role::kUser ||
        c.messages.back().content.find("not accepted") == std::string::npos) {
      return FakeGenerationBackend::Reply{{"```json\n{\"town\": ", "\"Oslo\"}\n```"},
                                          FakeGenerationBackend::Ok()};
    }
    return FakeGenerationBackend::Reply{{"```json\n{\"city\": ", "\"Oslo\"}\n```"},
                                        FakeGenerationBackend::Ok()};
  });
  MoaCall::Options o = Asked({{"a"}});
  o.answer_format = *format;
  auto call = StartCall(std::move(o), proposers, aggregator);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  ASSERT_EQ(aggregator.calls().size(), 2u);
  const auto& again = aggregator.calls()[1].messages;
  ASSERT_GE(again.size(), 3u);
  EXPECT_EQ(again[again.size() - 2].role, llm::Role::kAssistant);
  EXPECT_THAT(again[again.size() - 2].content, HasSubstr("town"));
  EXPECT_THAT(again.back().content, HasSubstr("required property 'city'"));
  EXPECT_TRUE(aggregator.calls()[1].continue_from.empty()) << "asked anew, not continued";
  std::vector<std::string> deltas;
  for (const auto& e : sink_->events()) {
    if (e.has_answer_delta()) deltas.push_back(e.answer_delta());
  }
  EXPECT_THAT(deltas, ElementsAre(R"({"city": "Oslo"})")) << "once, whole, without the fence";
}

TEST_F(MoaCallTest, AStructuredAnswerThatFailsTwiceEndsInternalNamingResponseFormat) {
  v1::ResponseFormat proto;
  proto.set_type(v1::ResponseFormat::JSON_OBJECT);
  auto format = AnswerFormat::FromProto(proto);
  ASSERT_TRUE(format.ok());
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend aggregator([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{"Sure! Here is the JSON."}, FakeGenerationBackend::Ok()};
  });
  MoaCall::Options o = Asked({{"a"}});
  o.answer_format = *format;
  auto call = StartCall(std::move(o), proposers, aggregator);
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(sink_->status().message()),
              HasSubstr("response_format: the final answer by agg did not conform after it was "
                        "asked again: the answer is not JSON"));
  EXPECT_EQ(aggregator.calls().size(), 2u);
  for (const auto& e : sink_->events()) EXPECT_FALSE(e.has_answer_delta()) << "nothing unchecked";
}

// tools: the final step alone gets them; an answer of tool calls is one
// answer_tool_calls event before the summary (finish_reason "tool_calls"),
// not checked against response_format; a first byte is a tool call's too.
TEST_F(MoaCallTest, TheFinalStepGetsTheToolsAndItsToolCallsAreTheAnswer) {
  v1::ResponseFormat proto;
  proto.set_type(v1::ResponseFormat::JSON_OBJECT);
  auto format = AnswerFormat::FromProto(proto);
  ASSERT_TRUE(format.ok());
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend aggregator([](const cluster::GenerationCall&) {
    llm::Completion c = FakeGenerationBackend::Ok();
    c.finish_reason = "tool_calls";
    c.tool_calls = {{"call_1", "get_weather", R"({"city":"Oslo"})"}};
    return FakeGenerationBackend::Reply{{"", "Let me look."}, c};
  });
  MoaCall::Options o = Asked({{"a", "b"}});
  o.answer_format = *format;
  o.tools.tools = {{"get_weather", "", R"({"type":"object"})", false}};
  auto call = StartCall(std::move(o), proposers, aggregator);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  for (const auto& p : proposers.calls()) EXPECT_TRUE(p.tools.empty()) << p.model;
  ASSERT_EQ(aggregator.calls().size(), 1u) << "tool calls are not asked again as JSON";
  ASSERT_EQ(aggregator.calls()[0].tools.tools.size(), 1u);
  std::vector<std::string> kinds;
  for (const auto& e : sink_->events()) {
    if (e.has_answer_delta()) kinds.push_back("text:" + e.answer_delta());
    if (e.has_answer_tool_calls()) {
      ASSERT_EQ(e.answer_tool_calls().calls_size(), 1);
      EXPECT_EQ(e.answer_tool_calls().calls(0).name(), "get_weather");
      EXPECT_EQ(e.answer_tool_calls().calls(0).arguments(), R"({"city":"Oslo"})");
      kinds.push_back("calls");
    }
    if (e.has_summary()) {
      kinds.push_back("summary:" + e.summary().finish_reason());
      EXPECT_EQ(e.summary().answer().tool_calls_size(), 0) << "said once, in their own event";
    }
  }
  EXPECT_THAT(kinds, ElementsAre("text:Let me look.", "calls", "summary:tool_calls"));
}

// A layer model configured with `capabilities: [layer_tools]` gets the
// client's tools in its layer too; its calls join its proposal in words.
TEST_F(MoaCallTest, ALayerModelWithLayerToolsGetsThemAndItsCallsJoinItsText) {
  auto cfg = config::ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1', capabilities: [layer_tools]}\n  b: {endpoint: 'x:3'}\n"
      "  agg: {endpoint: 'x:2'}\naggregator: {endpoint: 'x:9'}\n"
      "pipelines:\n  p: {layers: [[a, b]], aggregator: agg}\n",
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  FakeGenerationBackend proposers([](const cluster::GenerationCall& c) {
    if (c.tools.empty()) return Answer(c);
    llm::Completion done = FakeGenerationBackend::Ok();
    done.tool_calls = {{"c1", "get_weather", R"({"city":"Oslo"})"}};
    return FakeGenerationBackend::Reply{{""}, done};
  });
  FakeGenerationBackend aggregator(Answer);
  MoaCall::Options o = Asked({{"a", "b"}});
  o.tools.tools = {{"get_weather", "", "", false}};
  MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_, &*cfg}, sink_);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  for (const auto& c : proposers.calls()) EXPECT_EQ(c.tools.empty(), c.model == "b") << c.model;
  ASSERT_EQ(aggregator.calls().size(), 1u);
  std::vector<std::string> refs;
  const auto calls = aggregator.calls();  // Held: the loop reads into it.
  for (const auto& r : calls[0].references) refs.push_back(r.text);
  EXPECT_THAT(
      refs, ::testing::Contains(R"([would call tool get_weather with arguments {"city":"Oslo"}])"));

  EXPECT_THAT(std::string(config::ParseClusterConfig(
                              "models:\n  a: {endpoint: 'x:1', capabilities: [telepathy]}\n"
                              "aggregator: {endpoint: 'x:9'}\n",
                              "test.yaml")
                              .status()
                              .message()),
              HasSubstr("models.a.capabilities[0]: 'telepathy' is not a capability"));
}

// Images go to the models that read them; the others get the text, and the
// accepted event names them.
TEST_F(MoaCallTest, ImagesGoOnlyToModelsWithVisionAndTheOthersAreNamed) {
  auto cfg = config::ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1', capabilities: [vision]}\n  b: {endpoint: 'x:3'}\n"
      "  agg: {endpoint: 'x:2', capabilities: [vision]}\naggregator: {endpoint: 'x:9'}\n"
      "pipelines:\n  p: {layers: [[a, b]], aggregator: agg}\n",
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend aggregator(Answer);
  MoaCall::Options o = Asked({{"a", "b"}});
  o.conversation[0].images = {{"https://example.com/cat.jpg", ""}};
  MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_, &*cfg}, sink_);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  for (const auto& c : proposers.calls()) {
    EXPECT_EQ(c.messages[0].images.size(), c.model == "a" ? 1u : 0u) << c.model;
    EXPECT_EQ(c.messages[0].content, "question") << "the text goes to every model";
  }
  EXPECT_EQ(aggregator.calls()[0].messages.back().images.size(), 1u);
  ASSERT_TRUE(sink_->events()[0].has_accepted());
  EXPECT_THAT(sink_->events()[0].accepted().text_only(), ElementsAre("b"));
}

// Resumes each write up to the answer cap; the answer as a whole stays
// within it, cut on a UTF-8 boundary, and ends with "length".
TEST_F(MoaCallTest, AResumedAnswerStopsAtTheAnswerCap) {
  auto cfg = config::ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\n  agg: {endpoint: 'x:2'}\n"
      "aggregator: {endpoint: 'x:9'}\npipelines:\n  p: {layers: [[a]], aggregator: agg}\n"
      "limits: {max_answer_bytes: 1024}\n",
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend aggregator([](const cluster::GenerationCall& c) {
    if (c.continue_from.empty()) {
      return FakeGenerationBackend::Reply{{std::string(1018, 'x')},
                                          absl::UnavailableError("reset")};
    }
    return FakeGenerationBackend::Reply{{"abc\xc3\xa9\xc3\xa9", " more"},
                                        FakeGenerationBackend::Ok()};
  });
  MoaCall::Options o;
  o.pipeline.name = "p";
  o.pipeline.layers = {{"a"}};
  o.pipeline.aggregator = "agg";
  o.conversation = {{llm::Role::kUser, "question"}};
  MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_, &*cfg}, sink_);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  std::string answer;
  for (const auto& e : sink_->events()) {
    if (e.has_answer_delta()) answer += e.answer_delta();
  }
  EXPECT_EQ(answer, std::string(1018, 'x') + "abc\xc3\xa9")
      << "1,024 bytes would split the second character";
  EXPECT_EQ(sink_->events().back().summary().finish_reason(), "length");
  EXPECT_EQ(aggregator.calls().size(), 2u);
}

TEST_F(MoaCallTest, ABadRequestIsNotAskedAgain) {
  FakeGenerationBackend proposers(Answer);
  FakeGenerationBackend refused([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::InvalidArgumentError("context too long")};
  });
  Start({{"a"}}, proposers, refused);
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.calls().size(), 1u);
}

TEST_F(MoaCallTest, ALayerModelThatFailsBeforeAnyTextIsReplacedByItsFallbackInItsSlot) {
  FakeGenerationBackend proposers([](const cluster::GenerationCall& c) {
    if (c.model == "down") {
      return FakeGenerationBackend::Reply{{}, absl::UnavailableError("connection refused")};
    }
    return Answer(c);
  });
  FakeGenerationBackend aggregator(Answer);
  MoaCall::Options o;
  o.pipeline.name = "p";
  o.pipeline.layers = {{"a", "down"}};
  o.pipeline.aggregator = "agg";
  o.pipeline.fallbacks = {{"down", {"spare"}}};
  o.conversation = {{llm::Role::kUser, "question"}};
  MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_}, sink_);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  std::vector<std::string> asked;
  for (const auto& c : proposers.calls()) asked.push_back(c.model);
  EXPECT_THAT(asked, ElementsAre("a", "down", "spare"));
  auto refs = aggregator.calls()[0].references;
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[1].model, "spare") << "the fallback's answer, in the failed model's place";
  std::string failure;
  for (const auto& e : sink_->events()) {
    if (e.has_proposal_failed()) failure = e.proposal_failed().status().message();
  }
  EXPECT_THAT(failure, HasSubstr("asking its fallback spare"));
}

TEST_F(MoaCallTest, SamplesOfOneModelGetDistinctSeedsAndNamesThatTellThemApart) {
  FakeGenerationBackend proposers(Answer), aggregator(Answer);
  MoaCall::Options o;
  o.pipeline.name = "self";
  o.pipeline.layers = {{"x", "x", "x"}};
  o.pipeline.samples = {{{1, std::nullopt}, {2, 0.9}, {3, std::nullopt}}};
  o.pipeline.aggregator = "agg";
  o.pipeline.params.seed = 40;
  o.policy.min_proposals = 3;  // The fake answers at once: no grace for a third.
  o.conversation = {{llm::Role::kUser, "question"}};
  MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_}, sink_);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  std::vector<int64_t> seeds;
  for (const auto& c : proposers.calls()) {
    EXPECT_EQ(c.model, "x") << "every sample asks model x";
    seeds.push_back(c.params.seed.value_or(-1));
  }
  EXPECT_THAT(seeds, ElementsAre(40, 41, 42));
  EXPECT_EQ(proposers.calls()[1].params.temperature, 0.9);
  std::vector<std::string> refs;
  const auto agg_calls = aggregator.calls();
  for (const auto& r : agg_calls[0].references) refs.push_back(r.model);
  EXPECT_THAT(refs, ElementsAre("x#1", "x#2", "x#3"));
  EXPECT_THAT(sink_->events()[0].accepted().layers(0).models(), ElementsAre("x#1", "x#2", "x#3"));
}

// ---- The layer policy, on the fake clock.

TEST_F(MoaCallTest, EachModelsUsageIsPricedAndTheCostMetricCountsIt) {
  auto cfg = config::ParseClusterConfig(
      "models:\n"
      "  a: {endpoint: 'x:1', price: {input_per_million: 1, output_per_million: 10}}\n"
      "  b: {endpoint: 'x:2'}\n"
      "  agg: {endpoint: 'x:3', price: {input_per_million: 2, output_per_million: 20}}\n"
      "aggregator: {endpoint: 'x:9'}\npipelines:\n  p: {layers: [[a, b]], aggregator: agg}\n",
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  FakeGenerationBackend proposers(Answer), aggregator(Answer);
  MoaCall::Options o;
  o.pipeline.name = "p";
  o.pipeline.layers = {{"a", "b", "a"}};
  o.pipeline.samples = {{{1, {}}, {0, {}}, {2, {}}}};  // a#1, b, a#2.
  o.pipeline.aggregator = "agg";
  o.conversation = {{llm::Role::kUser, "question"}};
  o.key_name = "team-x";
  o.policy.min_proposals = 3;  // On the fake clock every answer takes 0 s: no grace.
  MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_, &*cfg}, sink_);
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  const v1::Summary s = sink_->events().back().summary();
  // Ok() is 3 prompt and 5 completion tokens per call.
  const double a_call = (3 * 1 + 5 * 10) / 1e6, agg_call = (3 * 2 + 5 * 20) / 1e6;
  double total = 0;
  for (const auto& u : s.usage()) {
    if (u.model() == "b") {
      EXPECT_EQ(u.cost_dollars(), 0) << "no price";
    } else if (u.model() == "agg") {
      EXPECT_DOUBLE_EQ(u.cost_dollars(), agg_call);
    } else {
      EXPECT_DOUBLE_EQ(u.cost_dollars(), a_call) << u.model() << ": a sample is priced as a";
    }
    total += u.cost_dollars();
  }
  EXPECT_DOUBLE_EQ(s.cost_dollars(), total);
  EXPECT_DOUBLE_EQ(s.cost_dollars(), 2 * a_call + agg_call);
  double a_metric = -1, agg_metric = -1;
  for (const auto& family : registry_.Collect()) {
    if (family.name != "moa_cost_dollars_total") continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      EXPECT_EQ(labels["key"], "team-x");
      if (labels["model"] == "a") a_metric = m.counter.value;
      if (labels["model"] == "agg") agg_metric = m.counter.value;
    }
  }
  EXPECT_DOUBLE_EQ(a_metric, 2 * a_call) << "both samples under model a";
  EXPECT_DOUBLE_EQ(agg_metric, agg_call);
}

class LayerPolicyCallTest : public MoaCallTest {
 protected:
  static FakeGenerationBackend::Reply Held(const cluster::GenerationCall&) {
    return {{}, absl::UnknownError("unused"), /*hold=*/true};
  }

  std::shared_ptr<MoaCall> StartWith(config::LayerPolicy policy, absl::Duration timeout,
                                     FakeGenerationBackend& proposers,
                                     FakeGenerationBackend& aggregator) {
    MoaCall::Options o;
    o.pipeline.name = "p";
    o.pipeline.layers = {{"a", "b", "c", "d"}};
    o.pipeline.aggregator = "agg";
    o.conversation = {{llm::Role::kUser, "question"}};
    o.deadline =
        timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : clock_.Now() + timeout;
    o.policy = policy;
    return MoaCall::Start(std::move(o), {{&proposers, &aggregator}, &metrics_, &clock_}, sink_);
  }

  // Answers proposer `i` after moving the clock by `after`.
  void AnswerAt(FakeGenerationBackend& proposers, size_t i, absl::Duration after) {
    clock_.Advance(after);
    proposers.Answer(i, {proposers.calls()[i].model + " says"}, FakeGenerationBackend::Ok());
  }

  std::vector<std::string> Stragglers() {
    std::vector<std::string> out;
    for (const auto& e : sink_->events()) {
      if (e.has_proposal_straggler()) out.push_back(e.proposal_straggler().ref().model());
    }
    return out;
  }
};

// The earlier default, now asked for explicitly: 3 of 4, then the median grace.
config::LayerPolicy Quorum(int k) {
  config::LayerPolicy p;
  p.min_proposals = k;
  return p;
}

TEST_F(LayerPolicyCallTest, OnceTheQuorumIsInTheRestGetTheMedianThenAreCut) {
  FakeGenerationBackend proposers(Held), aggregator(Answer);
  StartWith(Quorum(3), absl::InfiniteDuration(), proposers, aggregator);  // 0.5 x median.
  AnswerAt(proposers, 0, absl::Seconds(1));
  AnswerAt(proposers, 1, absl::Seconds(1));
  AnswerAt(proposers, 2, absl::Seconds(1));  // Quorum at 3 s; median 2 s: grace to 4 s.
  clock_.Advance(absl::Milliseconds(999));
  EXPECT_TRUE(aggregator.calls().empty()) << "d still has a moment";
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_EQ(aggregator.calls().size(), 1u);
  EXPECT_EQ(aggregator.calls()[0].references.size(), 3u);
  EXPECT_THAT(Stragglers(), ElementsAre("d"));
  EXPECT_EQ(proposers.cancelled(), 1) << "the straggler's call is cancelled";
  ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  const v1::Summary s = sink_->events().back().summary();
  EXPECT_THAT(s.layer_references(), ElementsAre(3));
  EXPECT_EQ(wire::FromProto(s.layer_durations(0)), absl::Seconds(4));
}

TEST_F(LayerPolicyCallTest, AStragglerThatAnswersWithinTheGraceIsUsed) {
  FakeGenerationBackend proposers(Held), aggregator(Answer);
  StartWith(Quorum(3), absl::InfiniteDuration(), proposers, aggregator);
  AnswerAt(proposers, 0, absl::Seconds(1));
  AnswerAt(proposers, 1, absl::Seconds(1));
  AnswerAt(proposers, 2, absl::Seconds(1));
  AnswerAt(proposers, 3, absl::Milliseconds(900));  // Within the 1 s grace.
  ASSERT_EQ(aggregator.calls().size(), 1u);
  EXPECT_EQ(aggregator.calls()[0].references.size(), 4u);
  EXPECT_TRUE(Stragglers().empty());
  clock_.Advance(absl::Seconds(10));  // The grace timer was cancelled: nothing more happens.
  EXPECT_EQ(aggregator.calls().size(), 1u);
  EXPECT_EQ(clock_.pending_timers(), 0u);
}

TEST_F(LayerPolicyCallTest, WaitForAllWaitsForTheLastModelUpToTheLayersShare) {
  config::LayerPolicy all;
  all.min_proposals = std::numeric_limits<int>::max();
  FakeGenerationBackend proposers(Held), aggregator(Answer);
  StartWith(all, absl::Seconds(100), proposers, aggregator);
  AnswerAt(proposers, 0, absl::Seconds(1));
  AnswerAt(proposers, 1, absl::Seconds(1));
  AnswerAt(proposers, 2, absl::Seconds(1));
  clock_.Advance(absl::Seconds(46));  // 49 s: the layer may use 50 of the 100 s.
  EXPECT_TRUE(aggregator.calls().empty());
  clock_.Advance(absl::Seconds(1));
  ASSERT_EQ(aggregator.calls().size(), 1u) << "the layer's share ran out: go on with three";
  EXPECT_EQ(aggregator.calls()[0].references.size(), 3u);
  EXPECT_THAT(Stragglers(), ElementsAre("d"));
}

// The default policy waits for every proposal that is making progress, and
// cuts at once one that is stuck: no first byte within its model's bound
// (5 s with no first-token times on record; then 4 x the 95th percentile,
// at least 2 s). An explicit `min_proposals: all` cuts nothing as stuck.
TEST_F(LayerPolicyCallTest, AStuckProposalIsCutAtItsBoundASlowOneIsWaitedFor) {
  FakeGenerationBackend proposers(Held), aggregator(Answer);
  FirstTokenBounds bounds;
  auto call = StartCall(Asked({{"a", "b", "c", "d"}}), proposers, aggregator, nullptr, &bounds);
  AnswerAt(proposers, 0, absl::Seconds(1));
  clock_.Advance(absl::Seconds(1));
  proposers.Stream(1, {""});  // b's first byte (whole text: the empty mark).
  proposers.Stream(2, {""});
  // a's first token at 1 s moved every bound to 4 x 1 s (the pool's, none
  // having 8 of their own).
  clock_.Advance(absl::Milliseconds(1999));
  EXPECT_EQ(proposers.cancelled(), 0) << "d: 3.999 s, under its 4 s bound";
  clock_.Advance(absl::Milliseconds(1));  // 4 s: d never began.
  EXPECT_EQ(proposers.cancelled(), 1);
  EXPECT_THAT(proposers.stuck(), ElementsAre("d")) << "the breaker counts it";
  std::string failed;
  for (const auto& e : sink_->events()) {
    if (e.has_proposal_failed()) failed += e.proposal_failed().status().message();
  }
  EXPECT_THAT(failed, HasSubstr("no first token after 4s (its bound: 4s); cut as stuck"));
  // b and c write on: slower is not stuck; the layer waits for them.
  clock_.Advance(absl::Seconds(60));
  EXPECT_TRUE(aggregator.calls().empty());
  proposers.Answer(1, {"b says"}, FakeGenerationBackend::Ok());
  proposers.Answer(2, {"c says"}, FakeGenerationBackend::Ok());
  ASSERT_EQ(aggregator.calls().size(), 1u);
  EXPECT_EQ(aggregator.calls()[0].references.size(), 3u);
  // First-token times on record: 1 s, 2 s, 2 s. Under 8 of its own, a model
  // takes the pool's: 4 x 2 s.
  EXPECT_EQ(bounds.BoundFor("a"), absl::Seconds(8));
}

TEST_F(LayerPolicyCallTest, AnExplicitWaitForAllCutsNothingAsStuck) {
  FakeGenerationBackend proposers(Held), aggregator(Answer);
  FirstTokenBounds bounds;
  MoaCall::Options o = Asked({{"a", "b"}});
  o.policy.min_proposals = std::numeric_limits<int>::max();  // `all`
  auto call = StartCall(std::move(o), proposers, aggregator, nullptr, &bounds);
  AnswerAt(proposers, 0, absl::Seconds(1));
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(proposers.cancelled(), 0);
  EXPECT_TRUE(proposers.stuck().empty());
  AnswerAt(proposers, 1, absl::Seconds(1));
  ASSERT_EQ(aggregator.calls().size(), 1u);
  EXPECT_EQ(aggregator.calls()[0].references.size(), 2u);
}

TEST(FirstTokenBoundsTest, FourTimesTheP95WithinTheFloorAndTheCapOwnFromEightCalls) {
  FirstTokenBounds b;
  EXPECT_EQ(b.BoundFor("x"), absl::Seconds(5)) << "nothing on record";
  b.Record("fast", absl::Milliseconds(100));
  EXPECT_EQ(b.BoundFor("x"), absl::Seconds(2)) << "the pool's, at the floor";
  for (int i = 0; i < 8; ++i) b.Record("slow", absl::Seconds(3));
  EXPECT_EQ(b.BoundFor("slow"), absl::Seconds(12)) << "its own from 8 calls";
  EXPECT_EQ(b.BoundFor("fast"), absl::Seconds(12)) << "1 call: the pool's";
  // A model slow to begin is cut at the pool's bound, then at twice it...
  b.NoteStuck("thinker");
  EXPECT_EQ(b.BoundFor("thinker"), absl::Seconds(24)) << "12 s x 2";
  b.NoteStuck("thinker");
  EXPECT_EQ(b.BoundFor("thinker"), absl::Seconds(30)) << "48 s, capped";
  // ...until it answers: its first token resets the doubling.
  b.Record("thinker", absl::Seconds(4));
  EXPECT_EQ(b.BoundFor("thinker"), absl::Seconds(16)) << "the pool's p95 now 4 s";
  for (int i = 0; i < 8; ++i) b.Record("glacial", absl::Seconds(20));
  EXPECT_EQ(b.BoundFor("glacial"), absl::Seconds(30)) << "the cap";
}

TEST_F(LayerPolicyCallTest, ALayerWithNoAnswerInItsShareFailsNamingTheLayer) {
  FakeGenerationBackend proposers(Held), aggregator(Answer);
  StartWith({}, absl::Seconds(60), proposers, aggregator);
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(sink_->status().message(), HasSubstr("layer 1 used its share of the deadline"));
  EXPECT_THAT(sink_->status().message(), HasSubstr("a: no answer after 30s"));
  EXPECT_EQ(proposers.cancelled(), 4);
  EXPECT_TRUE(aggregator.calls().empty());
}

TEST_F(LayerPolicyCallTest, FailuresCountAgainstNoQuorumTheLayerWaitsForTheRest) {
  FakeGenerationBackend proposers(Held), aggregator(Answer);
  StartWith({}, absl::InfiniteDuration(), proposers, aggregator);
  clock_.Advance(absl::Seconds(1));
  proposers.Answer(0, {}, absl::UnavailableError("down"));
  proposers.Answer(1, {}, absl::UnavailableError("down"));
  AnswerAt(proposers, 2, absl::Seconds(1));
  clock_.Advance(absl::Seconds(60));
  EXPECT_TRUE(aggregator.calls().empty()) << "2 of 4 failed: a quorum of 3 needs d";
  AnswerAt(proposers, 3, absl::Seconds(1));
  ASSERT_EQ(aggregator.calls().size(), 1u);
  EXPECT_EQ(aggregator.calls()[0].references.size(), 2u);
}

TEST_F(LayerPolicyCallTest, AFinalAnswerThatFailsSaysWhereTheTimeWent) {
  FakeGenerationBackend proposers(Held);
  FakeGenerationBackend aggregator([](const cluster::GenerationCall&) {
    return FakeGenerationBackend::Reply{{}, absl::UnknownError("unused"), /*hold=*/true};
  });
  StartWith({}, absl::Seconds(100), proposers, aggregator);
  for (size_t i = 0; i < 4; ++i) AnswerAt(proposers, i, absl::Seconds(2));
  clock_.Advance(absl::Seconds(3));
  aggregator.Answer(0, {}, absl::DeadlineExceededError("upstream sent no token within 3s"));
  EXPECT_EQ(aggregator.calls().size(), 2u) << "asked again (another replica)";
  clock_.Advance(absl::Seconds(3));
  aggregator.Answer(1, {}, absl::DeadlineExceededError("upstream sent no token within 3s"));
  clock_.Advance(absl::Seconds(3));
  aggregator.Answer(2, {}, absl::DeadlineExceededError("upstream sent no token within 3s"));
  EXPECT_EQ(sink_->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(sink_->status().message(),
              HasSubstr("final answer by agg failed (attempt 3) (time went to layer 1 8s, final "
                        "answer 9s of 1m40s): upstream sent no token within 3s"));
}

}  // namespace
}  // namespace moa::orchestrator
