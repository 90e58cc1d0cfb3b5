#include "services/orchestrator/api_keys.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moa::orchestrator {

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::string& file, absl::string_view list) {
  std::vector<std::string> keys;
  auto add = [&keys](absl::string_view raw) {
    absl::string_view key = absl::StripAsciiWhitespace(raw);
    if (!key.empty() && key[0] != '#') keys.emplace_back(key);
  };
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read --api_keys_file ", file));
    for (std::string line; std::getline(in, line);) add(line);
  }
  for (absl::string_view k : absl::StrSplit(list, absl::ByAnyChar(",\n"))) add(k);
  return ApiKeys(std::move(keys));
}

bool ApiKeys::CheckAuthorization(absl::string_view header) const {
  header = absl::StripAsciiWhitespace(header);
  if (!absl::StartsWithIgnoreCase(header, "bearer ")) return false;
  absl::string_view presented = absl::StripAsciiWhitespace(header.substr(7));
  bool match = false;
  for (const std::string& key : keys_) match |= ConstantTimeEquals(presented, key);
  return match;
}

}  // namespace moa::orchestrator
