#include "lib/base/json.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace moa::json {

namespace {

// Deepest array/object nesting of `text`, or -1 when it passes `limit`.
// Brackets inside strings do not count; escapes inside strings are skipped.
int NestingDepth(absl::string_view text, int limit) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return -1;
      deepest = std::max(deepest, depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

absl::Status WrongType(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, " must be ", what));
}

}  // namespace

absl::StatusOr<Json> Parse(absl::string_view text, int max_depth) {
  if (NestingDepth(text, max_depth) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON nests deeper than ", max_depth, " levels"));
  }
  // The parser itself is iterative and reports errors without throwing.
  Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return absl::InvalidArgumentError("malformed JSON");
  return value;
}

std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Quote(absl::string_view text) { return Dump(Json(std::string(text))); }

const Json* Member(const Json& object, absl::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<std::optional<std::string>> OptionalString(const Json& object, absl::string_view key,
                                                          absl::string_view path) {
  const Json* v = Member(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) return WrongType(path, "a string");
  return v->get_ref<const std::string&>();
}

absl::StatusOr<std::optional<bool>> OptionalBool(const Json& object, absl::string_view key,
                                                 absl::string_view path) {
  const Json* v = Member(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return WrongType(path, "a boolean");
  return v->get<bool>();
}

absl::StatusOr<std::optional<int64_t>> OptionalInt(const Json& object, absl::string_view key,
                                                   absl::string_view path, int64_t min,
                                                   int64_t max) {
  const Json* v = Member(object, key);
  if (v == nullptr) return std::nullopt;
  auto range = [&] {
    return WrongType(path, absl::StrCat("an integer in [", min, ", ", max, "]"));
  };
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(max) || (min > 0 && u < static_cast<uint64_t>(min))) {
      return range();
    }
    return static_cast<int64_t>(u);
  }
  if (!v->is_number_integer()) return range();
  int64_t n = v->get<int64_t>();
  if (n < min || n > max) return range();
  return n;
}

absl::StatusOr<std::optional<double>> OptionalNumber(const Json& object, absl::string_view key,
                                                     absl::string_view path) {
  const Json* v = Member(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return WrongType(path, "a number");
  double d = v->get<double>();
  if (!std::isfinite(d)) return WrongType(path, "a finite number");
  return d;
}

}  // namespace moa::json
