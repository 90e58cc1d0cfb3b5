#include "services/orchestrator/engine/layer_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/wire/wire.h"

namespace moa::orchestrator {
namespace {

using ::testing::HasSubstr;

// By default every proposal is waited for (stuck ones are MoaCall's to cut);
// a quorum set explicitly gets the median grace.
TEST(LayerPolicyTest, DefaultsAreEveryProposalAndTheMedianAndHalfTheTimeLeft) {
  EXPECT_EQ(RuleFor({}, 1).min_proposals, 1u);
  EXPECT_EQ(RuleFor({}, 2).min_proposals, 2u);
  EXPECT_EQ(RuleFor({}, 3).min_proposals, 3u);
  EXPECT_EQ(RuleFor({}, 4).min_proposals, 4u);
  config::LayerPolicy quorum;
  quorum.min_proposals = 3;
  LayerRule rule = RuleFor(quorum, 4);
  EXPECT_EQ(rule.StragglerWait({absl::Seconds(3), absl::Seconds(1), absl::Seconds(2)}),
            absl::Seconds(1))
      << "half the median";
  EXPECT_EQ(rule.StragglerWait({absl::Seconds(1), absl::Seconds(2)}), absl::Milliseconds(750));
  const absl::Time t = absl::FromUnixSeconds(1000);
  EXPECT_EQ(rule.LayerDeadline(t, t + absl::Seconds(60)), t + absl::Seconds(30));
  EXPECT_EQ(rule.LayerDeadline(t, absl::InfiniteFuture()), absl::InfiniteFuture());
  EXPECT_EQ(rule.LayerDeadline(t, t - absl::Seconds(1)), t);
}

TEST(LayerPolicyTest, ConfiguredValuesWinAndTheSmallerGraceBoundWins) {
  config::LayerPolicy p;
  p.min_proposals = 100;  // "all"
  p.straggler_grace = absl::Seconds(1);
  p.straggler_grace_factor = 3;
  p.layer_deadline_share = 0.25;
  LayerRule rule = RuleFor(p, 4);
  EXPECT_EQ(rule.min_proposals, 4u) << "clamped to the layer's models";
  EXPECT_EQ(rule.StragglerWait({absl::Seconds(2)}), absl::Seconds(1)) << "the cap";
  EXPECT_EQ(rule.StragglerWait({absl::Milliseconds(100)}), absl::Milliseconds(300)) << "the factor";
  const absl::Time t = absl::FromUnixSeconds(1000);
  EXPECT_EQ(rule.LayerDeadline(t, t + absl::Seconds(40)), t + absl::Seconds(10));
}

TEST(LayerPolicyTest, ARequestOverridesOnlyWhatItSets) {
  config::LayerPolicy pipeline;
  pipeline.min_proposals = 2;
  pipeline.straggler_grace_factor = 0.5;
  v1::LayerPolicy request;
  request.set_straggler_grace_factor(2);
  wire::ToProto(absl::Seconds(3), request.mutable_straggler_grace());
  auto over = PolicyFromProto(request);
  ASSERT_TRUE(over.ok()) << over.status();
  config::LayerPolicy merged = MergePolicy(pipeline, *over);
  EXPECT_EQ(merged.min_proposals, 2);
  EXPECT_EQ(merged.straggler_grace_factor, 2);
  EXPECT_EQ(merged.straggler_grace, absl::Seconds(3));
  EXPECT_FALSE(merged.layer_deadline_share);
}

TEST(LayerPolicyTest, ABadOverrideNamesItsField) {
  auto check = [](auto set, const char* field) {
    v1::LayerPolicy p;
    set(p);
    absl::Status s = PolicyFromProto(p).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(s.message(), HasSubstr(field));
  };
  check([](v1::LayerPolicy& p) { p.set_min_proposals(0); }, "policy.min_proposals");
  check([](v1::LayerPolicy& p) { p.mutable_straggler_grace()->set_seconds(-1); },
        "policy.straggler_grace");
  check([](v1::LayerPolicy& p) { p.set_straggler_grace_factor(std::nan("")); },
        "policy.straggler_grace_factor");
  check([](v1::LayerPolicy& p) { p.set_layer_deadline_share(0); }, "policy.layer_deadline_share");
  check([](v1::LayerPolicy& p) { p.set_layer_deadline_share(1.5); }, "policy.layer_deadline_share");
}

}  // namespace
}  // namespace moa::orchestrator
