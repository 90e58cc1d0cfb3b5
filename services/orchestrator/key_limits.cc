#include "services/orchestrator/key_limits.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "lib/base/log.h"
#include "lib/base/retry_after.h"

namespace moa::orchestrator {
namespace {

constexpr absl::Duration kWindow = absl::Minutes(1);

int64_t DayOf(absl::Time t) { return absl::ToUnixSeconds(t) / 86400; }

int64_t MonthOf(absl::Time t) {
  absl::CivilMonth m = absl::ToCivilMonth(t, absl::UTCTimeZone());
  return (m.year() - 1970) * 12 + (m.month() - 1);
}

absl::Time NextMonth(absl::Time t) {
  absl::CivilMonth m = absl::ToCivilMonth(t, absl::UTCTimeZone()) + 1;
  return absl::FromCivil(m, absl::UTCTimeZone());
}

// Whether a day or month spend reached the key's budget; then which, until
// when, and why, in the refusal's words.
bool BudgetReached(const KeyLimits& l, double day, double month, absl::Time now, const char** limit,
                   absl::Duration* wait, std::string* detail) {
  if (l.budget_dollars_per_day && day >= *l.budget_dollars_per_day) {
    *limit = "budget_dollars_per_day";
    *wait = absl::FromUnixSeconds((DayOf(now) + 1) * 86400) - now;
    *detail = absl::StrCat("$", day, " of $", *l.budget_dollars_per_day, " spent today (UTC)");
    return true;
  }
  if (l.budget_dollars_per_month && month >= *l.budget_dollars_per_month) {
    *limit = "budget_dollars_per_month";
    *wait = NextMonth(now) - now;
    *detail =
        absl::StrCat("$", month, " of $", *l.budget_dollars_per_month, " spent this month (UTC)");
    return true;
  }
  return false;
}

}  // namespace

int64_t EstimateTokens(const MoaCall::Options& options) {
  int64_t conversation_bytes = 0;
  for (const llm::Message& m : options.conversation) {
    conversation_bytes += static_cast<int64_t>(m.content.size());
  }
  const int64_t prompt = (conversation_bytes + 3) / 4;
  const int64_t answer = options.pipeline.params.max_tokens
                             ? std::max<int64_t>(0, *options.pipeline.params.max_tokens)
                             : kUnboundedAnswerTokens;
  // Every call reads the conversation and writes up to `answer` tokens; a
  // call after the first layer also reads the texts of the layer before.
  int64_t total = 0;
  size_t previous = 0;
  for (const auto& layer : options.pipeline.layers) {
    total += static_cast<int64_t>(layer.size()) *
             (prompt + answer + static_cast<int64_t>(previous) * answer);
    if (!layer.empty()) previous = layer.size();
  }
  total += prompt + answer + static_cast<int64_t>(previous) * answer;  // The final answer.
  return total;
}

KeyLimiter::KeyLimiter(const Clock* clock, prometheus::Registry& registry, SharedLimits shared)
    : clock_(clock),
      shared_(shared),
      store_errors_(prometheus::BuildCounter()
                        .Name("moa_limit_store_errors_total")
                        .Help("Admissions the shared limit store could not decide (unreachable, "
                              "slow or malformed); store.failure says what happened to them.")
                        .Register(registry)
                        .Add({})),
      store_seconds_(
          prometheus::BuildHistogram()
              .Name("moa_limit_store_seconds")
              .Help("Time an admission or a spend update waited on the shared limit "
                    "store, per command.")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01,
                                                               0.02, 0.05, 0.1, 0.2})),
      limited_(prometheus::BuildCounter()
                   .Name("moa_key_limited_total")
                   .Help("Requests refused because their client key reached a limit.")
                   .Register(registry)),
      budget_used_(prometheus::BuildGauge()
                       .Name("moa_key_budget_used_ratio")
                       .Help("Share of a client key's budget spent in the current UTC day or "
                             "month, on this replica.")
                       .Register(registry)) {}

