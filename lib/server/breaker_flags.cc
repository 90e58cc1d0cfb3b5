#include "lib/server/breaker_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int, breaker_min_calls, 10,
          "Circuit breakers: calls that must end in the window before one may open; 0 turns "
          "them off.");
ABSL_FLAG(double, breaker_failure_ratio, 0.5,
          "Circuit breakers: open when more than this share of the window's calls failed.");
ABSL_FLAG(absl::Duration, breaker_window, absl::Seconds(10), "Circuit breakers: sliding window.");
ABSL_FLAG(absl::Duration, breaker_cooldown, absl::Seconds(5),
          "Circuit breakers: how long one fails fast before one probe call.");

namespace moa::server {

BreakerOptions BreakerOptionsFromFlags() {
  return {.failure_ratio = absl::GetFlag(FLAGS_breaker_failure_ratio),
          .min_calls = absl::GetFlag(FLAGS_breaker_min_calls),
          .window = absl::GetFlag(FLAGS_breaker_window),
          .cooldown = absl::GetFlag(FLAGS_breaker_cooldown)};
}

bool BreakersEnabled() { return absl::GetFlag(FLAGS_breaker_min_calls) > 0; }

}  // namespace moa::server
