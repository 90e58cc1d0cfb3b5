// Ids of responses (chatcmpl-..., msg_..., resp_...): a prefix and 24
// random hex digits. Not secrets: unique enough to tell responses apart.
#ifndef MOA_LIB_BASE_RANDOM_ID_H_
#define MOA_LIB_BASE_RANDOM_ID_H_

#include <random>
#include <string>

#include "absl/strings/string_view.h"

namespace moa {

inline std::string NewId(absl::string_view prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char kHex[] = "0123456789abcdef";
  std::string id(prefix);
  for (int i = 0; i < 24; ++i) id += kHex[rng() % 16];
  return id;
}

}  // namespace moa

#endif  // MOA_LIB_BASE_RANDOM_ID_H_
