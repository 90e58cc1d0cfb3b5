#include "services/orchestrator/key_directory.h"

#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "lib/base/log.h"
#include "lib/base/sha256.h"

namespace moa::orchestrator {
namespace {

constexpr char kName[] = "moa-orchestrator";
constexpr int kMaxPipelinesPerKey = 64;
constexpr size_t kMaxPipelineNameBytes = 128;
const std::set<std::string>& LimitFields() {
  static const auto* fields = new std::set<std::string>{"requests_per_minute",
                                                        "tokens_per_minute",
                                                        "concurrent_requests",
                                                        "budget_dollars_per_day",
                                                        "budget_dollars_per_month",
                                                        "pipelines",
                                                        "preset"};
  return *fields;
}

// A pipeline's or preset's name: a string of 1 to kMaxPipelineNameBytes
// printable bytes; nullptr for anything else.
const std::string* NameIn(const json::Json& value) {
  const std::string* name = value.get_ptr<const std::string*>();
  if (name == nullptr || name->empty() || name->size() > kMaxPipelineNameBytes) return nullptr;
  for (unsigned char c : *name) {
    if (c < 0x20 || c == 0x7f) return nullptr;
  }
  return name;
}

absl::Status ReadPipelines(const json::Json& value, std::vector<std::string>* out) {
  if (!value.is_array() || value.size() > kMaxPipelinesPerKey) {
    return absl::InvalidArgumentError(
        absl::StrCat("pipelines must be a list of at most ", kMaxPipelinesPerKey, " names"));
  }
  out->clear();
  for (const json::Json& p : value) {
    const std::string* name = NameIn(p);
    if (name == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("pipelines must hold names of 1 to ",
                                                     kMaxPipelineNameBytes, " printable bytes"));
    }
    out->push_back(*name);
  }
  return absl::OkStatus();
}

}  // namespace

json::Json KeyLimitsJson(const KeyLimits& l) {
  json::Json j = json::Json::object();
  if (l.requests_per_minute) j["requests_per_minute"] = *l.requests_per_minute;
  if (l.tokens_per_minute) j["tokens_per_minute"] = *l.tokens_per_minute;
  if (l.concurrent_requests) j["concurrent_requests"] = *l.concurrent_requests;
  if (l.budget_dollars_per_day) j["budget_dollars_per_day"] = *l.budget_dollars_per_day;
  if (l.budget_dollars_per_month) j["budget_dollars_per_month"] = *l.budget_dollars_per_month;
  if (!l.pipelines.empty()) j["pipelines"] = l.pipelines;
  if (!l.preset.empty()) j["preset"] = l.preset;
  return j;
}

absl::Status ReadKeyLimits(const json::Json& object, const std::set<std::string>& other_fields,
                           KeyLimits* l) {
  if (!object.is_object()) return absl::InvalidArgumentError("a key must be a JSON object");
  for (const auto& [field, value] : object.items()) {
    if (!LimitFields().count(field) && !other_fields.count(field)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown field '", field,
                       "' (a key has requests_per_minute, tokens_per_minute, concurrent_requests, "
                       "budget_dollars_per_day, budget_dollars_per_month, pipelines, preset)"));
    }
  }
  constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
  auto integer = [&](const char* field, int64_t max) -> absl::StatusOr<std::optional<int64_t>> {
    return json::OptionalInt(object, field, field, 1, max);
  };
  auto clear_if_null = [&](const char* field, auto& target) {
    auto it = object.find(field);
    if (it != object.end() && it->is_null()) target.reset();
  };
  absl::StatusOr<std::optional<int64_t>> rpm = integer("requests_per_minute", kMaxInt);
  if (!rpm.ok()) return rpm.status();
  if (*rpm) l->requests_per_minute = static_cast<int>(**rpm);
  clear_if_null("requests_per_minute", l->requests_per_minute);
  absl::StatusOr<std::optional<int64_t>> tpm = integer("tokens_per_minute", int64_t{1} << 50);
  if (!tpm.ok()) return tpm.status();
  if (*tpm) l->tokens_per_minute = **tpm;
  clear_if_null("tokens_per_minute", l->tokens_per_minute);
  absl::StatusOr<std::optional<int64_t>> concurrent = integer("concurrent_requests", kMaxInt);
  if (!concurrent.ok()) return concurrent.status();
  if (*concurrent) l->concurrent_requests = static_cast<int>(**concurrent);
  clear_if_null("concurrent_requests", l->concurrent_requests);
  for (const char* field : {"budget_dollars_per_day", "budget_dollars_per_month"}) {
    std::optional<double>& target = std::string(field) == "budget_dollars_per_day"
                                        ? l->budget_dollars_per_day
                                        : l->budget_dollars_per_month;
    absl::StatusOr<std::optional<double>> d = json::OptionalNumber(object, field, field);
    if (!d.ok()) return d.status();
    if (*d) {
      if (!(**d >= 0 && **d <= 1e12)) {
        return absl::InvalidArgumentError(absl::StrCat(field, " must be a number in [0, 1e12]"));
      }
      target = **d;
    }
    clear_if_null(field, target);
  }
  if (auto it = object.find("pipelines"); it != object.end()) {
    if (it->is_null()) {
      l->pipelines.clear();
    } else if (absl::Status s = ReadPipelines(*it, &l->pipelines); !s.ok()) {
      return s;
    }
  }
  if (auto it = object.find("preset"); it != object.end()) {
    if (it->is_null()) {
      l->preset.clear();
    } else {
      const std::string* name = NameIn(*it);
      if (name == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("preset must be a preset's name of 1 to ",
                                                       kMaxPipelineNameBytes, " printable bytes"));
      }
      l->preset = *name;
    }
  }
  return absl::OkStatus();
}

