#include "lib/base/retry_after.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace moa {
namespace {
constexpr char kRetryAfterPayload[] = "type.moa/retry_after_ms";
constexpr char kFromUpstreamPayload[] = "type.moa/from_upstream";
}  // namespace

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  double seconds;
  if (absl::SimpleAtod(value, &seconds)) {
    if (seconds < 0) return std::nullopt;
    return absl::Seconds(seconds);
  }
  absl::Time when;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S", std::string(value.substr(0, 25)), &when, &err)) {
    return when > now ? when - now : absl::ZeroDuration();
  }
  return std::nullopt;
}

void SetRetryAfter(absl::Status& status, absl::Duration delay) {
  status.SetPayload(kRetryAfterPayload, absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(delay))));
}

std::optional<absl::Duration> GetRetryAfter(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryAfterPayload);
  if (!payload) return std::nullopt;
  int64_t ms;
  if (!absl::SimpleAtoi(std::string(*payload), &ms)) return std::nullopt;
  return absl::Milliseconds(ms);
}

void MarkFromUpstream(absl::Status& status) {
  if (!status.ok()) status.SetPayload(kFromUpstreamPayload, absl::Cord("1"));
}

bool IsFromUpstream(const absl::Status& status) {
  return status.GetPayload(kFromUpstreamPayload).has_value();
}

}  // namespace moa
