// What an orchestrator's admin API (a peer of the `moa` CLI, or whatever
// answers at --admin_url) may send: a key listing for `moa keys list` and
// one key's view for `moa spend`. Neither may abort; anything that is not
// the expected shape is an error for that command.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/moa/keys_admin.h"
#include "tools/moa/spend.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  (void)moa::cli::KeyTable(body);
  (void)moa::cli::SpendFromKeyView("k", body);
  return 0;
}
