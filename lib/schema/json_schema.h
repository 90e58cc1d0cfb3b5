// A client's JSON Schema, compiled once and checked against answers.
//
// Schemas and answers both come from peers (a client's request, a model's
// text), so both are bounded before valijson sees them:
// - keywords whose check runs a backtracking regex engine over the answer
//   (`pattern`, `patternProperties`, `format`) are refused by name: a long
//   string could overflow the stack or take exponential time, and a keyword
//   not checked would be a keyword silently ignored;
// - `$ref` may point only into the schema itself, and a chain of `$ref` and
//   same-instance applicators (allOf, anyOf, oneOf, not, if/then/else,
//   dependencies) that comes back to where it began is refused: it would
//   recurse without end; so is one that fans out to over 256 subschemas
//   applied to one value (a chain of anyOfs doubles the work per link);
// - `uniqueItems` compares every pair: an answer array over 2,000 items
//   under a schema that says it is refused rather than compared.
// Draft-07 keywords otherwise (draft-04 and -06 schemas are read the same
// way); docs/http-api.md, "Structured outputs".
#ifndef MOA_LIB_SCHEMA_JSON_SCHEMA_H_
#define MOA_LIB_SCHEMA_JSON_SCHEMA_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace valijson {
class Schema;
}

namespace moa::schema {

class JsonSchema {
 public:
  static constexpr size_t kMaxUniqueItems = 2000;
  static constexpr size_t kMaxErrors = 5;  // Violations a failure names.

  // INVALID_ARGUMENT naming `path` (e.g. response_format.json_schema.schema)
  // and the keyword when the schema is not one this server checks.
  static absl::StatusOr<JsonSchema> Compile(const nlohmann::json& schema, absl::string_view path);

  // OK when `value` conforms; else INVALID_ARGUMENT listing the first
  // violations, each with where in the value it is ("<root>.city: ...").
  absl::Status Validate(const nlohmann::json& value) const;

  JsonSchema(JsonSchema&&) noexcept;
  JsonSchema& operator=(JsonSchema&&) noexcept;
  ~JsonSchema();

 private:
  JsonSchema();
  std::unique_ptr<valijson::Schema> schema_;
  bool unique_items_ = false;
};

}  // namespace moa::schema

#endif  // MOA_LIB_SCHEMA_JSON_SCHEMA_H_