void KeyLimiter::ExpireLocked(Usage& u, absl::Time now) {
  while (!u.starts.empty() && u.starts.front() <= now - kWindow) u.starts.pop_front();
  while (!u.tokens.empty() && u.tokens.front().first <= now - kWindow) {
    u.tokens_in_window -= u.tokens.front().second;
    u.tokens.pop_front();
  }
  if (u.day != DayOf(now)) {
    u.day = DayOf(now);
    u.day_dollars = 0;
  }
  if (u.month != MonthOf(now)) {
    u.month = MonthOf(now);
    u.month_dollars = 0;
  }
}

KeyLimiter::LocalUsage KeyLimiter::Local(const ApiKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = usage_.find(key.name);
  if (it == usage_.end()) return {};
  Usage& u = it->second;
  ExpireLocked(u, clock_->Now());
  return {.in_flight = u.in_flight,
          .requests_last_minute = static_cast<int>(u.starts.size()),
          .tokens_last_minute = u.tokens_in_window,
          .today_dollars = u.day_dollars,
          .this_month_dollars = u.month_dollars};
}

absl::Status KeyLimiter::Refuse(const ApiKey& key, const char* limit, absl::Duration retry_after,
                                const std::string& message) {
  limited_.Add({{"key", key.name}, {"limit", limit}}).Increment();
  absl::Status s = absl::ResourceExhaustedError(
      absl::StrCat("key '", key.name, "' reached its ", limit, " limit: ", message, "; retry in ",
                   absl::FormatDuration(absl::Ceil(retry_after, absl::Seconds(1)))));
  SetRetryAfter(s, std::max(retry_after, absl::Seconds(1)));
  return s;
}

