#include "services/orchestrator/api_keys.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/base/sha256.h"

namespace moa::orchestrator {
namespace {

ApiKey PlainKey(absl::string_view secret) {
  ApiKey k;
  k.sha256 = Sha256Hex(secret);
  k.name = absl::StrCat("key-", k.sha256.substr(0, 8));
  return k;
}

absl::Status Bad(const std::string& file, const YAML::Node& node, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ":", node.Mark().line + 1, ": ", what));
}

template <typename T>
absl::StatusOr<T> Number(const std::string& file, const YAML::Node& node, const std::string& path,
                         T min, T max) {
  T value;
  if (!node.IsScalar() || !YAML::convert<T>::decode(node, value) || !(value >= min) ||
      !(value <= max)) {
    return Bad(file, node, absl::StrCat(path, " must be a number in [", min, ", ", max, "]"));
  }
  return value;
}

absl::StatusOr<std::vector<ApiKey>> ParseNamedKeys(const std::string& file,
                                                   const YAML::Node& keys) {
  std::vector<ApiKey> out;
  if (keys.IsNull()) return out;  // `keys:` with none under it yet.
  if (!keys.IsMap()) return Bad(file, keys, "keys must be a map of key names");
  std::set<std::string> hashes;
  for (const auto& kv : keys) {
    ApiKey k;
    k.name = kv.first.as<std::string>();
    const std::string path = absl::StrCat("keys.", k.name);
    if (!IsKeyName(k.name)) {
      return Bad(file, kv.first,
                 absl::StrCat(path, ": a key's name is 1 to 64 characters of ", "[A-Za-z0-9._-]"));
    }
    const YAML::Node& v = kv.second;
    if (!v.IsMap()) return Bad(file, v, absl::StrCat(path, " must be a map"));
    static const std::set<std::string> kFields = {
        "sha256",    "requests_per_minute",    "tokens_per_minute",        "concurrent_requests",
        "pipelines", "budget_dollars_per_day", "budget_dollars_per_month", "preset"};
    for (const auto& f : v) {
      const std::string field = f.first.as<std::string>();
      if (!kFields.count(field)) {
        return Bad(file, f.first, absl::StrCat("unknown field '", field, "' in ", path));
      }
    }
    if (!v["sha256"] || !v["sha256"].IsScalar() || !IsSha256Hex(v["sha256"].Scalar())) {
      return Bad(file, v,
                 absl::StrCat(path,
                              ".sha256 must be the key's SHA-256 in 64 lowercase hex "
                              "digits (moa keys add prints a new key and its entry)"));
    }
    k.sha256 = v["sha256"].Scalar();
    if (!hashes.insert(k.sha256).second) {
      return Bad(file, v, absl::StrCat(path, ": the same key is listed twice"));
    }
    KeyLimits& l = k.limits;
    constexpr int kMaxInt = std::numeric_limits<int>::max();
    if (v["requests_per_minute"]) {
      auto n =
          Number<int>(file, v["requests_per_minute"], path + ".requests_per_minute", 1, kMaxInt);
      if (!n.ok()) return n.status();
      l.requests_per_minute = *n;
    }
    if (v["tokens_per_minute"]) {
      auto n = Number<int64_t>(file, v["tokens_per_minute"], path + ".tokens_per_minute", 1,
                               int64_t{1} << 50);
      if (!n.ok()) return n.status();
      l.tokens_per_minute = *n;
    }
    if (v["concurrent_requests"]) {
      auto n =
          Number<int>(file, v["concurrent_requests"], path + ".concurrent_requests", 1, kMaxInt);
      if (!n.ok()) return n.status();
      l.concurrent_requests = *n;
    }
    for (const char* field : {"budget_dollars_per_day", "budget_dollars_per_month"}) {
      if (!v[field]) continue;
      auto d = Number<double>(file, v[field], path + "." + field, 0, 1e12);
      if (!d.ok()) return d.status();
      (std::string(field) == "budget_dollars_per_day" ? l.budget_dollars_per_day
                                                      : l.budget_dollars_per_month) = *d;
    }
    if (const YAML::Node p = v["pipelines"]) {
      if (!p.IsSequence()) return Bad(file, p, path + ".pipelines must be a list of names");
      for (const auto& name : p) {
        if (!name.IsScalar()) return Bad(file, name, path + ".pipelines must be a list of names");
        l.pipelines.push_back(name.Scalar());
      }
    }
    if (const YAML::Node p = v["preset"]) {
      if (!p.IsScalar() || p.Scalar().empty() || p.Scalar().size() > 128) {
        return Bad(file, p, path + ".preset must be a preset's name");
      }
      l.preset = p.Scalar();
    }
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace

bool IsKeyName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::string& file, absl::string_view list) {
  std::vector<ApiKey> keys;
  auto add = [&keys](absl::string_view raw) {
    absl::string_view key = absl::StripAsciiWhitespace(raw);
    if (!key.empty() && key[0] != '#') keys.push_back(PlainKey(key));
  };
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read --api_keys_file ", file));
    std::stringstream text;
    text << in.rdbuf();
    YAML::Node root;
    bool named = false;
    try {
      root = YAML::Load(text.str());
      named = root.IsMap() && root["keys"];
    } catch (const YAML::Exception&) {
      named = false;  // Not YAML: the one-secret-per-line form.
    }
    if (named) {
      absl::StatusOr<std::vector<ApiKey>> parsed;
      try {
        parsed = ParseNamedKeys(file, root["keys"]);
      } catch (const YAML::Exception& e) {
        // A key or field that is not a plain scalar (a list or map as a
        // name): the file's error, never an exception out of start-up.
        parsed = absl::InvalidArgumentError(
            absl::StrCat(file, ":", e.mark.line + 1, ": malformed keys file: ", e.msg));
      }
      if (!parsed.ok()) return parsed.status();
      keys = *std::move(parsed);
    } else {
      for (absl::string_view line : absl::StrSplit(text.str(), '\n')) add(line);
    }
  }
  for (absl::string_view k : absl::StrSplit(list, absl::ByAnyChar(",\n"))) add(k);
  return ApiKeys(std::move(keys));
}

