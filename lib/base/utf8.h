// Cutting text on a UTF-8 character boundary: every string that goes into a
// protobuf message (proto3 strings must be valid UTF-8) or a prefix a model
// is shown.
#ifndef MOA_LIB_BASE_UTF8_H_
#define MOA_LIB_BASE_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace moa {

// The longest prefix of `text` of at most `max_bytes` bytes that does not
// end inside a character (text that is valid UTF-8 stays valid).
inline absl::string_view Utf8Prefix(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // Back off continuation bytes (10xxxxxx) so the cut falls before a
  // character's first byte.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace moa

#endif  // MOA_LIB_BASE_UTF8_H_
