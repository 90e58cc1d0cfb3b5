// A sliding one-minute window of requests per client key, kept in Redis so
// every orchestrator replica counts the same requests: N replicas admit
// exactly what one would. The check and the count are one Lua script, so
// they are atomic across replicas. Time is the replica's (an injected clock
// in tests): replicas' clocks must agree to well within the window (NTP).
#ifndef MOA_LIB_STORE_SHARED_RATE_LIMIT_H_
#define MOA_LIB_STORE_SHARED_RATE_LIMIT_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/store/redis_connection.h"

namespace moa::store {

struct RateDecision {
  bool admitted = false;
  absl::Duration retry_after;  // When refused: until the oldest request leaves the window.
};

class SharedRateLimit {
 public:
  // `replica` tells this replica's entries apart (e.g. host and pid); the
  // connection must outlive this.
  SharedRateLimit(RedisConnection* store, std::string replica,
                  absl::Duration window = absl::Minutes(1));

  // Counts a request of `key` at `now` when fewer than `limit` were counted
  // in the window before it. Store errors are returned as they are (the
  // caller's failure policy decides).
  absl::StatusOr<RateDecision> Admit(absl::string_view key, int64_t limit, absl::Time now);

 private:
  RedisConnection* const store_;
  const std::string replica_;
  const absl::Duration window_;
  std::atomic<int64_t> counter_{0};
};

// The Redis key of `key`'s request window (names are hashed, never stored).
std::string RateWindowKey(absl::string_view key);

}  // namespace moa::store

#endif  // MOA_LIB_STORE_SHARED_RATE_LIMIT_H_
