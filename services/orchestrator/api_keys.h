// Client API keys of the orchestrator's servers (HTTP and gRPC).
#ifndef MOA_SERVICES_ORCHESTRATOR_API_KEYS_H_
#define MOA_SERVICES_ORCHESTRATOR_API_KEYS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moa::orchestrator {

class ApiKeys {
 public:
  ApiKeys() = default;
  explicit ApiKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}

  // Keys from a file (one per line; blank lines and lines starting with #
  // ignored) and from a comma- or newline-separated list (MOA_API_KEYS).
  // Either may be empty. NOT_FOUND when the file cannot be read.
  static absl::StatusOr<ApiKeys> Load(const std::string& file, absl::string_view list);

  // True when keys are configured, so every request must carry one.
  bool enabled() const { return !keys_.empty(); }
  size_t size() const { return keys_.size(); }

  // Checks an Authorization header value ("Bearer KEY"). Compares against
  // every key in time independent of where the bytes differ, so response
  // timing does not reveal how much of a key was right.
  bool CheckAuthorization(absl::string_view header) const;

 private:
  std::vector<std::string> keys_;
};

// Constant-time comparison: examines every byte of the longer input.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_API_KEYS_H_
