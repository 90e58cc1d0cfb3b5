#include "lib/telemetry/outcome.h"

namespace moa::telemetry {

absl::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kDeadline:
      return "deadline";
    case Outcome::kRateLimited:
      return "rate_limited";
    case Outcome::kUpstreamError:
      return "upstream_error";
    case Outcome::kInvalid:
      return "invalid";
    case Outcome::kUnavailable:
      return "unavailable";
    case Outcome::kStraggler:
      return "straggler";
  }
  return "upstream_error";
}

Outcome OutcomeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return Outcome::kOk;
    case absl::StatusCode::kCancelled:
      return Outcome::kCancelled;
    case absl::StatusCode::kDeadlineExceeded:
      return Outcome::kDeadline;
    case absl::StatusCode::kResourceExhausted:
      return Outcome::kRateLimited;
    case absl::StatusCode::kInvalidArgument:
      return Outcome::kInvalid;
    case absl::StatusCode::kUnavailable:
      return Outcome::kUnavailable;
    default:
      return Outcome::kUpstreamError;
  }
}

Outcome OutcomeAt(const absl::Status& status, absl::Time deadline, absl::Time now) {
  constexpr absl::Duration kTransitMargin = absl::Milliseconds(250);
  if (status.code() == absl::StatusCode::kCancelled && now >= deadline - kTransitMargin) {
    return Outcome::kDeadline;
  }
  return OutcomeOf(status);
}

}  // namespace moa::telemetry
