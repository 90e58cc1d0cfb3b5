#include "services/orchestrator/request_fields.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moa::orchestrator {

using json = moa::json::Json;

bool Never(const json&, const json&) { return false; }
bool IsZero(const json& v, const json&) { return v.is_number() && v.get<double>() == 0; }
bool IsFalse(const json& v, const json&) { return v.is_boolean() && !v.get<bool>(); }
bool IsEmptyObject(const json& v, const json&) { return v.is_object() && v.empty(); }
bool IsEmptyArray(const json& v, const json&) { return v.is_array() && v.empty(); }

HttpError BadField(std::string param, absl::string_view why) {
  std::string message = absl::StrCat(param, " ", why);
  return {400, std::move(message), "invalid_request_error", std::move(param), ""};
}

absl::StatusOr<json> ParseBodyObject(absl::string_view body, HttpError* error) {
  absl::StatusOr<json> parsed = moa::json::Parse(body);
  if (parsed.ok() && parsed->is_object()) return parsed;
  *error = {400,
            parsed.ok()
                ? std::string("the request body is not a JSON object")
                : absl::StrCat("the request body is not valid JSON: ", parsed.status().message()),
            "invalid_request_error", "", ""};
  return absl::InvalidArgumentError(error->message);
}

bool CheckFields(const json& request, absl::Span<const FieldRule> rules, absl::string_view api,
                 HttpError* error) {
  for (const auto& [key, value] : request.items()) {
    if (value.is_null()) continue;
    const FieldRule* rule = nullptr;
    for (const FieldRule& r : rules) {
      if (key == r.name) rule = &r;
    }
    if (rule == nullptr) {
      *error = BadField(key, absl::StrCat("is not a field of ", api,
                                          " this server knows; it is refused rather than "
                                          "ignored (docs/http-api.md: the field table)"));
      return false;
    }
    if (rule->accepts != nullptr && !rule->accepts(value, request)) {
      *error = BadField(key, rule->refusal);
      return false;
    }
  }
  return true;
}

bool OnlyKnownKeys(const json& object, std::initializer_list<absl::string_view> known,
                   absl::string_view path, HttpError* error) {
  for (const auto& [key, value] : object.items()) {
    if (value.is_null()) continue;
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      *error = BadField(absl::StrCat(path, key),
                        absl::StrCat("is not a field this server knows (it reads ",
                                     absl::StrJoin(known, ", "), "); refused rather than ignored"));
      return false;
    }
  }
  return true;
}

std::vector<std::string> FieldNames(absl::Span<const FieldRule> rules) {
  std::vector<std::string> out;
  for (const FieldRule& r : rules) out.emplace_back(r.name);
  return out;
}

}  // namespace moa::orchestrator
