// Differential: the scanner ParseStreamChunk uses for common stream events
// must agree with the full JSON parse on every event it accepts. A mismatch
// (or a crash in either) aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "lib/llm/openai_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  auto scanned = moa::llm::ScanCommonStreamChunk(input);
  auto tree = moa::llm::ParseStreamChunkTree(input);
  if (!scanned) return 0;
  bool same = tree.ok() && !tree->error && !tree->usage && tree->delta == scanned->delta &&
              tree->finish_reason == scanned->finish_reason && !scanned->usage && !scanned->error &&
              tree->tool_calls.empty() && scanned->tool_calls.empty() && tree->reasoning.empty() &&
              scanned->reasoning.empty();
  if (!same) {
    std::fprintf(stderr, "scanner and tree parser disagree on: %.*s\n",
                 static_cast<int>(input.size()), input.data());
    std::abort();
  }
  return 0;
}
