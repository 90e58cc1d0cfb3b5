// `moa keys add`: a new client key, its secret shown once, its SHA-256 and
// limits appended to the orchestrator's keys file.
#ifndef MOA_TOOLS_MOA_KEYS_H_
#define MOA_TOOLS_MOA_KEYS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moa::cli {

struct NewKey {
  std::string name;
  std::optional<int64_t> requests_per_minute;
  std::optional<int64_t> tokens_per_minute;
  std::optional<int64_t> concurrent_requests;
  std::vector<std::string> pipelines;
  std::optional<double> budget_dollars_per_day;
  std::optional<double> budget_dollars_per_month;
  std::string preset;  // Empty: none.
};

// Appends `key` to `file` (created with "keys:" when missing) and returns
// its secret. INVALID_ARGUMENT for a bad name, a name already in the file,
// or a file that is not a YAML map with `keys:` as its only top-level key.
absl::StatusOr<std::string> AddKey(const std::string& file, const NewKey& key);

}  // namespace moa::cli

#endif  // MOA_TOOLS_MOA_KEYS_H_
