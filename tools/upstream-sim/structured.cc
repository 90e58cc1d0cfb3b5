#include "tools/upstream-sim/structured.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace moa::sim {

using json = moa::json::Json;

std::optional<RequestedJson> FindRequestedJson(const json& response_format,
                                               const std::vector<SimMessage>& messages) {
  if (response_format.is_object()) {
    const json* type = moa::json::Member(response_format, "type");
    if (type != nullptr && *type == "json_object") return RequestedJson{};
    if (type != nullptr && *type == "json_schema") {
      const json* js = moa::json::Member(response_format, "json_schema");
      const json* schema = js == nullptr ? nullptr : moa::json::Member(*js, "schema");
      if (schema != nullptr) return RequestedJson{*schema};
      return RequestedJson{};
    }
  }
  for (const SimMessage& m : messages) {
    if (m.role != "system") continue;
    if (absl::StrContains(m.content, "Answer with one JSON object")) return RequestedJson{};
    const size_t at = m.content.find("conforms to this JSON Schema");
    if (at == std::string::npos) continue;
    const size_t line = m.content.find('\n', at);
    if (line == std::string::npos) return RequestedJson{};
    const size_t end = m.content.find('\n', line + 1);
    absl::StatusOr<json> schema = moa::json::Parse(
        m.content.substr(line + 1, end == std::string::npos ? std::string::npos : end - line - 1));
    if (schema.ok()) return RequestedJson{*std::move(schema)};
    return RequestedJson{};
  }
  return std::nullopt;
}

namespace {

json Conforming(const json& schema, int depth, int* budget) {
  if (depth > 16 || !schema.is_object() || --*budget < 0) return nullptr;
  if (const json* c = moa::json::Member(schema, "const")) return *c;
  if (const json* e = moa::json::Member(schema, "enum"); e != nullptr && e->is_array()) {
    return e->empty() ? json(nullptr) : (*e)[0];
  }
  for (const char* key : {"anyOf", "oneOf", "allOf"}) {
    const json* list = moa::json::Member(schema, key);
    if (list != nullptr && list->is_array() && !list->empty()) {
      return Conforming((*list)[0], depth + 1, budget);
    }
  }
  const json* type = moa::json::Member(schema, "type");
  std::string kind = "object";
  if (type != nullptr && type->is_string()) kind = type->get<std::string>();
  if (type != nullptr && type->is_array() && !type->empty() && (*type)[0].is_string()) {
    kind = (*type)[0].get<std::string>();
  }
  auto minimum = [&](double fallback) {
    const json* m = moa::json::Member(schema, "minimum");
    return m != nullptr && m->is_number() ? std::max(m->get<double>(), fallback) : fallback;
  };
  if (kind == "string") {
    const json* min = moa::json::Member(schema, "minLength");
    const int64_t n = min != nullptr && min->is_number_unsigned() ? min->get<int64_t>() : 0;
    return std::string(static_cast<size_t>(std::min<int64_t>(std::max<int64_t>(n, 3), 256)), 's');
  }
  if (kind == "integer") return static_cast<int64_t>(minimum(0));
  if (kind == "number") return minimum(0);
  if (kind == "boolean") return true;
  if (kind == "null") return nullptr;
  if (kind == "array") {
    json out = json::array();
    const json* min = moa::json::Member(schema, "minItems");
    const int64_t n = min != nullptr && min->is_number_unsigned() ? min->get<int64_t>() : 0;
    const json* items = moa::json::Member(schema, "items");
    for (int64_t i = 0; i < std::min<int64_t>(n, 16); ++i) {
      out.push_back(items == nullptr ? json(nullptr) : Conforming(*items, depth + 1, budget));
    }
    return out;
  }
  json out = json::object();
  if (const json* properties = moa::json::Member(schema, "properties");
      properties != nullptr && properties->is_object()) {
    for (const auto& [name, sub] : properties->items()) {
      out[name] = Conforming(sub, depth + 1, budget);
    }
  }
  return out;
}

}  // namespace

json ConformingValue(const json& schema) {
  int budget = 10000;
  return Conforming(schema, 0, &budget);
}

}  // namespace moa::sim
