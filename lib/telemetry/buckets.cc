#include "lib/telemetry/buckets.h"

namespace moa::telemetry {

const std::vector<double>& DurationBuckets() {
  static const std::vector<double> b = {0.1, 0.25, 0.5, 1,  2,  2.5, 5,   7.5, 10,
                                        15,  20,   30,  45, 60, 90,  120, 180, 300};
  return b;
}

const std::vector<double>& TimeToFirstTokenBuckets() {
  static const std::vector<double> b = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1,  1.5,
                                        2,    2.5,   5,    7.5, 10,   15,  20,   30, 60};
  return b;
}

const std::vector<double>& InterTokenBuckets() {
  static const std::vector<double> b = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                        0.3,  0.4,   0.5,  0.75,  1,   2.5,  5};
  return b;
}

}  // namespace moa::telemetry
