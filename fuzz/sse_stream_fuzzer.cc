// The upstream's bytes as the proposer's client reads them: the SSE parser fed
// in pieces, each event parsed as a stream chunk and accumulated into an
// answer, as CurlLlmClient does. Differential too: a second parser fed one
// byte at a time must see the same events (where a stream splits never
// changes what it says).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "lib/llm/openai_json.h"
#include "lib/llm/sse_parser.h"

namespace {

// Events as "event\0data" strings, and whether the stream stayed well-formed.
std::vector<std::string> Events(absl::string_view input, size_t piece, bool* ok) {
  moa::llm::SseParser parser;
  std::vector<std::string> events;
  *ok = true;
  for (size_t at = 0; at < input.size() && *ok; at += piece) {
    *ok = parser.Feed(input.substr(at, piece), [&](const moa::llm::SseEvent& event) {
      events.push_back(event.event + std::string(1, '\0') + event.data);
    });
  }
  return events;
}

}  // namespace

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
  bool pieces_ok = false, bytes_ok = false;
  if (Events(input, piece, &pieces_ok) != Events(input, 1, &bytes_ok) || pieces_ok != bytes_ok) {
    std::fprintf(stderr, "events differ between pieces of %zu bytes and single bytes\n", piece);
    std::abort();
  }
  (void)moa::llm::ErrorMessageFromBody(input);
  return 0;
}
