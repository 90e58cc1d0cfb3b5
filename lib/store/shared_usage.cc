#include "lib/store/shared_usage.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "lib/base/sha256.h"

namespace moa::store {
namespace {

// Shared by both scripts (prepended): KEYS[1] the leases (member
// "replica:n:tokens", score its expiry in ms), KEYS[2] the token window
// (member "replica:n:tokens", score its end in ms), KEYS[3] the sums
// (fields reserved and used). A member's tokens are its last field.
constexpr char kCommon[] = R"lua(
local function amount(m) return tonumber(string.match(m, ':(%d+)$')) or 0 end
-- Drops the entries of KEYS[k] scored up to `upto` and their tokens from
-- the sum `field`; a set left empty zeroes its sum, so a sum that drifted
-- (an entry lost with its set) heals as soon as the key is idle.
local function expire(k, field, upto)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', upto)
  if #gone > 0 then
    local sum = 0
    for _, m in ipairs(gone) do sum = sum + amount(m) end
    redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', upto)
    -- (Not when 0: Lua would write it as -0, which HINCRBY refuses.)
    if sum > 0 then redis.call('HINCRBY', KEYS[3], field, -sum) end
  end
  if redis.call('ZCARD', KEYS[k]) == 0 then redis.call('HSET', KEYS[3], field, 0) end
end
local function sum(field)
  return math.max(0, tonumber(redis.call('HGET', KEYS[3], field) or '0') or 0)
end
-- All three live as long as the window or the longest lease.
local function keep(now, window)
  local ttl = window
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then ttl = math.max(ttl, tonumber(last[2]) - now) end
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], math.floor(ttl) + 1000) end
end
)lua";

// ARGV: now_ms, window_ms, concurrent (-1: none), tokens_per_minute (-1:
// none), estimate, lease_until_ms, lease member. Returns {admitted (1/0),
// refused by (0 none, 1 concurrent, 2 tokens), retry ms, running, used,
// reserved}, the counts from before this request.
constexpr char kAcquire[] = R"lua(
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local concurrent, tpm, estimate = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
expire(1, 'reserved', now)
expire(2, 'used', now - window)
local running = redis.call('ZCARD', KEYS[1])
local used, reserved = sum('used'), sum('reserved')
if concurrent >= 0 and running >= concurrent then
  return {0, 1, 1000, running, used, reserved}
end
if tpm >= 0 and used + reserved + estimate > tpm then
  local wait = 1000
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if oldest[2] then wait = math.max(1, tonumber(oldest[2]) + window - now) end
  return {0, 2, wait, running, used, reserved}
end
redis.call('ZADD', KEYS[1], ARGV[6], ARGV[7])
redis.call('HINCRBY', KEYS[3], 'reserved', ARGV[5])
keep(now, window)
return {1, 0, 0, running, used, reserved}
)lua";

// ARGV: now_ms, window_ms, lease member ('' for none), its tokens negated,
// tokens used, window member ('' when the key counts no tokens).
constexpr char kRelease[] = R"lua(
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[3] ~= '' and redis.call('ZREM', KEYS[1], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'reserved', ARGV[4])
end
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[2], now, ARGV[6])
  redis.call('HINCRBY', KEYS[3], 'used', ARGV[5])
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('HSET', KEYS[3], 'reserved', 0) end
keep(now, window)
return 1
)lua";

std::string Hashed(absl::string_view key) { return Sha256Hex(key).substr(0, 32); }

int64_t Clamped(int64_t tokens) { return std::clamp<int64_t>(tokens, 0, kMaxCountedTokens); }

}  // namespace

std::string LeasesKey(absl::string_view key) {
  return absl::StrCat("moa:usage:{", Hashed(key), "}:leases");
}
std::string TokenWindowKey(absl::string_view key) {
  return absl::StrCat("moa:usage:{", Hashed(key), "}:tokens");
}
std::string UsageSumsKey(absl::string_view key) {
  return absl::StrCat("moa:usage:{", Hashed(key), "}:sums");
}

SharedUsage::SharedUsage(RedisConnection* store, std::string replica, absl::Duration window)
    : store_(store), replica_(std::move(replica)), window_(window) {}

absl::StatusOr<UsageDecision> SharedUsage::Acquire(absl::string_view key, const UsageLimits& limits,
                                                   int64_t estimate, absl::Time now,
                                                   absl::Time lease_until) {
  estimate = Clamped(estimate);
  const int64_t now_ms = absl::ToUnixMillis(now);
  const std::string lease = absl::StrCat(replica_, ":", counter_.fetch_add(1), ":", estimate);
  static const std::string* const script = new std::string(absl::StrCat(kCommon, kAcquire));
  absl::StatusOr<RedisValue> r =
      store_->Eval(*script, {LeasesKey(key), TokenWindowKey(key), UsageSumsKey(key)},
                   {absl::StrCat(now_ms), absl::StrCat(absl::ToInt64Milliseconds(window_)),
                    absl::StrCat(limits.concurrent), absl::StrCat(limits.tokens_per_minute),
                    absl::StrCat(estimate),
                    absl::StrCat(std::max(now_ms, absl::ToUnixMillis(lease_until))), lease});
  if (!r.ok()) return r.status();
  if (r->kind != RedisValue::Kind::kArray || r->elements.size() != 6 ||
      !std::all_of(r->elements.begin(), r->elements.end(),
                   [](const RedisValue& v) { return v.kind == RedisValue::Kind::kInteger; })) {
    return absl::InternalError("the store's usage script answered in an unexpected shape");
  }
  UsageDecision d;
  const int64_t admitted = r->elements[0].integer;
  const int64_t by = r->elements[1].integer;
  if (admitted == 1) {
    d.lease = lease;
  } else if (by == 1) {
    d.refused = UsageDecision::Refused::kConcurrent;
  } else if (by == 2) {
    d.refused = UsageDecision::Refused::kTokens;
  } else {
    return absl::InternalError("the store's usage script refused for no known limit");
  }
  d.retry_after = absl::Milliseconds(std::max<int64_t>(0, r->elements[2].integer));
  d.running = std::max<int64_t>(0, r->elements[3].integer);
  d.tokens_used = std::max<int64_t>(0, r->elements[4].integer);
  d.tokens_reserved = std::max<int64_t>(0, r->elements[5].integer);
  return d;
}

absl::Status SharedUsage::Release(absl::string_view key, const std::string& lease, int64_t estimate,
                                  int64_t tokens, absl::Time now) {
  static const std::string* const script = new std::string(absl::StrCat(kCommon, kRelease));
  const std::string member =
      tokens < 0 ? "" : absl::StrCat(replica_, ":", counter_.fetch_add(1), ":", Clamped(tokens));
  absl::StatusOr<RedisValue> r = store_->Eval(
      *script, {LeasesKey(key), TokenWindowKey(key), UsageSumsKey(key)},
      {absl::StrCat(absl::ToUnixMillis(now)), absl::StrCat(absl::ToInt64Milliseconds(window_)),
       lease, absl::StrCat(-Clamped(estimate)), absl::StrCat(Clamped(tokens)), member});
  return r.status();
}

}  // namespace moa::store
