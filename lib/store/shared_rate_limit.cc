#include "lib/store/shared_rate_limit.h"

#include "absl/strings/str_cat.h"
#include "lib/base/sha256.h"

namespace moa::store {
namespace {

// KEYS[1]: the window (a sorted set: member per request, score its time
// in ms). ARGV: now_ms, window_ms, limit, member. Returns {1, 0} when
// counted, {0, ms until the oldest entry leaves} when not.
constexpr char kScript[] = R"lua(
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
)lua";

}  // namespace

std::string RateWindowKey(absl::string_view key) {
  return absl::StrCat("moa:rpm:", Sha256Hex(key).substr(0, 32));
}

SharedRateLimit::SharedRateLimit(RedisConnection* store, std::string replica, absl::Duration window)
    : store_(store), replica_(std::move(replica)), window_(window) {}

absl::StatusOr<RateDecision> SharedRateLimit::Admit(absl::string_view key, int64_t limit,
                                                    absl::Time now) {
  const int64_t now_ms = absl::ToUnixMillis(now);
  const std::string member = absl::StrCat(replica_, ":", counter_.fetch_add(1));
  absl::StatusOr<RedisValue> r =
      store_->Eval(kScript, {RateWindowKey(key)},
                   {absl::StrCat(now_ms), absl::StrCat(absl::ToInt64Milliseconds(window_)),
                    absl::StrCat(limit), member});
  if (!r.ok()) return r.status();
  if (r->kind != RedisValue::Kind::kArray || r->elements.size() != 2 ||
      r->elements[0].kind != RedisValue::Kind::kInteger ||
      r->elements[1].kind != RedisValue::Kind::kInteger) {
    return absl::InternalError("the store's rate window answered in an unexpected shape");
  }
  RateDecision d;
  d.admitted = r->elements[0].integer == 1;
  d.retry_after = absl::Milliseconds(std::max<int64_t>(0, r->elements[1].integer));
  return d;
}

}  // namespace moa::store
