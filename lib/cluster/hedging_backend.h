// HedgingBackend: "The Tail at Scale" hedged requests in front of another
// GenerationBackend. When a call has shown nothing (no text, no end) after
// its model's recent p95 time to first byte, or a configured delay, one more
// identical call is started (gRPC balances it to another replica when there
// is one); whichever produces text or a successful end first wins, and the
// other is cancelled at once. A budget bounds the extra calls to a share of
// all calls (token bucket), so hedging never amplifies an overload.
#ifndef MOA_LIB_CLUSTER_HEDGING_BACKEND_H_
#define MOA_LIB_CLUSTER_HEDGING_BACKEND_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/base/clock.h"
#include "lib/cluster/generation_backend.h"

namespace moa::cluster {

struct HedgeOptions {
  // A fixed delay before the hedge; zero: the model's recent percentile.
  absl::Duration hedge_after = absl::ZeroDuration();
  double percentile = 0.95;
  // Calls of a model observed before its percentile is trusted.
  int min_samples = 20;
  // Never hedge sooner than this.
  absl::Duration min_delay = absl::Milliseconds(50);
  // Extra calls allowed per call (0.05: at most ~5% more calls), and the
  // burst the bucket holds.
  double budget_ratio = 0.05;
  double budget_burst = 10;
};

class HedgingBackend final : public GenerationBackend {
 public:
  // Called once per hedge started, and with `hedge_won` when it won.
  using OnHedge = std::function<void(const std::string& model, bool hedge_won)>;

  // `inner` and `clock` must outlive this.
  HedgingBackend(GenerationBackend* inner, HedgeOptions options, const Clock* clock,
                 OnHedge on_hedge = {});

  void ReportStuck(const std::string& model) override { inner_->ReportStuck(model); }
  std::shared_ptr<llm::CallHandle> Start(GenerationCall call,
                                         std::shared_ptr<GenerationObserver> observer) override;

  // The delay before a hedge for `model` now; InfiniteDuration when none
  // would be started (too few samples and no fixed delay).
  absl::Duration HedgeDelay(const std::string& model);

  // A model's recent times to first byte (the samples hedging decides on):
  // how many, and their median and 95th percentile (zero without samples).
  struct FirstByte {
    int samples = 0;
    absl::Duration p50;
    absl::Duration p95;
  };
  FirstByte RecentFirstByte(const std::string& model);

 private:
  class HedgedCall;
  friend class HedgedCall;

  void RecordFirstByte(const std::string& model, absl::Duration d);
  bool TakeHedgeToken();
  // The `share` percentile of a model's samples; InfiniteDuration with
  // fewer than `min_samples`.
  absl::Duration Percentile(const std::string& model, double share, int min_samples);

  GenerationBackend* const inner_;
  const HedgeOptions options_;
  const Clock* const clock_;
  const OnHedge on_hedge_;

  absl::Mutex mu_;
  // The last 200 times to first byte of each model.
  std::map<std::string, std::deque<absl::Duration>, std::less<>> samples_ ABSL_GUARDED_BY(mu_);
  double tokens_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa::cluster

#endif  // MOA_LIB_CLUSTER_HEDGING_BACKEND_H_
