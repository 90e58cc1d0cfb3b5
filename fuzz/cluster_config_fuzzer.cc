// The cluster config loader on any text.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "lib/config/cluster_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto config = moa::config::ParseClusterConfig(yaml, "fuzz.yaml");
  if (config.ok()) (void)config->limits.HopMessageBytes();
  return 0;
}
