// How long a peer asked us to wait before trying again: parsed from an HTTP
// Retry-After header and carried on an absl::Status as a payload, so it
// travels from the upstream to the gRPC trailer and the HTTP header.
#ifndef MOA_LIB_BASE_RETRY_AFTER_H_
#define MOA_LIB_BASE_RETRY_AFTER_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace moa {

// Parses a Retry-After header value: delta-seconds or an HTTP date.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

// A status may carry how long the peer asked us to wait (429, 503).
void SetRetryAfter(absl::Status& status, absl::Duration delay);
std::optional<absl::Duration> GetRetryAfter(const absl::Status& status);

// A status may say that it is the model's own failure (its upstream's
// answer, relayed by the proposer), as opposed to a failure of the path to
// it (a replica of ours restarting, a connection reset between services).
// Circuit breakers in front of a model count only the former.
void MarkFromUpstream(absl::Status& status);
bool IsFromUpstream(const absl::Status& status);

}  // namespace moa

#endif  // MOA_LIB_BASE_RETRY_AFTER_H_
