#include "services/orchestrator/engine/first_token.h"

#include <algorithm>
#include <vector>

namespace moa::orchestrator {
namespace {

absl::Duration P95(const std::deque<absl::Duration>& samples) {
  std::vector<absl::Duration> sorted(samples.begin(), samples.end());
  const size_t at = std::min(sorted.size() - 1, sorted.size() * 95 / 100);
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(at), sorted.end());
  return sorted[at];
}

void Keep(std::deque<absl::Duration>& samples, absl::Duration d, size_t most) {
  samples.push_back(d);
  if (samples.size() > most) samples.pop_front();
}

}  // namespace

void FirstTokenBounds::Record(const std::string& model, absl::Duration first_token) {
  if (first_token < absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  std::deque<absl::Duration>& own = by_model_[model];
  Keep(own, first_token, kPerModel);
  Keep(pool_, first_token, kPool);
  // Percentiles are taken here, once per call that answered, rather than
  // each time a bound is read (every proposal, at every re-arm).
  if (own.size() >= kOwnFrom) own_p95_[model] = P95(own);
  pool_p95_ = P95(pool_);
  stuck_in_a_row_.erase(model);
}

void FirstTokenBounds::NoteStuck(const std::string& model) {
  absl::MutexLock lock(&mu_);
  int& n = stuck_in_a_row_[model];
  n = std::min(n + 1, 16);
}

absl::Duration FirstTokenBounds::BoundFor(const std::string& model) const {
  absl::MutexLock lock(&mu_);
  auto own = own_p95_.find(model);
  const std::optional<absl::Duration> p95 =
      own != own_p95_.end() ? std::optional<absl::Duration>(own->second) : pool_p95_;
  absl::Duration bound = p95 ? std::clamp(*p95 * kFactor, kFloor, kCap) : kUnknown;
  if (auto s = stuck_in_a_row_.find(model); s != stuck_in_a_row_.end()) {
    bound = std::min(kCap, bound * (int64_t{1} << s->second));
  }
  return bound;
}

}  // namespace moa::orchestrator
