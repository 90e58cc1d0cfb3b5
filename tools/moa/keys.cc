#include "tools/moa/keys.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/base/sha256.h"

namespace moa::cli {

namespace {

// True when `text` is a keys file of `count` keys, `name` among them.
bool HasKeys(const std::string& text, const std::string& name, size_t count) {
  try {
    YAML::Node root = YAML::Load(text);
    return root.IsMap() && root["keys"].IsMap() && root["keys"].size() == count &&
           root["keys"][name].IsMap();
  } catch (const YAML::Exception&) {
    return false;
  }
}

// The comment and blank lines at the top of a file.
std::string LeadingComments(const std::string& text) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    absl::string_view stripped = absl::StripAsciiWhitespace(line);
    if (!stripped.empty() && stripped[0] != '#') break;
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> AddKey(const std::string& file, const NewKey& key) {
  bool name_ok = !key.name.empty() && key.name.size() <= 64;
  for (char c : key.name) {
    name_ok &=
        absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  }
  if (!name_ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("a key's name is 1 to 64 characters of [A-Za-z0-9._-], not '", key.name, "'"));
  }
  for (const std::string& p : key.pipelines) {
    if (p.empty() || p.find_first_of(" :#,[]{}\"'\n") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", p, "' is not a pipeline name"));
    }
  }
  if (!key.preset.empty() && key.preset.find_first_of(" :#,[]{}\"'\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", key.preset, "' is not a preset name"));
  }
  std::string text;
  size_t old_keys = 0;
  if (std::filesystem::exists(file)) {
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(file, " is not YAML: ", e.what()));
    }
    if (!root.IsMap() || root.size() != 1 || !root["keys"] ||
        !(root["keys"].IsMap() || root["keys"].IsNull())) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, " is not a keys file: a YAML map whose only top-level key is 'keys:'"));
    }
    if (root["keys"].IsMap() && root["keys"][key.name]) {
      return absl::InvalidArgumentError(absl::StrCat("key '", key.name, "' is already in ", file));
    }
    if (root["keys"].IsMap()) old_keys = root["keys"].size();
  } else {
    text =
        "# Client keys of moa-orchestrator (--api_keys_file): names, SHA-256 of the\n"
        "# secrets, limits. Made by 'moa keys add'; the secrets are not stored.\n"
        "keys:\n";
  }
  const std::string secret = absl::StrCat("sk-moa-", RandomSecretHex(24));
  std::string entry = absl::StrCat("  ", key.name, ":\n    sha256: ", Sha256Hex(secret), "\n");
  auto add = [&entry](const char* field, const auto& value) {
    if (value) absl::StrAppend(&entry, "    ", field, ": ", *value, "\n");
  };
  add("requests_per_minute", key.requests_per_minute);
  add("tokens_per_minute", key.tokens_per_minute);
  add("concurrent_requests", key.concurrent_requests);
  add("budget_dollars_per_day", key.budget_dollars_per_day);
  add("budget_dollars_per_month", key.budget_dollars_per_month);
  if (!key.pipelines.empty()) {
    absl::StrAppend(&entry, "    pipelines: [", absl::StrJoin(key.pipelines, ", "), "]\n");
  }
  if (!key.preset.empty()) absl::StrAppend(&entry, "    preset: ", key.preset, "\n");
  if (!text.empty() && text.back() != '\n') text += '\n';
  std::string updated = text + entry;
  if (!HasKeys(updated, key.name, old_keys + 1)) {
    // `keys: {}` (flow style) takes no block entry after it: an empty file
    // is written anew under its comments; a flow-style map with keys is
    // left to its author.
    if (old_keys != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot add to ", file, ": write its keys: map in block style (one key per line)"));
    }
    updated = absl::StrCat(LeadingComments(text), "keys:\n", entry);
    if (!HasKeys(updated, key.name, 1)) {
      return absl::InternalError(absl::StrCat("cannot add a key to ", file));
    }
  }
  // Written whole to a temporary file and renamed: a crash leaves the old
  // file or the new one, never half.
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << updated;
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot replace ", file, ": ", ec.message()));
  return secret;
}

}  // namespace moa::cli
