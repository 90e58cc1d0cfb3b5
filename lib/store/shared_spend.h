// Dollars spent per client key and UTC day and month, in total and by
// model, kept in Redis so every orchestrator replica sees the same spend and
// a restart of all of them forgets none of it. Day entries live 3 days,
// month entries 40 (enough to report the current and previous period).
#ifndef MOA_LIB_STORE_SHARED_SPEND_H_
#define MOA_LIB_STORE_SHARED_SPEND_H_

#include <map>
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

struct SpentByModel {
  std::map<std::string, double> day;  // Model name → dollars in the UTC day of `now`.
  std::map<std::string, double> month;
};

class SharedSpend {
 public:
  explicit SharedSpend(RedisConnection* store) : store_(store) {}

  // What `key` spent in the day and month of `now`.
  absl::StatusOr<Spent> Read(absl::string_view key, absl::Time now);
  // What `key` spent by model in the day and month of `now` (for reports;
  // admissions read only the totals).
  absl::StatusOr<SpentByModel> ReadByModel(absl::string_view key, absl::Time now);
  // Adds `dollars` to `key`'s day and month of `now`, and each model's
  // share to the model's (one round trip).
  absl::Status Add(absl::string_view key, absl::Time now, double dollars,
                   const std::map<std::string, double>& by_model = {});

 private:
  RedisConnection* const store_;
};

// The Redis keys of `key`'s spend in the day and month of `now` (names are
// hashed, never stored).
std::string DaySpendKey(absl::string_view key, absl::Time now);
std::string MonthSpendKey(absl::string_view key, absl::Time now);
// The hashes of `key`'s spend by model (field: the model's name).
std::string DayModelSpendKey(absl::string_view key, absl::Time now);
std::string MonthModelSpendKey(absl::string_view key, absl::Time now);

}  // namespace moa::store

#endif  // MOA_LIB_STORE_SHARED_SPEND_H_
