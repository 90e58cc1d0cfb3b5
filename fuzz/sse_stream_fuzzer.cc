// The upstream's bytes as the proposer's client reads them: the SSE parser fed
// in pieces, each event parsed as a stream chunk and accumulated into an
// answer, as CurlLlmClient does.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "lib/llm/openai_json.h"
#include "lib/llm/sse_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  // The first byte picks the piece size, so split points vary too.
  size_t piece = size == 0 ? 1 : 1 + data[0] % 61;
  moa::llm::SseParser parser;
  std::string answer;
  moa::llm::Usage usage;
  bool failed = false;
  for (size_t at = 0; at < input.size() && !failed; at += piece) {
    bool ok = parser.Feed(input.substr(at, piece), [&](const moa::llm::SseEvent& event) {
      if (failed || event.data == "[DONE]") return;
      auto chunk = moa::llm::ParseStreamChunk(event.data);
      if (!chunk.ok() || chunk->error) {
        failed = true;
        return;
      }
      answer += chunk->delta;
      if (chunk->usage) usage = *chunk->usage;
    });
    failed = failed || !ok;
  }
  (void)moa::llm::ErrorMessageFromBody(input);
  return 0;
}
