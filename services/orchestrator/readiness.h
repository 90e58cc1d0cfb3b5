// Whether the orchestrator can answer: for every layer of the default
// pipeline at least one proposer is reachable, and the aggregator too.
// Checked in the background so probes never block a request thread.
#ifndef MOA_SERVICES_ORCHESTRATOR_READINESS_H_
#define MOA_SERVICES_ORCHESTRATOR_READINESS_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace moa::orchestrator {

class Readiness {
 public:
  // `layers` holds, per layer of the default pipeline, the channels of its
  // models' proposers; `aggregator` the aggregator's channel.
  // `on_change` (optional) is called from the checking thread, with no lock
  // held, whenever the verdict changes (and after the first check), e.g. to
  // mirror it in gRPC health.
  Readiness(std::vector<std::vector<std::shared_ptr<grpc::Channel>>> layers,
            std::shared_ptr<grpc::Channel> aggregator, absl::Duration interval = absl::Seconds(1),
            std::function<void(bool ready)> on_change = nullptr);
  ~Readiness();

  bool ready() const { return ready_.load(); }
  // Why not ready, for /readyz's body.
  std::string reason() const;

 private:
  void Check();

  const std::vector<std::vector<std::shared_ptr<grpc::Channel>>> layers_;
  const std::shared_ptr<grpc::Channel> aggregator_;
  const std::function<void(bool)> on_change_;
  std::optional<bool> last_;  // Checking thread only.
  std::atomic<bool> ready_{false};
  mutable absl::Mutex mu_;
  std::string reason_ ABSL_GUARDED_BY(mu_) = "not checked yet";
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_READINESS_H_
