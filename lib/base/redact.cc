#include "lib/base/redact.h"

#include <algorithm>
#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace moa {

namespace {

bool IsSecretParam(absl::string_view name) {
  static constexpr std::array<absl::string_view, 9> kSecret = {
      "key", "api_key", "apikey", "api-key", "token", "access_token", "secret", "password", "sig"};
  std::string lower = absl::AsciiStrToLower(name);
  for (absl::string_view s : kSecret) {
    if (lower == s) return true;
  }
  return false;
}

// Length of the UTF-8 sequence starting at text[i], or 0 when invalid.
size_t Utf8Length(absl::string_view text, size_t i) {
  unsigned char c = static_cast<unsigned char>(text[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) >> 6) != 0x2) return 0;
  }
  return n;
}

// Replaces the word after each (case-insensitive) `marker` with [redacted].
std::string RedactAfter(absl::string_view text, absl::string_view marker) {
  std::string out;
  std::string lower = absl::AsciiStrToLower(text);
  std::string lower_marker = absl::AsciiStrToLower(marker);
  size_t pos = 0;
  while (true) {
    size_t hit = lower.find(lower_marker, pos);
    if (hit == std::string::npos) break;
    size_t start = hit + marker.size();
    while (start < text.size() && text[start] == ' ') ++start;
    size_t end = start;
    while (end < text.size() && !absl::ascii_isspace(static_cast<unsigned char>(text[end])) &&
           text[end] != '"' && text[end] != '\'' && text[end] != ',') {
      ++end;
    }
    absl::StrAppend(&out, text.substr(pos, start - pos));
    if (end > start) absl::StrAppend(&out, "[redacted]");
    pos = end;
  }
  absl::StrAppend(&out, text.substr(pos));
  return out;
}

}  // namespace

std::string RedactUrl(absl::string_view url) {
  std::string out;
  absl::string_view rest = url;
  if (size_t scheme = rest.find("://"); scheme != absl::string_view::npos) {
    absl::StrAppend(&out, rest.substr(0, scheme + 3));
    rest.remove_prefix(scheme + 3);
    size_t authority_end = rest.find_first_of("/?#");
    absl::string_view authority = rest.substr(0, authority_end);
    if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
      absl::StrAppend(&out, "***@");
      rest.remove_prefix(at + 1);
    }
  }
  size_t query = rest.find('?');
  if (query == absl::string_view::npos) {
    absl::StrAppend(&out, rest);
    return out;
  }
  absl::StrAppend(&out, rest.substr(0, query + 1));
  absl::string_view params = rest.substr(query + 1);
  std::string fragment;
  if (size_t hash = params.find('#'); hash != absl::string_view::npos) {
    fragment = std::string(params.substr(hash));
    params = params.substr(0, hash);
  }
  bool first = true;
  for (absl::string_view param : absl::StrSplit(params, '&')) {
    if (!first) out += '&';
    first = false;
    size_t eq = param.find('=');
    if (eq != absl::string_view::npos && IsSecretParam(param.substr(0, eq))) {
      absl::StrAppend(&out, param.substr(0, eq), "=***");
    } else {
      absl::StrAppend(&out, param);
    }
  }
  absl::StrAppend(&out, fragment);
  return out;
}

std::string SanitizePeerText(absl::string_view text, absl::string_view secret, size_t max_bytes) {
  // Look at a bounded prefix only: a peer may send megabytes.
  const size_t prefix = std::min(text.size(), max_bytes * 4);
  std::string work(text.substr(0, prefix));
  if (!secret.empty()) work = absl::StrReplaceAll(work, {{secret, "[redacted]"}});
  work = RedactAfter(work, "bearer ");
  work = RedactAfter(work, "authorization:");
  work = RedactAfter(work, "x-api-key:");
  std::string out;
  bool cut = prefix < text.size();
  for (size_t i = 0; i < work.size();) {
    size_t n = Utf8Length(work, i);
    if (n == 0) {
      ++i;
      continue;
    }
    if (out.size() + n > max_bytes) {
      cut = true;
      break;
    }
    if (n == 1 && static_cast<unsigned char>(work[i]) < 0x20) {
      out += ' ';
    } else if (n == 1 && work[i] == 0x7f) {
      out += ' ';
    } else {
      out.append(work, i, n);
    }
    i += n;
  }
  if (cut) out += "...";
  return out;
}

}  // namespace moa
