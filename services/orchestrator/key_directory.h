// Client keys kept in the shared store (config `store:`), so keys added,
// limited and revoked at runtime through the admin API (admin_api.h) reach
// every orchestrator replica within a poll interval, without a restart.
//
// In the store: the hash `moa:keys`, one JSON record per key name (its
// SHA-256, limits, when it was made and revoked), and `moa:keys:version`,
// incremented by every change. Each replica reads the version every
// kKeyPollInterval and the whole directory when it moved. A revoked key
// keeps its record, so its name is never reused and the keys file (which
// seeds the store: names it does not hold yet are added) cannot bring it
// back. While the store cannot be read, a replica keeps the keys it read
// last; a store that lost its data (no version) is seeded again.
#ifndef MOA_SERVICES_ORCHESTRATOR_KEY_DIRECTORY_H_
#define MOA_SERVICES_ORCHESTRATOR_KEY_DIRECTORY_H_

#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/store/shared_records.h"
#include "services/orchestrator/api_keys.h"

namespace moa::orchestrator {

inline constexpr char kKeysHash[] = "moa:keys";
inline constexpr int64_t kMaxSharedKeys = 10000;
inline constexpr size_t kMaxKeyRecordBytes = 1024;
// A revoked key is refused by every replica within this (plus one read).
inline constexpr absl::Duration kKeyPollInterval = absl::Milliseconds(250);

struct KeyRecord {
  ApiKey key;
  int64_t created = 0;             // Unix seconds.
  std::optional<int64_t> revoked;  // Unix seconds; a revoked key is refused.
};

// The limit fields of a key as JSON (those set only): requests_per_minute,
// tokens_per_minute, concurrent_requests, budget_dollars_per_day,
// budget_dollars_per_month, pipelines; the same names as the keys file.
json::Json KeyLimitsJson(const KeyLimits& limits);
// Reads the limit fields of `object` into `limits`; a null clears one.
// INVALID_ARGUMENT naming the field for a wrong value, or for a field that is
// neither a limit nor one of `other_fields`.
absl::Status ReadKeyLimits(const json::Json& object, const std::set<std::string>& other_fields,
                           KeyLimits* limits);

// A record as kept in the store, and read back (a store is a peer: every
// value is checked, INVALID_ARGUMENT naming what is wrong).
std::string KeyRecordJson(const KeyRecord& record);
absl::StatusOr<KeyRecord> ParseKeyRecord(absl::string_view name, absl::string_view text);
// A record for the admin API: name, limits, created, revoked; never a hash.
json::Json KeyRecordView(const KeyRecord& record);

class KeyDirectory {
 public:
  // Keeps `keys` equal to the store's keys that are not revoked. `seed`
  // (the keys file and MOA_API_KEYS) is added to the store where it holds
  // no key of that name. All pointers must outlive this.
  KeyDirectory(store::SharedRecords* records, ApiKeys* keys, const Clock* clock,
               std::vector<ApiKey> seed);
  ~KeyDirectory();  // Stops polling.

  // Seeds the store when it holds no version, then reads the directory when
  // its version moved since the last read.
  absl::Status Refresh();
  // Refreshes every `every` on a thread of its own until destroyed; store
  // failures are logged when they start and when they end.
  void StartPolling(absl::Duration every = kKeyPollInterval);

  struct Created {
    KeyRecord record;
    std::string secret;  // Shown once; only its SHA-256 is kept.
  };
  // ALREADY_EXISTS for a name the store holds (revoked keys included);
  // INVALID_ARGUMENT for a bad name; RESOURCE_EXHAUSTED over kMaxSharedKeys.
  absl::StatusOr<Created> Create(const std::string& name, const KeyLimits& limits);
  // Applies `patch` (limit fields; null clears one) to a key. NOT_FOUND,
  // FAILED_PRECONDITION for a revoked key, INVALID_ARGUMENT for the patch.
  absl::StatusOr<KeyRecord> Update(const std::string& name, const json::Json& patch);
  // Revokes a key (again: no change). NOT_FOUND for an unknown name.
  absl::StatusOr<KeyRecord> Revoke(const std::string& name);
  // One key's record. NOT_FOUND for an unknown name.
  absl::StatusOr<KeyRecord> Find(const std::string& name);
  // Every record, revoked ones included, by name; a record the store holds
  // in a form this build cannot read is left out (and logged).
  absl::StatusOr<std::vector<KeyRecord>> List();

 private:
  // Reads `name`'s record, changes it with `change`, writes it back if no
  // other writer changed it meanwhile (else reads again, a few times).
  absl::StatusOr<KeyRecord> Change(const std::string& name,
                                   const std::function<absl::Status(KeyRecord&)>& change);
  absl::Status Seed();
  struct StoredRecord {
    std::string text;  // As the store holds it, for compare-and-set.
    KeyRecord record;
  };
  // `name`'s record: NOT_FOUND, or INTERNAL when the store's text is unreadable.
  absl::StatusOr<StoredRecord> Read(const std::string& name);

  store::SharedRecords* const records_;
  ApiKeys* const keys_;
  const Clock* const clock_;
  const std::vector<ApiKey> seed_;
  absl::Mutex mu_;  // One refresh at a time.
  int64_t loaded_version_ ABSL_GUARDED_BY(mu_) = -1;
  std::set<std::string> bad_records_ ABSL_GUARDED_BY(mu_);  // Logged once each.
  absl::Notification stop_;
  std::thread poller_;
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_KEY_DIRECTORY_H_
