#include "lib/store/shared_spend.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "lib/base/sha256.h"

namespace moa::store {
namespace {

std::string Hashed(absl::string_view key) { return Sha256Hex(key).substr(0, 32); }

// A spend value the store holds: a decimal number, or nothing yet.
absl::StatusOr<double> Dollars(const RedisValue& v) {
  if (v.kind == RedisValue::Kind::kNil) return 0.0;
  double d = 0;
  if (v.kind != RedisValue::Kind::kString || !absl::SimpleAtod(v.text, &d) || !(d >= 0)) {
    return absl::InternalError("the store holds a spend that is no non-negative number");
  }
  return d;
}

}  // namespace

std::string DaySpendKey(absl::string_view key, absl::Time now) {
  return absl::StrCat("moa:spend:", Hashed(key),
                      ":day:", absl::FormatCivilTime(absl::ToCivilDay(now, absl::UTCTimeZone())));
}

std::string MonthSpendKey(absl::string_view key, absl::Time now) {
  return absl::StrCat("moa:spend:", Hashed(key), ":month:",
                      absl::FormatCivilTime(absl::ToCivilMonth(now, absl::UTCTimeZone())));
}

absl::StatusOr<Spent> SharedSpend::Read(absl::string_view key, absl::Time now) {
  absl::StatusOr<RedisValue> r =
      store_->Command({"MGET", DaySpendKey(key, now), MonthSpendKey(key, now)});
  if (!r.ok()) return r.status();
  if (r->kind != RedisValue::Kind::kArray || r->elements.size() != 2) {
    return absl::InternalError("the store answered MGET in an unexpected shape");
  }
  absl::StatusOr<double> day = Dollars(r->elements[0]);
  absl::StatusOr<double> month = Dollars(r->elements[1]);
  if (!day.ok()) return day.status();
  if (!month.ok()) return month.status();
  return Spent{*day, *month};
}

absl::Status SharedSpend::Add(absl::string_view key, absl::Time now, double dollars) {
  if (!(dollars > 0)) return absl::OkStatus();
  // One round trip: both periods added and their lifetimes set.
  static const std::string kAdd = R"lua(
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 259200)
redis.call('INCRBYFLOAT', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], 3456000)
return 1
)lua";
  absl::StatusOr<RedisValue> r =
      store_->Eval(kAdd, {DaySpendKey(key, now), MonthSpendKey(key, now)}, {absl::StrCat(dollars)});
  return r.status();
}

}  // namespace moa::store
