#include "services/orchestrator/engine/layer_policy.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "lib/wire/wire.h"

namespace moa::orchestrator {

config::LayerPolicy MergePolicy(const config::LayerPolicy& base, const config::LayerPolicy& over) {
  config::LayerPolicy p = base;
  if (over.min_proposals) p.min_proposals = over.min_proposals;
  if (over.straggler_grace) p.straggler_grace = over.straggler_grace;
  if (over.straggler_grace_factor) p.straggler_grace_factor = over.straggler_grace_factor;
  if (over.layer_deadline_share) p.layer_deadline_share = over.layer_deadline_share;
  return p;
}

absl::StatusOr<config::LayerPolicy> PolicyFromProto(const v1::LayerPolicy& policy,
                                                    absl::string_view field) {
  config::LayerPolicy p;
  if (policy.has_min_proposals()) {
    if (policy.min_proposals() < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".min_proposals must be >= 1 (a large number waits for every model), got ",
          policy.min_proposals()));
    }
    p.min_proposals = policy.min_proposals();
  }
  if (policy.has_straggler_grace()) {
    absl::Duration grace = wire::FromProto(policy.straggler_grace());
    if (grace < absl::ZeroDuration() || grace > absl::Hours(24)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".straggler_grace must be in [0, 24h], got ", absl::FormatDuration(grace)));
    }
    p.straggler_grace = grace;
  }
  if (policy.has_straggler_grace_factor()) {
    double f = policy.straggler_grace_factor();
    if (!(f >= 0 && f <= 1000)) {  // Also refuses NaN.
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".straggler_grace_factor must be in [0, 1000], got ", f));
    }
    p.straggler_grace_factor = f;
  }
  if (policy.has_layer_deadline_share()) {
    double s = policy.layer_deadline_share();
    if (!(s >= 0.01 && s <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".layer_deadline_share must be in [0.01, 1], got ", s));
    }
    p.layer_deadline_share = s;
  }
  return p;
}

LayerRule RuleFor(const config::LayerPolicy& policy, size_t models) {
  LayerRule rule;
  // By default every proposal still coming is used: a layer goes on without
  // one only when it is stuck (MoaCall's first-token bound) or the layer's
  // share of the deadline is spent.
  rule.min_proposals = std::clamp<size_t>(
      policy.min_proposals ? static_cast<size_t>(*policy.min_proposals) : models, 1, models);
  rule.straggler_grace = policy.straggler_grace;
  rule.straggler_grace_factor = policy.straggler_grace_factor.value_or(kDefaultGraceFactor);
  rule.layer_deadline_share = policy.layer_deadline_share.value_or(kDefaultLayerDeadlineShare);
  return rule;
}

absl::Duration LayerRule::StragglerWait(std::vector<absl::Duration> answered) const {
  absl::Duration wait = absl::InfiniteDuration();
  if (!answered.empty()) {
    std::sort(answered.begin(), answered.end());
    const size_t n = answered.size();
    absl::Duration median =
        n % 2 == 1 ? answered[n / 2] : (answered[n / 2 - 1] + answered[n / 2]) / 2;
    wait = median * straggler_grace_factor;
  }
  if (straggler_grace) wait = std::min(wait, *straggler_grace);
  return wait;
}

absl::Time LayerRule::LayerDeadline(absl::Time start, absl::Time request_deadline) const {
  if (request_deadline == absl::InfiniteFuture()) return absl::InfiniteFuture();
  if (request_deadline <= start) return start;
  return start + (request_deadline - start) * layer_deadline_share;
}

}  // namespace moa::orchestrator
