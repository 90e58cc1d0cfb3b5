// Histogram bucket sets (seconds), shared by every service so dashboards can
// compare quantiles across them.
#ifndef MOA_LIB_TELEMETRY_BUCKETS_H_
#define MOA_LIB_TELEMETRY_BUCKETS_H_

#include <array>
#include <vector>

#include "absl/strings/string_view.h"

namespace moa::telemetry {

// Whole-request and per-call durations: 0.1 s .. 300 s.
const std::vector<double>& DurationBuckets();
// Time to first token: 10 ms .. 60 s.
const std::vector<double>& TimeToFirstTokenBuckets();
// Gap between consecutive tokens: 10 ms .. 5 s.
const std::vector<double>& InterTokenBuckets();

// Every value of the `outcome` label, created up front so rates start at 0.
inline constexpr std::array<absl::string_view, 7> kOutcomes = {
    "ok", "cancelled", "deadline", "rate_limited", "upstream_error", "invalid", "unavailable"};

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_BUCKETS_H_