absl::Status KeyLimiter::Admit(const ApiKey& key, MoaCall::Options* options) {
  const KeyLimits& l = key.limits;
  // A request that named a route is allowed by the route's name: a key
  // allowed `auto` runs whichever pipeline the route chooses.
  const std::string& pipeline = options->route ? options->route->route() : options->pipeline.name;
  if (!l.pipelines.empty() &&
      std::find(l.pipelines.begin(), l.pipelines.end(), pipeline) == l.pipelines.end()) {
    limited_.Add({{"key", key.name}, {"limit", "pipelines"}}).Increment();
    return absl::PermissionDeniedError(
        absl::StrCat("key '", key.name, "' may not use pipeline '", pipeline,
                     "' (allowed: ", absl::StrJoin(l.pipelines, ", "), ")"));
  }
  const absl::Time now = clock_->Now();
  const int64_t estimate = l.tokens_per_minute ? EstimateTokens(*options) : 0;
  // With the store deciding concurrent_requests and tokens_per_minute, this
  // replica still counts its own requests (store.failure: open decides on
  // them) but does not refuse by them.
  const bool shared_usage = SharedUsageApplies(l);
  // Decided under the lock; the metric and the status are made after it.
  const char* limit = nullptr;
  absl::Duration wait;
  std::string detail;
  {
    absl::MutexLock lock(&mu_);
    Usage& u = usage_[key.name];
    ExpireLocked(u, now);
    if (l.concurrent_requests && !shared_usage && u.in_flight >= *l.concurrent_requests) {
      limit = "concurrent_requests";
      wait = absl::Seconds(1);
      detail = absl::StrCat(u.in_flight, " of ", *l.concurrent_requests, " requests running");
    } else if (l.requests_per_minute && shared_.requests_per_minute == nullptr &&
               static_cast<int>(u.starts.size()) >= *l.requests_per_minute) {
      limit = "requests_per_minute";
      wait = u.starts.front() + kWindow - now;
      detail = absl::StrCat(u.starts.size(), " requests in the last minute");
    } else if (l.tokens_per_minute && estimate > *l.tokens_per_minute) {
      limit = "tokens_per_minute";
      wait = kWindow;
      detail = absl::StrCat("this request may use up to ", estimate,
                            " tokens, more than the key's ", *l.tokens_per_minute,
                            " a minute; lower max_tokens or shorten the conversation");
    } else if (l.tokens_per_minute && !shared_usage &&
               u.tokens_in_window + u.tokens_reserved + estimate > *l.tokens_per_minute) {
      limit = "tokens_per_minute";
      // When the oldest counted tokens leave the window, or (everything
      // being reserved by requests still running) in a second.
      wait = u.tokens.empty() ? absl::Seconds(1) : u.tokens.front().first + kWindow - now;
      detail =
          absl::StrCat(u.tokens_in_window, " tokens in the last minute and ", u.tokens_reserved,
                       " reserved by running requests; this one may use ", estimate);
    } else if (shared_.spend == nullptr &&
               BudgetReached(l, u.day_dollars, u.month_dollars, now, &limit, &wait, &detail)) {
      // Decided above (the store decides budgets when there is one).
    } else {
      ++u.in_flight;
      // Only what a limit reads is kept: the windows hold at most a
      // minute of one key's requests.
      if (l.requests_per_minute && shared_.requests_per_minute == nullptr) {
        u.starts.push_back(now);
      }
      if (l.tokens_per_minute) u.tokens_reserved += estimate;
    }
  }
  if (limit != nullptr) return Refuse(key, limit, wait, detail);
  const int64_t reserved_tokens = l.tokens_per_minute ? estimate : 0;
  if ((l.budget_dollars_per_day || l.budget_dollars_per_month) && shared_.spend != nullptr) {
    if (absl::Status s = AdmitSharedSpend(key, reserved_tokens, now); !s.ok()) return s;
  }
  // The lease last of the decisions that hold nothing, the request window
  // after it (one that counts the request): a refusal there gives the
  // lease back.
  std::string lease;
  if (shared_usage) {
    if (absl::Status s = AdmitSharedUsage(key, reserved_tokens, now, options->deadline, &lease);
        !s.ok()) {
      return s;
    }
  }
  if (l.requests_per_minute && shared_.requests_per_minute != nullptr) {
    if (absl::Status s = AdmitShared(key, reserved_tokens, now); !s.ok()) {
      if (!lease.empty()) ReleaseLease(key, lease, reserved_tokens, -1, now);
      return s;
    }
  }
  options->key_name = key.name;
  // A copy: the key's directory may be replaced while the call runs.
  ApiKey counted = key;
  options->on_spent = [this, counted = std::move(counted), reserved = reserved_tokens,
                       lease = std::move(lease)](const Spending& spent) {
    Finish(counted, reserved, lease, spent);
  };
  return absl::OkStatus();
}

absl::Status KeyLimiter::StoreClosed(const ApiKey& key, const absl::Status& error) {
  return absl::UnavailableError(absl::StrCat("the shared limit store cannot decide key '", key.name,
                                             "' (store.failure: closed): ", error.message(),
                                             "; retry shortly"));
}

