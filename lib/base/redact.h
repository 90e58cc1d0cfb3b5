// Keeping secrets and peers' noise out of logs and error messages.
#ifndef MOA_LIB_BASE_REDACT_H_
#define MOA_LIB_BASE_REDACT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace moa {

// `url` with its userinfo ("user:password@") replaced by "***@" and the
// values of secret-looking query parameters (key, api_key, token, ...)
// by "***". For log lines that name an upstream.
std::string RedactUrl(absl::string_view url);

// Text from a peer (an upstream's error body) made fit to pass on: bearer
// tokens and Authorization header values replaced by "[redacted]", every
// occurrence of `secret` (when non-empty) too, control characters turned to
// spaces, invalid UTF-8 dropped, and the result cut to at most `max_bytes`
// on a character boundary with "..." appended when cut.
std::string SanitizePeerText(absl::string_view text, absl::string_view secret = "",
                             size_t max_bytes = 512);

}  // namespace moa

#endif  // MOA_LIB_BASE_REDACT_H_
