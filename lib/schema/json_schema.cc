#include "lib/schema/json_schema.h"

#include <algorithm>
#include <exception>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "valijson/adapters/nlohmann_json_adapter.hpp"
#include "valijson/schema.hpp"
#include "valijson/schema_parser.hpp"
#include "valijson/validation_results.hpp"
#include "valijson/validator.hpp"

namespace moa::schema {
namespace {

using Json = nlohmann::json;

// Keywords whose check would run std::regex over a model's text.
constexpr const char* kRegexKeywords[] = {"pattern", "patternProperties", "format"};

// Subschemas applied to the same instance as their parent: a cycle of these
// (with $ref) never consumes any of the value, so it would never end.
constexpr const char* kSameInstanceOne[] = {"not", "if", "then", "else"};
constexpr const char* kSameInstanceMany[] = {"allOf", "anyOf", "oneOf"};
// Subschemas applied to a part of the instance.
constexpr const char* kChildOne[] = {"additionalProperties", "additionalItems", "contains",
                                     "propertyNames"};
constexpr const char* kChildMap[] = {"properties", "definitions", "$defs"};

class SchemaWalk {
 public:
  SchemaWalk(const Json& root, absl::string_view path) : root_(root), path_(path) {}

  absl::Status Run() {
    if (absl::Status s = Visit(root_, "", /*is_root=*/true); !s.ok()) return s;
    for (const Json* node : nodes_) {
      std::set<const Json*> on_path;
      if (absl::Status s = NoCycleFrom(node, on_path); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  bool unique_items() const { return unique_items_; }

 private:
  absl::Status Refuse(const std::string& where, absl::string_view why) const {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, where.empty() ? "" : " at ", where, ": ", why));
  }

  absl::Status Visit(const Json& node, const std::string& where, bool is_root = false) {
    // Each level is a stack frame here and in valijson: `$ref` chains may
    // nest deeper than the request's JSON does.
    struct Depth {
      explicit Depth(int& d) : d_(d) { ++d_; }
      ~Depth() { --d_; }
      int& d_;
    } depth(depth_);
    if (depth_ > kMaxDepth) return Refuse(where, "the schema nests too deeply (over 128 levels)");
    if (node.is_boolean()) return absl::OkStatus();
    if (!node.is_object()) return Refuse(where, "a schema must be an object or a boolean");
    if (!visited_.insert(&node).second) return absl::OkStatus();
    nodes_.push_back(&node);
    for (const char* k : kRegexKeywords) {
      if (node.contains(k)) {
        return Refuse(where,
                      absl::StrCat("'", k,
                                   "' is not supported: its check would run a backtracking regular "
                                   "expression over the model's text, which a long answer can "
                                   "overflow; refused rather than left unchecked"));
      }
    }
    if (!is_root && node.contains("$id")) {
      return Refuse(where, "'$id' is supported only at the root: every '$ref' is resolved there");
    }
    if (auto it = node.find("$ref"); it != node.end()) {
      if (!it->is_string()) return Refuse(where, "'$ref' must be a string");
      // The target is read as a schema wherever it is (even inside an
      // `enum`), so it is checked as one.
      auto target = Resolve(it->get_ref<const std::string&>(), where);
      if (!target.ok()) return target.status();
      if (absl::Status s = Visit(**target, it->get<std::string>()); !s.ok()) return s;
    }
    if (auto it = node.find("uniqueItems"); it != node.end() && *it == true) unique_items_ = true;
    for (const char* k : kSameInstanceOne) {
      if (auto it = node.find(k); it != node.end()) {
        if (absl::Status s = Visit(*it, absl::StrCat(where, "/", k)); !s.ok()) return s;
      }
    }
    for (const char* k : kChildOne) {
      if (auto it = node.find(k); it != node.end()) {
        if (absl::Status s = Visit(*it, absl::StrCat(where, "/", k)); !s.ok()) return s;
      }
    }
    for (const char* k : kSameInstanceMany) {
      if (auto it = node.find(k); it != node.end()) {
        if (!it->is_array()) return Refuse(where, absl::StrCat("'", k, "' must be an array"));
        for (size_t i = 0; i < it->size(); ++i) {
          if (absl::Status s = Visit((*it)[i], absl::StrCat(where, "/", k, "/", i)); !s.ok()) {
            return s;
          }
        }
      }
    }
    if (auto it = node.find("items"); it != node.end()) {
      if (it->is_array()) {
        for (size_t i = 0; i < it->size(); ++i) {
          if (absl::Status s = Visit((*it)[i], absl::StrCat(where, "/items/", i)); !s.ok()) {
            return s;
          }
        }
      } else if (absl::Status s = Visit(*it, where + "/items"); !s.ok()) {
        return s;
      }
    }
    for (const char* k : kChildMap) {
      if (auto it = node.find(k); it != node.end()) {
        if (!it->is_object()) return Refuse(where, absl::StrCat("'", k, "' must be an object"));
        for (const auto& [name, sub] : it->items()) {
          if (absl::Status s = Visit(sub, absl::StrCat(where, "/", k, "/", name)); !s.ok()) {
            return s;
          }
        }
      }
    }
    if (auto it = node.find("dependencies"); it != node.end() && it->is_object()) {
      for (const auto& [name, sub] : it->items()) {
        if (sub.is_array()) continue;  // Property names, not a schema.
        if (absl::Status s = Visit(sub, absl::StrCat(where, "/dependencies/", name)); !s.ok()) {
          return s;
        }
      }
    }
    return absl::OkStatus();
  }

  // A local reference ("#" or "#/json/pointer") into the root.
  absl::StatusOr<const Json*> Resolve(const std::string& ref, const std::string& where) const {
    if (ref.empty() || ref[0] != '#') {
      return Refuse(where, absl::StrCat("'$ref' must point into this schema (\"#/...\"); \"", ref,
                                        "\" would be fetched, and nothing is"));
    }
    if (ref == "#") return &root_;
    if (ref.size() < 2 || ref[1] != '/') {
      return Refuse(where, absl::StrCat("'$ref' \"", ref, "\" is not a JSON pointer (\"#/...\")"));
    }
    // A URI fragment: percent-escapes decode first ("%25" is "%").
    std::string decoded;
    for (size_t i = 1; i < ref.size(); ++i) {
      if (ref[i] == '%' && i + 2 < ref.size() && absl::ascii_isxdigit(ref[i + 1]) &&
          absl::ascii_isxdigit(ref[i + 2])) {
        decoded += static_cast<char>(std::stoi(ref.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        decoded += ref[i];
      }
    }
    try {
      const Json::json_pointer pointer(decoded);
      if (!root_.contains(pointer)) {
        return Refuse(where, absl::StrCat("'$ref' \"", ref, "\" points at nothing"));
      }
      return &root_.at(pointer);
    } catch (const std::exception& e) {
      return Refuse(where, absl::StrCat("'$ref' \"", ref, "\" is not a JSON pointer"));
    }
  }

  // The subschemas `node` applies to the same instance (the $ref target too).
  std::vector<const Json*> SameInstance(const Json* node) const {
    std::vector<const Json*> out;
    if (!node->is_object()) return out;
    if (auto it = node->find("$ref"); it != node->end() && it->is_string()) {
      if (auto target = Resolve(it->get_ref<const std::string&>(), ""); target.ok()) {
        out.push_back(*target);
      }
    }
    for (const char* k : kSameInstanceOne) {
      if (auto it = node->find(k); it != node->end()) out.push_back(&*it);
    }
    for (const char* k : kSameInstanceMany) {
      if (auto it = node->find(k); it != node->end() && it->is_array()) {
        for (const Json& sub : *it) out.push_back(&sub);
      }
    }
    if (auto it = node->find("dependencies"); it != node->end() && it->is_object()) {
      for (const auto& [name, sub] : it->items()) {
        if (sub.is_object()) out.push_back(&sub);
      }
    }
    return out;
  }

  // No cycle of same-instance subschemas, and no fan-out past
  // kMaxSameInstance: each value is checked against a node and, recursively,
  // everything it applies to that same value, so a chain of two-way anyOfs
  // (or $refs used twice) costs 2^depth checks of one value, a CPU bomb in a
  // few hundred bytes. The cost of a node is counted once (memoized).
  absl::Status NoCycleFrom(const Json* node, std::set<const Json*>& on_path) {
    if (cost_.count(node) > 0) return absl::OkStatus();
    if (!on_path.insert(node).second) {
      return Refuse("", "a '$ref' leads back to itself without reading any of the value");
    }
    if (on_path.size() > static_cast<size_t>(kMaxDepth)) {
      return Refuse("", "'$ref' chains are nested too deeply");
    }
    size_t cost = 1;
    for (const Json* next : SameInstance(node)) {
      if (absl::Status s = NoCycleFrom(next, on_path); !s.ok()) return s;
      cost = std::min(cost + cost_[next], kMaxSameInstance + 1);
    }
    if (cost > kMaxSameInstance) {
      return Refuse("", absl::StrCat("over ", kMaxSameInstance,
                                     " subschemas apply to one value (allOf, anyOf, oneOf, not, "
                                     "if/then/else and $refs, counted as expanded)"));
    }
    on_path.erase(node);
    cost_[node] = cost;
    return absl::OkStatus();
  }

  static constexpr int kMaxDepth = 128;
  static constexpr size_t kMaxSameInstance = 256;
  const Json& root_;
  const std::string path_;
  int depth_ = 0;
  std::vector<const Json*> nodes_;
  std::set<const Json*> visited_;
  std::map<const Json*, size_t> cost_;  // Of each node checked: see NoCycleFrom.
  bool unique_items_ = false;
};

// The longest array anywhere in `value`.
size_t LongestArray(const Json& value) {
  size_t longest = 0;
  if (value.is_array()) longest = value.size();
  if (value.is_array() || value.is_object()) {
    for (const Json& child : value) longest = std::max(longest, LongestArray(child));
  }
  return longest;
}

}  // namespace

JsonSchema::JsonSchema() = default;
JsonSchema::JsonSchema(JsonSchema&&) noexcept = default;
JsonSchema& JsonSchema::operator=(JsonSchema&&) noexcept = default;
JsonSchema::~JsonSchema() = default;

absl::StatusOr<JsonSchema> JsonSchema::Compile(const Json& schema, absl::string_view path) {
  SchemaWalk walk(schema, path);
  if (absl::Status s = walk.Run(); !s.ok()) return s;
  JsonSchema out;
  out.schema_ = std::make_unique<valijson::Schema>();
  out.unique_items_ = walk.unique_items();
  try {
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(schema);
    parser.populateSchema(adapter, *out.schema_);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a JSON Schema this server can check: ", e.what()));
  }
  return out;
}

absl::Status JsonSchema::Validate(const Json& value) const {
  if (unique_items_ && LongestArray(value) > kMaxUniqueItems) {
    return absl::InvalidArgumentError(absl::StrCat("an array of over ", kMaxUniqueItems,
                                                   " items under a schema with uniqueItems is not "
                                                   "compared item by item; refused"));
  }
  valijson::ValidationResults results;
  bool ok = false;
  try {
    valijson::Validator validator(valijson::Validator::kStrongTypes);
    valijson::adapters::NlohmannJsonAdapter adapter(value);
    ok = validator.validate(*schema_, adapter, &results);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("the schema check failed: ", e.what()));
  }
  if (ok) return absl::OkStatus();
  std::vector<std::string> errors;
  valijson::ValidationResults::Error error;
  while (errors.size() < kMaxErrors && results.popError(error)) {
    errors.push_back(absl::StrCat(absl::StrJoin(error.context, ""), ": ", error.description));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("does not conform to the schema: ", absl::StrJoin(errors, "; ")));
}

}  // namespace moa::schema
