#include "lib/llm/http_status.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace moa::llm {
namespace {
constexpr char kRetryAfterPayload[] = "type.moa/retry_after_ms";
}  // namespace

absl::Status StatusFromHttp(int http_code, absl::string_view message) {
  std::string text = absl::StrCat("HTTP ", http_code, ": ", message);
  switch (http_code) {
    case 400:
      return absl::InvalidArgumentError(text);
    case 401:
      return absl::UnauthenticatedError(text);
    case 403:
      return absl::PermissionDeniedError(text);
    case 404:
      return absl::NotFoundError(text);
    case 408:
      return absl::DeadlineExceededError(text);
    case 429:
      return absl::ResourceExhaustedError(text);
    default:
      return absl::UnavailableError(text);
  }
}

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

absl::string_view OutcomeLabel(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kCancelled:
      return "cancelled";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline";
    case absl::StatusCode::kResourceExhausted:
      return "rate_limited";
    case absl::StatusCode::kInvalidArgument:
      return "invalid";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    default:
      return "upstream_error";
  }
}

absl::string_view OutcomeLabelAt(const absl::Status& status, absl::Time deadline, absl::Time now) {
  constexpr absl::Duration kTransitMargin = absl::Milliseconds(250);
  if (status.code() == absl::StatusCode::kCancelled && now >= deadline - kTransitMargin) {
    return "deadline";
  }
  return OutcomeLabel(status);
}

}  // namespace moa::llm
