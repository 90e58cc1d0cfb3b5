// Structured answers of the simulator: whether a request asks for JSON
// (natively, in response_format, or in the words the cluster's structured
// outputs put in the system message), and a value that conforms to a JSON
// Schema, so tests can see a model that follows the format and one that
// does not.
#ifndef MOA_TOOLS_UPSTREAM_SIM_STRUCTURED_H_
#define MOA_TOOLS_UPSTREAM_SIM_STRUCTURED_H_

#include <optional>
#include <string>
#include <vector>

#include "lib/base/json.h"
#include "tools/upstream-sim/answer.h"

namespace moa::sim {

// What JSON a request asks for.
struct RequestedJson {
  // Set: JSON conforming to this schema; unset: any JSON object.
  std::optional<moa::json::Json> schema;
};

// From the body's response_format, else from a system message that says
// "Answer with one JSON object" or quotes a schema on the line after
// "conforms to this JSON Schema"; nullopt when the request asks for none.
std::optional<RequestedJson> FindRequestedJson(const moa::json::Json& response_format,
                                               const std::vector<SimMessage>& messages);

// A small value that conforms to `schema` for the keywords tests use:
// const, enum, type (object with its properties, array with minItems of
// its items, string with minLength, integer and number with minimum,
// boolean, null), anyOf / oneOf / allOf (the first). Nesting past 16, and
// every value past the 10,000th (16 levels of minItems would be 16^16), is
// cut to null.
moa::json::Json ConformingValue(const moa::json::Json& schema);

}  // namespace moa::sim

#endif  // MOA_TOOLS_UPSTREAM_SIM_STRUCTURED_H_
