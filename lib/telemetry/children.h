// The one way metric children are made: resolved from their family once (at
// start-up, or when a call starts) and kept as pointers, so the hot path
// only touches a child and never Family::Add (a mutex and a label map).
#ifndef MOA_LIB_TELEMETRY_CHILDREN_H_
#define MOA_LIB_TELEMETRY_CHILDREN_H_

#include <map>
#include <string>
#include <vector>

#include "lib/telemetry/outcome.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"

namespace moa::telemetry {

using Labels = std::map<std::string, std::string>;

// A counter child per outcome: `labels` plus outcome=<each value>.
PerOutcome<prometheus::Counter> CountersPerOutcome(prometheus::Family<prometheus::Counter>& family,
                                                   const Labels& labels);
PerOutcome<prometheus::Histogram> HistogramsPerOutcome(
    prometheus::Family<prometheus::Histogram>& family, const Labels& labels,
    const std::vector<double>& buckets);

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_CHILDREN_H_
