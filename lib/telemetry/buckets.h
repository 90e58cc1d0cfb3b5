// Histogram bucket sets (seconds), shared by every service so dashboards can
// compare quantiles across them.
#ifndef MOA_LIB_TELEMETRY_BUCKETS_H_
#define MOA_LIB_TELEMETRY_BUCKETS_H_

#include <vector>

namespace moa::telemetry {

// Whole-request and per-call durations: 0.25 s .. 300 s, steps of at most
// a third between 1 and 30 s.
const std::vector<double>& DurationBuckets();
// Time to first token: 25 ms .. 60 s, fine between 0.05 and 10 s.
const std::vector<double>& TimeToFirstTokenBuckets();
// Gap between consecutive tokens: 10 ms .. 5 s.
const std::vector<double>& InterTokenBuckets();

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_BUCKETS_H_