std::shared_ptr<const ApiKeys::Set> ApiKeys::Index(std::vector<ApiKey> keys) {
  auto set = std::make_shared<Set>();
  set->keys = std::move(keys);
  // Two entries with one hash: the later one names the key, as before.
  for (size_t i = 0; i < set->keys.size(); ++i) set->by_sha256[set->keys[i].sha256] = i;
  return set;
}

ApiKeys::ApiKeys(std::vector<ApiKey> keys) : set_(Index(std::move(keys))) {}

ApiKeys::ApiKeys(const ApiKeys& other) { *this = other; }

ApiKeys& ApiKeys::operator=(const ApiKeys& other) {
  if (this == &other) return *this;
  std::shared_ptr<const Set> set;
  bool required;
  {
    absl::MutexLock lock(&other.mu_);
    set = other.set_;
    required = other.required_;
  }
  absl::MutexLock lock(&mu_);
  set_ = std::move(set);
  required_ = required;
  return *this;
}

std::shared_ptr<const ApiKeys::Set> ApiKeys::Current() const {
  absl::MutexLock lock(&mu_);
  return set_;
}

bool ApiKeys::enabled() const {
  absl::MutexLock lock(&mu_);
  return required_ || !set_->keys.empty();
}

size_t ApiKeys::size() const { return Current()->keys.size(); }

std::vector<ApiKey> ApiKeys::List() const { return Current()->keys; }

void ApiKeys::Replace(std::vector<ApiKey> keys) {
  std::shared_ptr<const Set> set = Index(std::move(keys));  // Built before the lock.
  std::shared_ptr<const Set> old;
  absl::MutexLock lock(&mu_);
  old = std::move(set_);
  set_ = std::move(set);
  // `old` is freed after the lock, unless a request still holds it.
}

void ApiKeys::RequireKeys() {
  absl::MutexLock lock(&mu_);
  required_ = true;
}

std::shared_ptr<const ApiKey> ApiKeys::Authenticate(absl::string_view header) const {
  header = absl::StripAsciiWhitespace(header);
  if (!absl::StartsWithIgnoreCase(header, "bearer ")) return nullptr;
  const std::string presented = Sha256Hex(absl::StripAsciiWhitespace(header.substr(7)));
  std::shared_ptr<const Set> set = Current();
  auto it = set->by_sha256.find(presented);
  if (it == set->by_sha256.end()) return nullptr;
  // Shares ownership of the whole set: the key outlives a Replace.
  return std::shared_ptr<const ApiKey>(set, &set->keys[it->second]);
}

}  // namespace moa::orchestrator
