#include "lib/telemetry/children.h"

namespace moa::telemetry {
namespace {

Labels WithOutcome(Labels labels, Outcome outcome) {
  labels["outcome"] = std::string(OutcomeName(outcome));
  return labels;
}

}  // namespace

PerOutcome<prometheus::Counter> CountersPerOutcome(prometheus::Family<prometheus::Counter>& family,
                                                   const Labels& labels) {
  PerOutcome<prometheus::Counter> out{};
  for (Outcome o : kAllOutcomes) out[static_cast<size_t>(o)] = &family.Add(WithOutcome(labels, o));
  return out;
}

PerOutcome<prometheus::Histogram> HistogramsPerOutcome(
    prometheus::Family<prometheus::Histogram>& family, const Labels& labels,
    const std::vector<double>& buckets) {
  PerOutcome<prometheus::Histogram> out{};
  for (Outcome o : kAllOutcomes) {
    out[static_cast<size_t>(o)] = &family.Add(WithOutcome(labels, o), buckets);
  }
  return out;
}

}  // namespace moa::telemetry
