// When a call is stuck: each model's recent first-token times, as the
// orchestrator saw them (from the call's start to its first byte), and the
// bound past which a call that has not begun to answer is cut. Slower is not
// stuck: the bound is four times the model's 95th percentile, at least 2 s
// and at most 30 s; a model with fewer than 8 calls on record borrows the
// percentile of every model's calls, and with none on record at all the
// bound is 5 s. A model slow to begin (a reasoning model) would then be cut
// before it could ever put a time on record, so each cut in a row doubles
// its bound (up to the cap) until a first token resets it.
// Thread-safe; shared by every request of the process.
#ifndef MOA_SERVICES_ORCHESTRATOR_ENGINE_FIRST_TOKEN_H_
#define MOA_SERVICES_ORCHESTRATOR_ENGINE_FIRST_TOKEN_H_

#include <deque>
#include <map>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace moa::orchestrator {

class FirstTokenBounds {
 public:
  static constexpr absl::Duration kFloor = absl::Seconds(2);
  static constexpr absl::Duration kCap = absl::Seconds(30);
  static constexpr absl::Duration kUnknown = absl::Seconds(5);
  static constexpr double kFactor = 4;
  static constexpr size_t kPerModel = 64;  // Calls kept per model...
  static constexpr size_t kPool = 256;     // ...and over all models.
  static constexpr size_t kOwnFrom = 8;    // A model's own percentile from this many.

  void Record(const std::string& model, absl::Duration first_token);
  // A call to `model` was cut as stuck: its next bound is twice as long.
  void NoteStuck(const std::string& model);
  absl::Duration BoundFor(const std::string& model) const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::deque<absl::Duration>> by_model_ ABSL_GUARDED_BY(mu_);
  std::deque<absl::Duration> pool_ ABSL_GUARDED_BY(mu_);
  // The 95th percentiles, kept up to date by Record: a model's once it has
  // kOwnFrom calls, and the pool's once it has any.
  std::map<std::string, absl::Duration> own_p95_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Duration> pool_p95_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> stuck_in_a_row_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ENGINE_FIRST_TOKEN_H_