std::string KeyRecordJson(const KeyRecord& r) {
  json::Json j = KeyLimitsJson(r.key.limits);
  j["sha256"] = r.key.sha256;
  j["created"] = r.created;
  if (r.revoked) j["revoked"] = *r.revoked;
  return json::Dump(j);
}

absl::StatusOr<KeyRecord> ParseKeyRecord(absl::string_view name, absl::string_view text) {
  if (!IsKeyName(name)) return absl::InvalidArgumentError("a key record has a malformed name");
  if (text.size() > kMaxKeyRecordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the record is over ", kMaxKeyRecordBytes, " bytes"));
  }
  absl::StatusOr<json::Json> j = json::Parse(text, 4);
  if (!j.ok()) return j.status();
  KeyRecord r;
  r.key.name = std::string(name);
  if (absl::Status s = ReadKeyLimits(*j, {"sha256", "created", "revoked"}, &r.key.limits);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::optional<std::string>> sha = json::OptionalString(*j, "sha256", "sha256");
  if (!sha.ok()) return sha.status();
  if (!*sha || !IsSha256Hex(**sha)) {
    return absl::InvalidArgumentError("sha256 must be 64 lowercase hex digits");
  }
  r.key.sha256 = **sha;
  constexpr int64_t kMaxTime = int64_t{1} << 40;
  absl::StatusOr<std::optional<int64_t>> created =
      json::OptionalInt(*j, "created", "created", 0, kMaxTime);
  if (!created.ok()) return created.status();
  r.created = created->value_or(0);
  absl::StatusOr<std::optional<int64_t>> revoked =
      json::OptionalInt(*j, "revoked", "revoked", 0, kMaxTime);
  if (!revoked.ok()) return revoked.status();
  r.revoked = *revoked;
  return r;
}

json::Json KeyRecordView(const KeyRecord& r) {
  json::Json j = {{"name", r.key.name},
                  {"limits", KeyLimitsJson(r.key.limits)},
                  {"created", r.created},
                  {"revoked", r.revoked ? json::Json(*r.revoked) : json::Json(nullptr)}};
  return j;
}

KeyDirectory::KeyDirectory(store::SharedRecords* records, ApiKeys* keys, const Clock* clock,
                           std::vector<ApiKey> seed)
    : records_(records), keys_(keys), clock_(clock), seed_(std::move(seed)) {
  keys_->RequireKeys();
}

KeyDirectory::~KeyDirectory() {
  stop_.Notify();
  if (poller_.joinable()) poller_.join();
}

absl::Status KeyDirectory::Seed() {
  std::map<std::string, std::string> records;
  const int64_t now = absl::ToUnixSeconds(clock_->Now());
  for (const ApiKey& k : seed_) records[k.name] = KeyRecordJson({k, now, std::nullopt});
  absl::StatusOr<int> added = records_->AddMissing(records);
  if (!added.ok()) return added.status();
  if (*added > 0) LogInfo(kName, "added ", *added, " keys to the shared store's directory");
  return absl::OkStatus();
}

absl::Status KeyDirectory::Refresh() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<int64_t> version = records_->Version();
  if (!version.ok()) return version.status();
  if (*version == 0) {
    // Never written, or the store lost its data: the file's keys again.
    if (absl::Status s = Seed(); !s.ok()) return s;
  } else if (*version == loaded_version_) {
    return absl::OkStatus();
  }
  absl::StatusOr<store::RecordSet> set = records_->ReadAll();
  if (!set.ok()) return set.status();
  std::vector<ApiKey> active;
  for (const auto& [name, text] : set->records) {
    absl::StatusOr<KeyRecord> r = ParseKeyRecord(name, text);
    if (!r.ok()) {
      // Logged once per name (the set is bounded: a store could churn names).
      if (bad_records_.size() < kMaxSharedKeys && bad_records_.insert(name).second) {
        LogWarning(kName, "the shared store holds an unreadable record for key '",
                   IsKeyName(name) ? name : "(a malformed name)",
                   "' (it is refused): ", r.status().message());
      }
      continue;
    }
    if (!r->revoked) active.push_back(std::move(r->key));
  }
  const size_t count = active.size();
  keys_->Replace(std::move(active));
  if (loaded_version_ < 0) LogInfo(kName, count, " client keys from the shared store");
  loaded_version_ = set->version;
  return absl::OkStatus();
}

