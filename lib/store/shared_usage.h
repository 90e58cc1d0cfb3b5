// Concurrent requests and tokens per minute of a client key, kept in Redis
// so every orchestrator replica counts the same requests. A request admitted
// holds a lease (a member of a sorted set, scored by when it expires) with
// the tokens it may use at most; when it ends the lease goes and what it
// used enters a sliding one-minute window. A replica that dies while its
// requests run frees their share when their leases expire (their deadline
// plus a grace), without anyone cleaning up. Check and count are one Lua
// script each, atomic across replicas; the sums are kept beside the sets so
// an admission costs the entries that expired, not every entry of the
// minute. Times are the replicas' (an injected clock in tests).
#ifndef MOA_LIB_STORE_SHARED_USAGE_H_
#define MOA_LIB_STORE_SHARED_USAGE_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/store/redis_connection.h"

namespace moa::store {

// What a key may hold; -1 for no limit.
struct UsageLimits {
  int64_t concurrent = -1;
  int64_t tokens_per_minute = -1;
};

struct UsageDecision {
  enum class Refused { kNone, kConcurrent, kTokens };
  Refused refused = Refused::kNone;
  absl::Duration retry_after;  // When refused.
  // What the store counted before this request.
  int64_t running = 0;
  int64_t tokens_used = 0;      // Ended in the last minute.
  int64_t tokens_reserved = 0;  // Held by running requests.
  std::string lease;            // When admitted: give it back to Release.
};

// A request's tokens are clamped to this before they reach the store: an
// upstream's count is not trusted to fit the store's arithmetic.
inline constexpr int64_t kMaxCountedTokens = 1'000'000'000;

class SharedUsage {
 public:
  // `replica` tells this replica's leases apart (e.g. host and pid); the
  // connection must outlive this.
  SharedUsage(RedisConnection* store, std::string replica,
              absl::Duration window = absl::Minutes(1));

  // Admits a request of `key` that may use up to `estimate` tokens when
  // fewer than `limits.concurrent` requests hold leases and the tokens of
  // the window plus those reserved plus `estimate` stay within
  // `limits.tokens_per_minute`; then it holds a lease until `lease_until`.
  // Store errors are returned as they are (the caller's policy decides).
  absl::StatusOr<UsageDecision> Acquire(absl::string_view key, const UsageLimits& limits,
                                        int64_t estimate, absl::Time now, absl::Time lease_until);

  // Ends a request: its lease (empty when it had none) and the `estimate`
  // it reserved go; `tokens` used enter the window at `now` (-1: the key
  // counts no tokens).
  absl::Status Release(absl::string_view key, const std::string& lease, int64_t estimate,
                       int64_t tokens, absl::Time now);

 private:
  RedisConnection* const store_;
  const std::string replica_;
  const absl::Duration window_;
  std::atomic<int64_t> counter_{0};
};

// The Redis keys of `key`'s leases, token window and their sums (names are
// hashed, never stored; one hash tag, so a Redis Cluster keeps them in one
// slot as the scripts need).
std::string LeasesKey(absl::string_view key);
std::string TokenWindowKey(absl::string_view key);
std::string UsageSumsKey(absl::string_view key);

}  // namespace moa::store

#endif  // MOA_LIB_STORE_SHARED_USAGE_H_
