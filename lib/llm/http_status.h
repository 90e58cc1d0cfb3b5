// Maps upstream HTTP answers and transport failures to absl::Status codes.
#ifndef MOA_LIB_LLM_HTTP_STATUS_H_
#define MOA_LIB_LLM_HTTP_STATUS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace moa::llm {

// 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
// 404 NOT_FOUND, 408 DEADLINE_EXCEEDED, 429 RESOURCE_EXHAUSTED, 5xx and
// anything else UNAVAILABLE. The message is "HTTP <code>: <message>".
absl::Status StatusFromHttp(int http_code, absl::string_view message);

// Parses a Retry-After header value: delta-seconds or an HTTP date.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

// A status may carry how long the upstream asked us to wait (429, 503).
void SetRetryAfter(absl::Status& status, absl::Duration delay);
std::optional<absl::Duration> GetRetryAfter(const absl::Status& status);

// The metric label for a final status: ok, cancelled, deadline, rate_limited,
// invalid, unavailable, or upstream_error for every other code.
absl::string_view OutcomeLabel(const absl::Status& status);

// As OutcomeLabel, but a cancel at (or just before) the call's deadline is
// "deadline": the caller's own deadline timer cancels the stream a transit
// time before the callee's copy of the deadline passes.
absl::string_view OutcomeLabelAt(const absl::Status& status, absl::Time deadline, absl::Time now);

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_HTTP_STATUS_H_