absl::Status KeyLimiter::AdmitSharedUsage(const ApiKey& key, int64_t reserved, absl::Time now,
                                          absl::Time deadline, std::string* lease) {
  const KeyLimits& l = key.limits;
  store::UsageLimits limits;
  if (l.concurrent_requests) limits.concurrent = *l.concurrent_requests;
  if (l.tokens_per_minute) limits.tokens_per_minute = *l.tokens_per_minute;
  const absl::Time lease_until = std::min(deadline + kLeaseGrace, now + kMaxLease);
  absl::StatusOr<store::UsageDecision> d = AskStore(
      [&] { return shared_.usage->Acquire(key.sha256, limits, reserved, now, lease_until); });
  if (d.ok() && d->refused == store::UsageDecision::Refused::kNone) {
    *lease = d->lease;
    return absl::OkStatus();
  }
  // Decided under the lock; the status is made after it.
  const char* limit = nullptr;
  absl::Duration wait = absl::Seconds(1);
  std::string detail;
  {
    absl::MutexLock lock(&mu_);
    Usage& u = usage_[key.name];
    if (d.ok()) {
      if (d->refused == store::UsageDecision::Refused::kConcurrent) {
        limit = "concurrent_requests";
        detail = absl::StrCat(d->running, " of ", *l.concurrent_requests,
                              " requests running across the cluster");
      } else {
        limit = "tokens_per_minute";
        wait = d->retry_after;
        detail = absl::StrCat(d->tokens_used, " tokens in the last minute and ", d->tokens_reserved,
                              " reserved by running requests across the cluster; this one may "
                              "use ",
                              reserved);
      }
    } else if (!shared_.fail_closed) {
      // store.failure: open — this replica decides alone, as without a
      // store; its counts already hold this request.
      if (l.concurrent_requests && u.in_flight > *l.concurrent_requests) {
        limit = "concurrent_requests";
        detail = absl::StrCat(u.in_flight - 1, " of ", *l.concurrent_requests,
                              " requests running on this replica (the shared store is "
                              "unreachable)");
      } else if (l.tokens_per_minute &&
                 u.tokens_in_window + u.tokens_reserved > *l.tokens_per_minute) {
        limit = "tokens_per_minute";
        wait = u.tokens.empty() ? absl::Seconds(1) : u.tokens.front().first + kWindow - now;
        detail = absl::StrCat(u.tokens_in_window, " tokens in the last minute and ",
                              u.tokens_reserved - reserved,
                              " reserved by running requests on this replica (the shared store "
                              "is unreachable); this one may use ",
                              reserved);
      } else {
        return absl::OkStatus();
      }
    }
    UndoLocked(u, reserved);
  }
  if (!d.ok() && shared_.fail_closed) return StoreClosed(key, d.status());
  return Refuse(key, limit, wait, detail);
}

void KeyLimiter::ReleaseLease(const ApiKey& key, const std::string& lease, int64_t reserved,
                              int64_t tokens, absl::Time now) {
  // A lease not given back expires with its deadline.
  (void)AskStore([&] { return shared_.usage->Release(key.sha256, lease, reserved, tokens, now); });
}

absl::Status KeyLimiter::AdmitSharedSpend(const ApiKey& key, int64_t reserved, absl::Time now) {
  absl::StatusOr<store::Spent> spent =
      AskStore([&] { return shared_.spend->Read(key.sha256, now); });
  const char* limit = nullptr;
  absl::Duration wait;
  std::string detail;
  if (spent.ok()) {
    if (!BudgetReached(key.limits, spent->day, spent->month, now, &limit, &wait, &detail)) {
      return absl::OkStatus();
    }
    absl::StrAppend(&detail, " across the cluster");
  }
  {
    absl::MutexLock lock(&mu_);
    Usage& u = usage_[key.name];
    if (!spent.ok() && !shared_.fail_closed &&
        !BudgetReached(key.limits, u.day_dollars, u.month_dollars, now, &limit, &wait, &detail)) {
      return absl::OkStatus();  // store.failure: open, and this replica's spend allows it.
    }
    UndoLocked(u, reserved);
  }
  if (!spent.ok() && shared_.fail_closed) return StoreClosed(key, spent.status());
  if (!spent.ok()) absl::StrAppend(&detail, " on this replica (the shared store is unreachable)");
  return Refuse(key, limit, wait, detail);
}

void KeyLimiter::StoreResult(const absl::Status& status) {
  if (status.ok()) {
    if (store_failing_.exchange(false)) LogInfo("limits", "the shared limit store answers again");
    return;
  }
  store_errors_.Increment();
  if (!store_failing_.exchange(true)) {
    LogWarning("limits", "the shared limit store cannot decide admissions (",
               shared_.fail_closed ? "store.failure: closed, refusing them"
                                   : "store.failure: open, each replica decides alone",
               "): ", status.message());
  }
}

