// Histogram bucket sets (seconds), shared by every service so dashboards can
// compare quantiles across them.
#ifndef MOA_LIB_TELEMETRY_BUCKETS_H_
#define MOA_LIB_TELEMETRY_BUCKETS_H_

#include <vector>

namespace moa::telemetry {

// Whole-request and per-call durations: 0.1 s .. 300 s.
const std::vector<double>& DurationBuckets();
// Time to first token: 10 ms .. 60 s.
const std::vector<double>& TimeToFirstTokenBuckets();
// Gap between consecutive tokens: 10 ms .. 5 s.
const std::vector<double>& InterTokenBuckets();

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_BUCKETS_H_