void KeyDirectory::StartPolling(absl::Duration every) {
  poller_ = std::thread([this, every] {
    bool failing = false;
    while (!stop_.WaitForNotificationWithTimeout(every)) {
      absl::Status s = Refresh();
      if (!s.ok() && !failing) {
        LogWarning(kName,
                   "cannot read the key directory (keeping the keys read last): ", s.message());
      } else if (s.ok() && failing) {
        LogInfo(kName, "the key directory is read again");
      }
      failing = !s.ok();
    }
  });
}

absl::StatusOr<KeyDirectory::Created> KeyDirectory::Create(const std::string& name,
                                                           const KeyLimits& limits) {
  if (!IsKeyName(name)) {
    return absl::InvalidArgumentError("a key's name is 1 to 64 characters of [A-Za-z0-9._-]");
  }
  Created c;
  c.secret = absl::StrCat("sk-moa-", RandomSecretHex(24));
  c.record.key = {name, Sha256Hex(c.secret), limits};
  c.record.created = absl::ToUnixSeconds(clock_->Now());
  const std::string text = KeyRecordJson(c.record);
  if (text.size() > kMaxKeyRecordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the key's limits are over ", kMaxKeyRecordBytes, " bytes as JSON"));
  }
  absl::StatusOr<int> added = records_->AddMissing({{name, text}});
  if (!added.ok()) return added.status();
  if (*added == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("a key named '", name, "' exists (a revoked key keeps its name)"));
  }
  if (absl::Status s = Refresh(); !s.ok()) return s;
  return c;
}

absl::StatusOr<KeyRecord> KeyDirectory::Change(
    const std::string& name, const std::function<absl::Status(KeyRecord&)>& change) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<StoredRecord> stored = Read(name);
    if (!stored.ok()) return stored.status();
    KeyRecord& r = stored->record;
    const std::string before = KeyRecordJson(r);
    if (absl::Status s = change(r); !s.ok()) return s;
    const std::string after = KeyRecordJson(r);
    if (after == before) return r;
    if (after.size() > kMaxKeyRecordBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("the key's limits are over ", kMaxKeyRecordBytes, " bytes as JSON"));
    }
    absl::StatusOr<bool> replaced = records_->Replace(name, stored->text, after);
    if (!replaced.ok()) return replaced.status();
    if (*replaced) {
      if (absl::Status s = Refresh(); !s.ok()) return s;
      return r;
    }
  }
  return absl::AbortedError(
      absl::StrCat("key '", name, "' kept changing under this request; try again"));
}

absl::StatusOr<KeyRecord> KeyDirectory::Update(const std::string& name, const json::Json& patch) {
  return Change(name, [&](KeyRecord& r) -> absl::Status {
    if (r.revoked) {
      return absl::FailedPreconditionError(absl::StrCat("key '", name, "' is revoked"));
    }
    return ReadKeyLimits(patch, {}, &r.key.limits);
  });
}

absl::StatusOr<KeyRecord> KeyDirectory::Revoke(const std::string& name) {
  return Change(name, [&](KeyRecord& r) {
    if (!r.revoked) r.revoked = absl::ToUnixSeconds(clock_->Now());
    return absl::OkStatus();
  });
}

absl::StatusOr<KeyDirectory::StoredRecord> KeyDirectory::Read(const std::string& name) {
  if (!IsKeyName(name)) return absl::NotFoundError("no such key");
  absl::StatusOr<std::optional<std::string>> text = records_->Get(name);
  if (!text.ok()) return text.status();
  if (!*text) return absl::NotFoundError(absl::StrCat("no key named '", name, "'"));
  absl::StatusOr<KeyRecord> r = ParseKeyRecord(name, **text);
  if (!r.ok()) {
    return absl::InternalError(absl::StrCat("the store's record of key '", name,
                                            "' cannot be read: ", r.status().message()));
  }
  return StoredRecord{**std::move(text), *std::move(r)};
}

absl::StatusOr<KeyRecord> KeyDirectory::Find(const std::string& name) {
  absl::StatusOr<StoredRecord> stored = Read(name);
  if (!stored.ok()) return stored.status();
  return std::move(stored->record);
}

absl::StatusOr<std::vector<KeyRecord>> KeyDirectory::List() {
  absl::StatusOr<store::RecordSet> set = records_->ReadAll();
  if (!set.ok()) return set.status();
  std::vector<KeyRecord> out;
  for (const auto& [name, text] : set->records) {
    absl::StatusOr<KeyRecord> r = ParseKeyRecord(name, text);
    if (r.ok()) out.push_back(*std::move(r));
  }
  return out;
}

}  // namespace moa::orchestrator
