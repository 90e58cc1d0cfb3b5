#include "lib/llm/http_status.h"

#include "absl/strings/str_cat.h"

namespace moa::llm {
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

}  // namespace moa::llm
