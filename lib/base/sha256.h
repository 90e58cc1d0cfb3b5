// SHA-256 (OpenSSL's) as 64 lowercase hex digits: how client keys are
// stored, so a leaked keys file does not leak the keys.
#ifndef MOA_LIB_BASE_SHA256_H_
#define MOA_LIB_BASE_SHA256_H_

#include <string>

#include "absl/strings/string_view.h"

namespace moa {

std::string Sha256Hex(absl::string_view data);
// True for a digest as Sha256Hex writes it.
bool IsSha256Hex(absl::string_view text);

// `bytes` random bytes from the kernel's CSPRNG (getrandom), as hex: for
// secrets.
std::string RandomSecretHex(size_t bytes);

}  // namespace moa

#endif  // MOA_LIB_BASE_SHA256_H_
