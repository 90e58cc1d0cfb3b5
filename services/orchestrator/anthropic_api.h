// The Anthropic Messages API (POST /v1/messages) over the engine: a
// request's system, messages of content blocks (text, tool_use,
// tool_result), tools and tool_choice become a Chat request; the call's
// events become a Message or its stream of typed events. Every field is
// honoured or refused by name (docs/http-api.md, "Anthropic Messages API").
#ifndef MOA_SERVICES_ORCHESTRATOR_ANTHROPIC_API_H_
#define MOA_SERVICES_ORCHESTRATOR_ANTHROPIC_API_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/orchestrator/api_surface.h"

namespace moa::orchestrator::anthropic {

// Parses a POST /v1/messages body; a refusal sets `error` (400, the param
// named, e.g. "messages[0].content[1].type").
absl::StatusOr<ParsedRequest> ParseMessagesRequest(absl::string_view body, HttpError* error);

// The top-level fields the parser reads; docs/http-api.md's table lists exactly
// these (a test holds them together).
std::vector<std::string> KnownMessagesFields();

// {"type": "error", "error": {"type", "message"}}: the error's kind in
// Anthropic's words (invalid_request_error, authentication_error,
// not_found_error, rate_limit_error, overloaded_error, api_error, ...).
std::string ErrorJson(const HttpError& error);

const ApiSurface& MessagesSurface();

}  // namespace moa::orchestrator::anthropic

#endif  // MOA_SERVICES_ORCHESTRATOR_ANTHROPIC_API_H_
