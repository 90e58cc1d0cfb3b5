// Maps upstream HTTP answers and transport failures to absl::Status codes.
#ifndef MOA_LIB_LLM_HTTP_STATUS_H_
#define MOA_LIB_LLM_HTTP_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace moa::llm {

// 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
// 404 NOT_FOUND, 408 DEADLINE_EXCEEDED, 429 RESOURCE_EXHAUSTED, 5xx and
// anything else UNAVAILABLE. The message is "HTTP <code>: <message>".
absl::Status StatusFromHttp(int http_code, absl::string_view message);

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_HTTP_STATUS_H_
