// Dollars spent per client key and UTC day and month, kept in Redis so every
// orchestrator replica sees the same spend and a restart of all of them
// forgets none of it. Day entries live 3 days, month entries 40 (enough to
// report the current and previous period).
#ifndef MOA_LIB_STORE_SHARED_SPEND_H_
#define MOA_LIB_STORE_SHARED_SPEND_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/store/redis_connection.h"

namespace moa::store {

struct Spent {
  double day = 0;    // In the UTC day of `now`.
  double month = 0;  // In the UTC month of `now`.
};

class SharedSpend {
 public:
  explicit SharedSpend(RedisConnection* store) : store_(store) {}

  // What `key` spent in the day and month of `now`.
  absl::StatusOr<Spent> Read(absl::string_view key, absl::Time now);
  // Adds `dollars` to `key`'s day and month of `now`.
  absl::Status Add(absl::string_view key, absl::Time now, double dollars);

 private:
  RedisConnection* const store_;
};

// The Redis keys of `key`'s spend in the day and month of `now` (names are
// hashed, never stored).
std::string DaySpendKey(absl::string_view key, absl::Time now);
std::string MonthSpendKey(absl::string_view key, absl::Time now);

}  // namespace moa::store

#endif  // MOA_LIB_STORE_SHARED_SPEND_H_
