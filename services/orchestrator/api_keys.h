// Client API keys of the orchestrator's servers (HTTP and gRPC): named
// identities stored as SHA-256 hashes, each with optional limits (docs/keys-and-budgets.md,
// "Client keys, limits and budgets").
#ifndef MOA_SERVICES_ORCHESTRATOR_API_KEYS_H_
#define MOA_SERVICES_ORCHESTRATOR_API_KEYS_H_

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace moa::orchestrator {

struct KeyLimits {
  std::optional<int> requests_per_minute;
  std::optional<int64_t> tokens_per_minute;  // Prompt + completion, every call.
  std::optional<int> concurrent_requests;
  std::vector<std::string> pipelines;              // Empty: every pipeline (and inline specs).
  std::optional<double> budget_dollars_per_day;    // UTC days.
  std::optional<double> budget_dollars_per_month;  // UTC calendar months.
  // Not a limit: the preset (config `presets:`) its requests run with when
  // they name none. Empty: none.
  std::string preset;
};

struct ApiKey {
  std::string name;    // In metrics and logs; never the secret.
  std::string sha256;  // Of the secret, 64 lowercase hex digits.
  KeyLimits limits;
};

// The set can be replaced while requests run (a shared store's key
// directory changed, key_directory.h): a request keeps the key it was
// admitted with until it ends.
class ApiKeys {
 public:
  ApiKeys() = default;
  explicit ApiKeys(std::vector<ApiKey> keys);
  ApiKeys(const ApiKeys& other);
  ApiKeys& operator=(const ApiKeys& other);

  // Keys from a file and from a comma- or newline-separated list of secrets
  // (MOA_API_KEYS); either may be empty. The file is either a YAML map
  // `keys:` of named keys (sha256 and limits), or the older form, one
  // secret per line (blank lines and lines starting with # ignored). A
  // secret given as is is named "key-" + the first 8 hex digits of its hash.
  // NOT_FOUND when the file cannot be read; INVALID_ARGUMENT naming the
  // file and field when it is malformed.
  static absl::StatusOr<ApiKeys> Load(const std::string& file, absl::string_view list);

  // True when every request must carry a key: keys are configured, or
  // RequireKeys was called (a shared directory, which may be empty for a
  // while).
  bool enabled() const;
  size_t size() const;
  std::vector<ApiKey> List() const;

  // The key an Authorization header value ("Bearer SECRET") names, or
  // nullptr. Hashes the secret and looks the digest up: the cost does not
  // grow with the number of keys (comparing with every stored hash took
  // 6-8 ms a check at 100,000 keys). A lookup's timing can only tell about
  // the digest of what was presented, never about a stored secret, so the
  // comparison need not be constant-time (as with tokens kept hashed in a
  // database index).
  std::shared_ptr<const ApiKey> Authenticate(absl::string_view header) const;
  bool CheckAuthorization(absl::string_view header) const {
    return Authenticate(header) != nullptr;
  }

  // Replaces the whole set; lookups after it see only `keys`.
  void Replace(std::vector<ApiKey> keys);
  void RequireKeys();

 private:
  struct Set {
    std::vector<ApiKey> keys;
    std::unordered_map<std::string, size_t> by_sha256;  // Index into keys.
  };
  static std::shared_ptr<const Set> Index(std::vector<ApiKey> keys);
  std::shared_ptr<const Set> Current() const;

  mutable absl::Mutex mu_;
  std::shared_ptr<const Set> set_ ABSL_GUARDED_BY(mu_) = Index({});
  bool required_ ABSL_GUARDED_BY(mu_) = false;
};

// A key's name: 1 to 64 characters of [A-Za-z0-9._-].
bool IsKeyName(absl::string_view name);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_API_KEYS_H_