void KeyLimiter::UndoLocked(Usage& u, int64_t reserved) {
  u.in_flight = std::max(0, u.in_flight - 1);
  u.tokens_reserved = std::max<int64_t>(0, u.tokens_reserved - reserved);
}

absl::Status KeyLimiter::AdmitShared(const ApiKey& key, int64_t reserved, absl::Time now) {
  const int64_t limit = *key.limits.requests_per_minute;
  // The store is asked outside the lock: a slow store delays this request
  // only (by at most its timeout), never another key's.
  absl::StatusOr<store::RateDecision> d =
      AskStore([&] { return shared_.requests_per_minute->Admit(key.sha256, limit, now); });
  if (d.ok() && d->admitted) return absl::OkStatus();
  if (d.ok()) {
    {
      absl::MutexLock lock(&mu_);
      UndoLocked(usage_[key.name], reserved);
    }
    return Refuse(key, "requests_per_minute", d->retry_after,
                  absl::StrCat(limit, " requests in the last minute across the cluster"));
  }
  // Decided under the lock; the status is made after it.
  bool refused = false;
  size_t counted = 0;
  absl::Duration wait;
  {
    absl::MutexLock lock(&mu_);
    Usage& u = usage_[key.name];
    if (shared_.fail_closed) {
      UndoLocked(u, reserved);
    } else if (static_cast<int>(u.starts.size()) >= limit) {
      // store.failure: open — this replica decides alone, as without a store.
      UndoLocked(u, reserved);
      refused = true;
      counted = u.starts.size();
      wait = u.starts.front() + kWindow - now;
    } else {
      u.starts.push_back(now);
    }
  }
  if (shared_.fail_closed) return StoreClosed(key, d.status());
  if (refused) {
    return Refuse(key, "requests_per_minute", wait,
                  absl::StrCat(counted,
                               " requests in the last minute on this replica (the "
                               "shared store is unreachable)"));
  }
  return absl::OkStatus();
}

void KeyLimiter::Finish(const ApiKey& key, int64_t reserved, const std::string& lease,
                        const Spending& spent) {
  const int64_t tokens = spent.tokens;
  const double dollars = spent.dollars;
  const absl::Time now = clock_->Now();
  double day, month;
  {
    absl::MutexLock lock(&mu_);
    Usage& u = usage_[key.name];
    ExpireLocked(u, now);
    u.in_flight = std::max(0, u.in_flight - 1);
    u.tokens_reserved = std::max<int64_t>(0, u.tokens_reserved - reserved);
    if (key.limits.tokens_per_minute) {
      u.tokens.emplace_back(now, tokens);
      u.tokens_in_window += tokens;
    }
    u.day_dollars += dollars;
    u.month_dollars += dollars;
    day = u.day_dollars;
    month = u.month_dollars;
  }
  // After the lock: the store (bounded by its timeout) and Family::Add,
  // which takes the family's own lock.
  if (SharedUsageApplies(key.limits) && (!lease.empty() || key.limits.tokens_per_minute)) {
    ReleaseLease(key, lease, reserved, key.limits.tokens_per_minute ? tokens : -1, now);
  }
  if (shared_.spend != nullptr) {
    // This replica still counts it (store.failure: open decides on it).
    (void)AskStore(
        [&] { return shared_.spend->Add(key.sha256, now, dollars, spent.dollars_by_model); });
  }
  const KeyLimits& l = key.limits;
  if (l.budget_dollars_per_day && *l.budget_dollars_per_day > 0) {
    budget_used_.Add({{"key", key.name}, {"period", "day"}}).Set(day / *l.budget_dollars_per_day);
  }
  if (l.budget_dollars_per_month && *l.budget_dollars_per_month > 0) {
    budget_used_.Add({{"key", key.name}, {"period", "month"}})
        .Set(month / *l.budget_dollars_per_month);
  }
}

}  // namespace moa::orchestrator
