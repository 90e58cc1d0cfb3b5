// How long a proposer layer waits for its models: the defaults, and the
// rule a layer of n models follows.
//
// Defaults (a pipeline's `policy:` and a request's override replace them):
//  - min_proposals unset: all of them. A proposal that is making progress
//    is never cut for being slower than the others; one that is stuck (no
//    first byte within its model's bound, see first_token.h) is cut at once
//    by MoaCall and counts as the model's failure. `min_proposals: all` set
//    explicitly is the paper's wait-for-all exactly: nothing is cut as stuck;
//  - a layer may use at most layer_deadline_share (0.5) of the time left to
//    the request's deadline, so the final answer keeps at least half.
// Trading answers for latency is explicit: min_proposals k of n, after which
// the rest get straggler_grace_factor x the median duration of the answers
// in (0.5 when only min_proposals is set), at most straggler_grace. The
// earlier default was a majority (n/2 + 1) with that 0.5 grace.
// A model that is still running when its layer goes on is a straggler: its
// call is cancelled (its upstream connection closed) and reported as such.
#ifndef MOA_SERVICES_ORCHESTRATOR_ENGINE_LAYER_POLICY_H_
#define MOA_SERVICES_ORCHESTRATOR_ENGINE_LAYER_POLICY_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/config/cluster_config.h"
#include "moa/v1/orchestrator.pb.h"

namespace moa::orchestrator {

inline constexpr double kDefaultGraceFactor = 0.5;
inline constexpr double kDefaultLayerDeadlineShare = 0.5;

// The policy with `over`'s set fields replacing `base`'s.
config::LayerPolicy MergePolicy(const config::LayerPolicy& base, const config::LayerPolicy& over);

// A request's override, checked: INVALID_ARGUMENT naming the field.
absl::StatusOr<config::LayerPolicy> PolicyFromProto(const v1::LayerPolicy& policy,
                                                    absl::string_view field = "policy");

// The rule one layer of `models` models follows.
struct LayerRule {
  size_t min_proposals = 1;  // In 1..models.
  std::optional<absl::Duration> straggler_grace;
  double straggler_grace_factor = kDefaultGraceFactor;
  double layer_deadline_share = kDefaultLayerDeadlineShare;

  // How long the stragglers get once the quorum is in, given the durations
  // of the answers in so far.
  absl::Duration StragglerWait(std::vector<absl::Duration> answered) const;
  // When a layer that starts at `start` must end, given the request's
  // deadline: `start` + share x (deadline - start); InfiniteFuture for no
  // deadline.
  absl::Time LayerDeadline(absl::Time start, absl::Time request_deadline) const;
};

LayerRule RuleFor(const config::LayerPolicy& policy, size_t models);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ENGINE_LAYER_POLICY_H_
