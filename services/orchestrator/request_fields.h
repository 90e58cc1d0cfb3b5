// What every HTTP door does with the fields of a request body (chat
// completions, Messages, Responses): each top-level field is honoured,
// accepted at a value that asks for nothing, or refused with a 400 naming
// it; a nested object's unknown key is refused the same way. A client must
// never believe a field took effect when it did not. A null is the field's
// absence.
#ifndef MOA_SERVICES_ORCHESTRATOR_REQUEST_FIELDS_H_
#define MOA_SERVICES_ORCHESTRATOR_REQUEST_FIELDS_H_

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "lib/base/json.h"
#include "services/orchestrator/api_surface.h"

namespace moa::orchestrator {

struct FieldRule {
  const char* name;
  // Null: every valid value is honoured (the door's parser reads it). Else
  // only the values this accepts are: those that ask for nothing we lack.
  bool (*accepts)(const moa::json::Json& value, const moa::json::Json& request);
  const char* refusal;  // Follows the field's name when another value is sent.
};

// Acceptors the doors share.
bool Never(const moa::json::Json&, const moa::json::Json&);
bool IsZero(const moa::json::Json& v, const moa::json::Json&);
bool IsFalse(const moa::json::Json& v, const moa::json::Json&);
bool IsEmptyObject(const moa::json::Json& v, const moa::json::Json&);
bool IsEmptyArray(const moa::json::Json& v, const moa::json::Json&);

// A 400 invalid_request_error whose message is `param` then `why`.
HttpError BadField(std::string param, absl::string_view why);

// The body as a JSON object; a 400 naming what is wrong with it otherwise.
absl::StatusOr<moa::json::Json> ParseBodyObject(absl::string_view body, HttpError* error);

// The request's top-level fields against `rules`; false with `error` set on
// the first one refused. `api` names the API in the message ("chat
// completions", "the Messages API").
bool CheckFields(const moa::json::Json& request, absl::Span<const FieldRule> rules,
                 absl::string_view api, HttpError* error);

// Every non-null member of `object` must be one of `known`; false with
// `error` naming the first that is not (as `path` + its name).
bool OnlyKnownKeys(const moa::json::Json& object, std::initializer_list<absl::string_view> known,
                   absl::string_view path, HttpError* error);

// The names of `rules`, for the tests of docs/http-api.md's tables.
std::vector<std::string> FieldNames(absl::Span<const FieldRule> rules);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_REQUEST_FIELDS_H_
