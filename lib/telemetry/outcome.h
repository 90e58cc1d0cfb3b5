// The outcome of a call as metrics label it: the one definition of the
// `outcome` label's values, and how a status maps to them.
#ifndef MOA_LIB_TELEMETRY_OUTCOME_H_
#define MOA_LIB_TELEMETRY_OUTCOME_H_

#include <array>
#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace moa::telemetry {

enum class Outcome {
  kOk,
  kCancelled,
  kDeadline,
  kRateLimited,
  kUpstreamError,
  kInvalid,
  kUnavailable,
  // Cut by its layer's policy: still running when the layer went on.
  kStraggler,
};
inline constexpr size_t kOutcomeCount = 8;

// Every outcome, in label order; children are created for each up front so
// rates start at 0.
inline constexpr std::array<Outcome, kOutcomeCount> kAllOutcomes = {
    Outcome::kOk,          Outcome::kCancelled,     Outcome::kDeadline,
    Outcome::kRateLimited, Outcome::kUpstreamError, Outcome::kInvalid,
    Outcome::kUnavailable, Outcome::kStraggler};

// The label value: ok, cancelled, deadline, rate_limited, upstream_error,
// invalid, unavailable, straggler.
absl::string_view OutcomeName(Outcome outcome);

// ok, cancelled, deadline, rate_limited (RESOURCE_EXHAUSTED), invalid,
// unavailable, and upstream_error for every other code (never straggler:
// that is a decision of the caller's, not a status).
Outcome OutcomeOf(const absl::Status& status);

// As OutcomeOf, but a cancel at (or just before) the call's deadline is
// kDeadline: the caller's own deadline timer cancels the stream a transit
// time before the callee's copy of the deadline passes.
Outcome OutcomeAt(const absl::Status& status, absl::Time deadline, absl::Time now);

// One metric child per outcome, indexed by Outcome.
template <typename Metric>
using PerOutcome = std::array<Metric*, kOutcomeCount>;

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_OUTCOME_H_
