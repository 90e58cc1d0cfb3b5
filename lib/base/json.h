// Typed, non-throwing access to JSON that came from a peer (a client, an
// upstream, a file). nlohmann::json throws on a wrong type (`get<T>`,
// `value()`) and on invalid UTF-8 when serialising; on the data path an
// escaped exception aborts the process. Everything here turns a wrong value
// into an absl::Status naming the field instead.
#ifndef MOA_LIB_BASE_JSON_H_
#define MOA_LIB_BASE_JSON_H_

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moa::json {

using Json = nlohmann::json;

// Nesting deeper than this is refused before parsing: copying, comparing and
// serialising a parsed value recurse once per level.
inline constexpr int kDefaultMaxDepth = 64;

// Parses `text`. INVALID_ARGUMENT when it is not JSON (with the byte offset)
// or nests deeper than `max_depth` arrays/objects.
absl::StatusOr<Json> Parse(absl::string_view text, int max_depth = kDefaultMaxDepth);

// Serialises compactly; invalid UTF-8 in strings becomes U+FFFD. Never throws.
std::string Dump(const Json& value);
// A JSON string literal (with quotes) of `text`, invalid UTF-8 replaced.
std::string Quote(absl::string_view text);

// The member `key` of `object`, or nullptr when `object` is not an object,
// the member is absent, or it is null.
const Json* Member(const Json& object, absl::string_view key);

// Typed optional members: nullopt when absent or null; INVALID_ARGUMENT
// "`path` must be ..." when present with another type or out of range.
absl::StatusOr<std::optional<std::string>> OptionalString(const Json& object, absl::string_view key,
                                                          absl::string_view path);
absl::StatusOr<std::optional<bool>> OptionalBool(const Json& object, absl::string_view key,
                                                 absl::string_view path);
// Integers only (1.5 and "3" are refused); the range is inclusive.
absl::StatusOr<std::optional<int64_t>> OptionalInt(
    const Json& object, absl::string_view key, absl::string_view path, int64_t min = 0,
    int64_t max = std::numeric_limits<int64_t>::max());
// Any finite number.
absl::StatusOr<std::optional<double>> OptionalNumber(const Json& object, absl::string_view key,
                                                     absl::string_view path);

}  // namespace moa::json

#endif  // MOA_LIB_BASE_JSON_H_
