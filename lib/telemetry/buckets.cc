#include "lib/telemetry/buckets.h"

namespace moa::telemetry {

// MoA requests and model calls live between about 0.5 and 30 s; from 1 s
// up the steps there are at most a third apart (most a quarter), so
// quantiles in that range move with the load instead of sitting between two
// distant edges. The tail goes to 300 s.
const std::vector<double>& DurationBuckets() {
  static const std::vector<double> b = {0.25, 0.5, 0.75, 1,  1.25, 1.5, 1.75, 2,  2.5,
                                        3,    3.5, 4,    5,  6,    7,   8,    10, 12.5,
                                        15,   20,  25,   30, 45,   60,  120,  300};
  return b;
}

// Time to first token lives between about 0.05 and 10 s.
const std::vector<double>& TimeToFirstTokenBuckets() {
  static const std::vector<double> b = {0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4,
                                        0.5,   0.6,  0.75,  1,   1.25, 1.5, 2,    2.5, 3,
                                        4,     5,    6,     7.5, 10,   20,  60};
  return b;
}

const std::vector<double>& InterTokenBuckets() {
  static const std::vector<double> b = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                        0.3,  0.4,   0.5,  0.75,  1,   2.5,  5};
  return b;
}

}  // namespace moa::telemetry
