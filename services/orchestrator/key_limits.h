// What each client key may spend on one orchestrator replica: requests and
// tokens per minute, concurrent requests, pipelines, and dollars per UTC
// day and month. Decided under one lock on an injected clock; the windows
// slide over the last 60 s. With several replicas each enforces its own
// share (docs/keys-and-budgets.md, "Client keys, limits and budgets").
#ifndef MOA_SERVICES_ORCHESTRATOR_KEY_LIMITS_H_
#define MOA_SERVICES_ORCHESTRATOR_KEY_LIMITS_H_

#include <atomic>
#include <deque>
#include <map>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "lib/base/clock.h"
#include "lib/store/shared_rate_limit.h"
#include "lib/store/shared_spend.h"
#include "lib/store/shared_usage.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/orchestrator/api_keys.h"
#include "services/orchestrator/engine/moa_call.h"

namespace moa::orchestrator {

// A request's tokens are known only when it ends, so tokens_per_minute
// admits against a reservation: what the request may use at most, held
// while it runs and replaced by what it used when it ends. Every model call
// reads the conversation (bytes / 4 tokens) and writes up to max_tokens
// (kUnboundedAnswerTokens when the request sets none); a call after the
// first layer also reads each text of the layer before it.
inline constexpr int64_t kUnboundedAnswerTokens = 1024;
int64_t EstimateTokens(const MoaCall::Options& options);

// A request's hold on concurrent_requests and tokens_per_minute in the
// shared store lasts until its deadline plus this grace, at most
// kMaxLease: a replica that dies with requests running frees their share
// then, with nobody cleaning up.
inline constexpr absl::Duration kLeaseGrace = absl::Seconds(10);
inline constexpr absl::Duration kMaxLease = absl::Minutes(15);

// Limits kept in the shared store (config `store:`), decided there for
// every replica at once; the rest stay per replica.
struct SharedLimits {
  store::SharedRateLimit* requests_per_minute = nullptr;  // Unset: per replica.
  store::SharedSpend* spend = nullptr;  // Day and month budgets; unset: per replica.
  // concurrent_requests and tokens_per_minute; unset: per replica.
  store::SharedUsage* usage = nullptr;
  // When the store cannot answer: refuse (true, a named UNAVAILABLE) or
  // decide on this replica alone (false, counted in
  // moa_limit_store_errors_total).
  bool fail_closed = false;
};

class KeyLimiter {
 public:
  // `registry` gets moa_key_limited_total{key,limit} and
  // moa_key_budget_used_ratio{key,period} (keys with a budget); both must
  // outlive the limiter and the calls it admitted.
  KeyLimiter(const Clock* clock, prometheus::Registry& registry, SharedLimits shared = {});

  // Counts the request in when the key's limits allow it (its token
  // estimate reserved), and makes the
  // call report its tokens and cost back at its end (options->on_spent)
  // and name the key in its metrics and log line. Otherwise
  // PERMISSION_DENIED for a pipeline the key may not use, or
  // RESOURCE_EXHAUSTED naming the limit, with the time until it would allow
  // the request as its retry delay (SetRetryAfter).
  absl::Status Admit(const ApiKey& key, MoaCall::Options* options);

  // A request counted in by Admit, holding `reserved` tokens (and `lease`
  // in the shared store, when it got one), ended having spent `spent`.
  void Finish(const ApiKey& key, int64_t reserved, const std::string& lease, const Spending& spent);

  // What this replica counted for a key (the operator pages): requests
  // running and started in the last minute, tokens in the last minute, and
  // dollars today and this month. A shared store's totals are read from
  // the admin API instead.
  struct LocalUsage {
    int in_flight = 0;
    int requests_last_minute = 0;
    int64_t tokens_last_minute = 0;
    double today_dollars = 0;
    double this_month_dollars = 0;
  };
  LocalUsage Local(const ApiKey& key);

 private:
  struct Usage {
    int in_flight = 0;
    std::deque<absl::Time> starts;                      // In the last minute.
    std::deque<std::pair<absl::Time, int64_t>> tokens;  // Ends in the last minute.
    int64_t tokens_in_window = 0;
    int64_t tokens_reserved = 0;  // By requests admitted and still running.
    int64_t day = -1;             // UTC day number of day_dollars.
    double day_dollars = 0;
    int64_t month = -1;  // Months since 1970 of month_dollars.
    double month_dollars = 0;
  };
  void ExpireLocked(Usage& u, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Refuse(const ApiKey& key, const char* limit, absl::Duration retry_after,
                      const std::string& message);

  // Asks the store about `key`'s request window, after the local limits
  // admitted the request (undone when the store refuses it).
  absl::Status AdmitShared(const ApiKey& key, int64_t reserved, absl::Time now);
  // The same for the key's day and month budgets, read from the store.
  absl::Status AdmitSharedSpend(const ApiKey& key, int64_t reserved, absl::Time now);
  // The same for concurrent_requests and tokens_per_minute; an admitted
  // request's lease in the store is put in `lease` (empty when the store
  // could not be asked and store.failure: open let this replica decide).
  absl::Status AdmitSharedUsage(const ApiKey& key, int64_t reserved, absl::Time now,
                                absl::Time deadline, std::string* lease);
  // Gives a lease (empty: none) and its `reserved` tokens back and counts
  // `tokens` used in the shared window (-1: none, e.g. the request was
  // refused after it got the lease).
  void ReleaseLease(const ApiKey& key, const std::string& lease, int64_t reserved, int64_t tokens,
                    absl::Time now);
  // Whether the store decides `limits`' concurrent_requests and
  // tokens_per_minute.
  bool SharedUsageApplies(const KeyLimits& limits) const {
    return shared_.usage != nullptr && (limits.concurrent_requests || limits.tokens_per_minute);
  }
  // Runs one call to the store, outside any lock: times it in
  // moa_limit_store_seconds (real time: what the request waited) and counts
  // its result (StoreResult). Returns what the call returned.
  template <typename Call>
  auto AskStore(Call call) {
    const absl::Time asked = absl::Now();
    auto result = call();
    store_seconds_.Observe(absl::ToDoubleSeconds(absl::Now() - asked));
    if constexpr (std::is_same_v<decltype(result), absl::Status>) {
      StoreResult(result);
    } else {
      StoreResult(result.status());
    }
    return result;
  }
  // The named UNAVAILABLE of store.failure: closed.
  static absl::Status StoreClosed(const ApiKey& key, const absl::Status& error);
  void UndoLocked(Usage& u, int64_t reserved) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a store failure or success; logs when failures start and end
  // (one line each way, not one per request).
  void StoreResult(const absl::Status& status);

  const Clock* const clock_;
  const SharedLimits shared_;
  prometheus::Counter& store_errors_;
  prometheus::Histogram& store_seconds_;
  std::atomic<bool> store_failing_{false};
  prometheus::Family<prometheus::Counter>& limited_;
  prometheus::Family<prometheus::Gauge>& budget_used_;
  absl::Mutex mu_;
  std::map<std::string, Usage> usage_ ABSL_GUARDED_BY(mu_);  // By key name.
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_KEY_LIMITS_H_
