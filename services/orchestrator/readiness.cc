#include "services/orchestrator/readiness.h"

#include "absl/strings/str_cat.h"
#include "lib/server/health_check.h"

namespace moa::orchestrator {

Readiness::Readiness(std::vector<std::vector<std::shared_ptr<grpc::Channel>>> layers,
                     std::shared_ptr<grpc::Channel> aggregator, absl::Duration interval,
                     std::function<void(bool)> on_change)
    : layers_(std::move(layers)),
      aggregator_(std::move(aggregator)),
      on_change_(std::move(on_change)) {
  thread_ = std::thread([this, interval] {
    do {
      Check();
    } while (!stop_.WaitForNotificationWithTimeout(interval));
  });
}

Readiness::~Readiness() {
  stop_.Notify();
  thread_.join();
}

std::string Readiness::reason() const {
  absl::MutexLock lock(&mu_);
  return reason_;
}

void Readiness::Check() {
  auto serving = [](const std::shared_ptr<grpc::Channel>& c) {
    return c && server::HealthCheck(c, std::chrono::milliseconds(500)) == 1;
  };
  std::string reason;
  for (size_t i = 0; i < layers_.size() && reason.empty(); ++i) {
    bool any = false;
    for (const auto& c : layers_[i]) any = any || serving(c);
    if (!any) reason = absl::StrCat("no proposer of layer ", i + 1, " is reachable");
  }
  if (reason.empty() && !serving(aggregator_)) reason = "the aggregator is not reachable";
  const bool ready = reason.empty();
  ready_.store(ready);
  {
    absl::MutexLock lock(&mu_);
    reason_ = ready ? "ready" : reason;
  }
  if (on_change_ && last_ != ready) on_change_(ready);
  last_ = ready;
}

}  // namespace moa::orchestrator
