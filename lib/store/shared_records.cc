#include "lib/store/shared_records.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace moa::store {
namespace {

absl::Status Shape(absl::string_view what) {
  return absl::InternalError(absl::StrCat("the store answered ", what, " in an unexpected shape"));
}

}  // namespace

SharedRecords::SharedRecords(RedisConnection* store, std::string hash, int64_t max_records,
                             size_t max_record_bytes)
    : store_(store),
      hash_(std::move(hash)),
      version_key_(hash_ + ":version"),
      max_records_(max_records),
      max_record_bytes_(max_record_bytes) {}

absl::StatusOr<int64_t> SharedRecords::Version() {
  absl::StatusOr<RedisValue> r = store_->Command({"GET", version_key_});
  if (!r.ok()) return r.status();
  if (r->kind == RedisValue::Kind::kNil) return 0;
  int64_t v = 0;
  if (r->kind != RedisValue::Kind::kString || !absl::SimpleAtoi(r->text, &v) || v < 0) {
    return Shape("the records' version");
  }
  return v;
}

absl::StatusOr<RecordSet> SharedRecords::ReadAll() {
  static const std::string kRead = R"lua(
return {redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[1])}
)lua";
  absl::StatusOr<RedisValue> r = store_->Eval(kRead, {hash_, version_key_}, {});
  if (!r.ok()) return r.status();
  if (r->kind != RedisValue::Kind::kArray || r->elements.size() != 2 ||
      r->elements[0].kind != RedisValue::Kind::kString ||
      r->elements[1].kind != RedisValue::Kind::kArray || r->elements[1].elements.size() % 2 != 0) {
    return Shape("the records");
  }
  RecordSet set;
  if (!absl::SimpleAtoi(r->elements[0].text, &set.version) || set.version < 0) {
    return Shape("the records' version");
  }
  const std::vector<RedisValue>& kv = r->elements[1].elements;
  if (static_cast<int64_t>(kv.size() / 2) > max_records_) {
    return absl::InternalError(
        absl::StrCat("the store holds more than ", max_records_, " in ", hash_));
  }
  for (size_t i = 0; i < kv.size(); i += 2) {
    if (kv[i].kind != RedisValue::Kind::kString || kv[i + 1].kind != RedisValue::Kind::kString) {
      return Shape("a record");
    }
    set.records[kv[i].text] = kv[i + 1].text;
  }
  return set;
}

absl::StatusOr<std::optional<std::string>> SharedRecords::Get(absl::string_view name) {
  absl::StatusOr<RedisValue> r = store_->Command({"HGET", hash_, std::string(name)});
  if (!r.ok()) return r.status();
  if (r->kind == RedisValue::Kind::kNil) return std::optional<std::string>();
  if (r->kind != RedisValue::Kind::kString) return Shape("a record");
  return std::optional<std::string>(r->text);
}

absl::StatusOr<int> SharedRecords::AddMissing(const std::map<std::string, std::string>& records) {
  if (records.empty()) return 0;
  // ARGV: the bound, then name and record pairs. -1: over the bound.
  static const std::string kAdd = R"lua(
local missing = 0
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then missing = missing + 1 end
end
if redis.call('HLEN', KEYS[1]) + missing > tonumber(ARGV[1]) then return -1 end
local added = 0
for i = 2, #ARGV, 2 do
  added = added + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
if added > 0 or redis.call('EXISTS', KEYS[2]) == 0 then redis.call('INCR', KEYS[2]) end
return added
)lua";
  std::vector<std::string> args = {absl::StrCat(max_records_)};
  for (const auto& [name, record] : records) {
    if (record.size() > max_record_bytes_) {
      return absl::InvalidArgumentError(
          absl::StrCat("the record of '", name, "' is over ", max_record_bytes_, " bytes"));
    }
    args.push_back(name);
    args.push_back(record);
  }
  absl::StatusOr<RedisValue> r = store_->Eval(kAdd, {hash_, version_key_}, args);
  if (!r.ok()) return r.status();
  if (r->kind != RedisValue::Kind::kInteger) return Shape("an addition");
  if (r->integer < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the store holds at most ", max_records_, " records in ", hash_));
  }
  return static_cast<int>(r->integer);
}

absl::StatusOr<bool> SharedRecords::Replace(absl::string_view name, absl::string_view expected,
                                            absl::string_view record) {
  if (record.size() > max_record_bytes_) {
    return absl::InvalidArgumentError(
        absl::StrCat("the record of '", name, "' is over ", max_record_bytes_, " bytes"));
  }
  static const std::string kReplace = R"lua(
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1
)lua";
  absl::StatusOr<RedisValue> r =
      store_->Eval(kReplace, {hash_, version_key_},
                   {std::string(name), std::string(expected), std::string(record)});
  if (!r.ok()) return r.status();
  if (r->kind != RedisValue::Kind::kInteger) return Shape("a replacement");
  return r->integer == 1;
}

}  // namespace moa::store
