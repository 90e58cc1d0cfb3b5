// The OpenAI Responses API (POST /v1/responses) over the engine: `input`
// as text or items (messages, function_call, function_call_output),
// `instructions`, function tools and `text.format` become a Chat request;
// the call's events become a Response or its stream of typed events. This
// server stores nothing: a request that needs stored state
// (previous_response_id, item references, store: true) is refused by name
// (docs/http-api.md, "Responses API").
#ifndef MOA_SERVICES_ORCHESTRATOR_RESPONSES_API_H_
#define MOA_SERVICES_ORCHESTRATOR_RESPONSES_API_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/orchestrator/api_surface.h"

namespace moa::orchestrator::responses {

// Parses a POST /v1/responses body; a refusal sets `error` (400, the param
// named, e.g. "input[2].type").
absl::StatusOr<ParsedRequest> ParseResponsesRequest(absl::string_view body, HttpError* error);

// The top-level fields the parser reads; docs/http-api.md's table lists exactly
// these (a test holds them together).
std::vector<std::string> KnownResponsesFields();

const ApiSurface& ResponsesSurface();

}  // namespace moa::orchestrator::responses

#endif  // MOA_SERVICES_ORCHESTRATOR_RESPONSES_API_H_
