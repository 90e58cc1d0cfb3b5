// A client's JSON Schema and a model's answer, as structured outputs will
// read them: the input is the schema, a NUL byte, then the answer (both
// parsed with the request parser's depth bound); the schema is compiled
// and, when it is one we check, the answer validated.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "lib/base/json.h"
#include "lib/schema/json_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  auto schema_json = moa::json::Parse(input.substr(0, nul));
  if (!schema_json.ok()) return 0;
  auto schema = moa::schema::JsonSchema::Compile(*schema_json, "schema");
  if (!schema.ok() || nul == absl::string_view::npos) return 0;
  auto answer = moa::json::Parse(input.substr(nul + 1));
  if (!answer.ok()) return 0;
  (void)schema->Validate(*answer);
  return 0;
}
