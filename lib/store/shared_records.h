// Named records (JSON text, opaque here) in one Redis hash, with a version
// number every change increments. Readers poll the version (one GET) and
// read everything again only when it moved: how every orchestrator replica
// learns within a poll interval that a client key was added, limited or
// revoked. Every change is one Lua script, atomic across replicas.
#ifndef MOA_LIB_STORE_SHARED_RECORDS_H_
#define MOA_LIB_STORE_SHARED_RECORDS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/store/redis_connection.h"

namespace moa::store {

struct RecordSet {
  // 0 when the store holds no version: nothing was ever written, or the
  // store lost its data (restarted without persistence).
  int64_t version = 0;
  std::map<std::string, std::string> records;  // By name.
};

class SharedRecords {
 public:
  // `hash` is the Redis key of the records ("moa:keys"); the version lives
  // at hash + ":version". At most `max_records` records, each at most
  // `max_record_bytes`: reading them all stays within a reply's bounds.
  SharedRecords(RedisConnection* store, std::string hash, int64_t max_records,
                size_t max_record_bytes);

  absl::StatusOr<int64_t> Version();
  // The version and every record, read atomically.
  absl::StatusOr<RecordSet> ReadAll();
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view name);

  // Adds each record whose name the store does not hold; returns how many
  // were added. RESOURCE_EXHAUSTED when that would pass max_records (none
  // added then).
  absl::StatusOr<int> AddMissing(const std::map<std::string, std::string>& records);
  // Replaces `name`'s record when it still is `expected` (compare and set);
  // false when another writer changed it first, or it is gone.
  absl::StatusOr<bool> Replace(absl::string_view name, absl::string_view expected,
                               absl::string_view record);

  const std::string& hash() const { return hash_; }

 private:
  RedisConnection* const store_;
  const std::string hash_;
  const std::string version_key_;
  const int64_t max_records_;
  const size_t max_record_bytes_;
};

}  // namespace moa::store

#endif  // MOA_LIB_STORE_SHARED_RECORDS_H_
