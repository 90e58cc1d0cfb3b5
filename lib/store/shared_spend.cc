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

std::string DayModelSpendKey(absl::string_view key, absl::Time now) {
  return absl::StrCat(DaySpendKey(key, now), ":models");
}

std::string MonthModelSpendKey(absl::string_view key, absl::Time now) {
  return absl::StrCat(MonthSpendKey(key, now), ":models");
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

absl::StatusOr<SpentByModel> SharedSpend::ReadByModel(absl::string_view key, absl::Time now) {
  SpentByModel out;
  for (auto [hash, into] : {std::pair{DayModelSpendKey(key, now), &out.day},
                            std::pair{MonthModelSpendKey(key, now), &out.month}}) {
    absl::StatusOr<RedisValue> r = store_->Command({"HGETALL", hash});
    if (!r.ok()) return r.status();
    if (r->kind != RedisValue::Kind::kArray || r->elements.size() % 2 != 0) {
      return absl::InternalError("the store answered HGETALL in an unexpected shape");
    }
    for (size_t i = 0; i < r->elements.size(); i += 2) {
      if (r->elements[i].kind != RedisValue::Kind::kString) {
        return absl::InternalError("the store holds a spend by model under no model name");
      }
      absl::StatusOr<double> d = Dollars(r->elements[i + 1]);
      if (!d.ok()) return d.status();
      (*into)[r->elements[i].text] = *d;
    }
  }
  return out;
}

absl::Status SharedSpend::Add(absl::string_view key, absl::Time now, double dollars,
                              const std::map<std::string, double>& by_model) {
  if (!(dollars > 0)) return absl::OkStatus();
  // One round trip: both periods added, each model's share to its field,
  // and their lifetimes set. ARGV: dollars, then model and dollars pairs.
  static const std::string kAdd = R"lua(
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 259200)
redis.call('INCRBYFLOAT', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], 3456000)
for i = 2, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBYFLOAT', KEYS[4], ARGV[i], ARGV[i + 1])
end
if #ARGV > 1 then
  redis.call('EXPIRE', KEYS[3], 259200)
  redis.call('EXPIRE', KEYS[4], 3456000)
end
return 1
)lua";
  std::vector<std::string> args = {absl::StrCat(dollars)};
  for (const auto& [model, d] : by_model) {
    if (!(d > 0)) continue;
    args.push_back(model);
    args.push_back(absl::StrCat(d));
  }
  absl::StatusOr<RedisValue> r =
      store_->Eval(kAdd,
                   {DaySpendKey(key, now), MonthSpendKey(key, now), DayModelSpendKey(key, now),
                    MonthModelSpendKey(key, now)},
                   args);
  return r.status();
}

}  // namespace moa::store
