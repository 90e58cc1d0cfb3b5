#include "lib/base/trace_context.h"

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

namespace moa {
namespace {

std::string RandomHex(size_t digits) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(digits, '0');
  absl::MutexLock lock(&mu);
  do {
    for (char& c : out) c = kHex[absl::Uniform(*gen, 0, 16)];
  } while (out.find_first_not_of('0') == std::string::npos);
  return out;
}

bool IsHex(absl::string_view s, size_t digits) {
  if (s.size() != digits) return false;
  bool nonzero = false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    nonzero |= c != '0';
  }
  return nonzero;
}

bool IsRequestId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != ':' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string TraceContext::Traceparent() const {
  return absl::StrCat("00-", trace_id, "-", span_id, "-", flags);
}

TraceContext TraceContext::Child() const {
  TraceContext child = *this;
  child.span_id = RandomHex(16);
  return child;
}

TraceContext AcceptTraceContext(absl::string_view request_id, absl::string_view traceparent) {
  TraceContext t;
  t.request_id = IsRequestId(request_id) ? std::string(request_id) : RandomHex(32);
  std::vector<absl::string_view> parts = absl::StrSplit(traceparent, '-');
  if (parts.size() == 4 && parts[0] == "00" && IsHex(parts[1], 32) && IsHex(parts[2], 16) &&
      parts[3].size() == 2 && absl::ascii_isxdigit(static_cast<unsigned char>(parts[3][0])) &&
      absl::ascii_isxdigit(static_cast<unsigned char>(parts[3][1]))) {
    t.trace_id = std::string(parts[1]);
    t.span_id = std::string(parts[2]);
    t.flags = absl::AsciiStrToLower(parts[3]);
  } else {
    t.trace_id = RandomHex(32);
    t.span_id = RandomHex(16);
  }
  return t;
}

}  // namespace moa
