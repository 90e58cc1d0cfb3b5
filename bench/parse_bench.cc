// Cost of reading one upstream stream event (ParseStreamChunk), which every
// streamed token pays in the proposer: the scanner for common events against
// the full JSON tree parse it falls back to. Prints ns per event (best of
// five rounds). A benchmark, not a test: it prints numbers and asserts nothing.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "lib/llm/openai_json.h"

ABSL_FLAG(int, parse_rounds, 200000, "Events parsed per round (five rounds, best kept).");

namespace moa::bench {
namespace {

struct Event {
  const char* what;
  std::string data;
};

template <typename Parse>
double NanosPerEvent(const std::string& data, Parse parse) {
  const int n = absl::GetFlag(FLAGS_parse_rounds);
  double best = 1e300;
  size_t sink = 0;
  for (int round = 0; round < 5; ++round) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      auto chunk = parse(data);
      sink += chunk.ok() ? chunk->delta.size() : 1;
    }
    std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
    best = std::min(best, took.count() / n);
  }
  if (sink == 42) std::printf(" ");  // Keeps the loop from being optimized away.
  return best;
}

void Run() {
  PrintMachine();
  const std::vector<Event> events = {
      {"OpenAI token event (190 bytes)",
       R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1694268190,)"
       R"("model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,)"
       R"("delta":{"content":" Hello"},"logprobs":null,"finish_reason":null}]})"},
      {"token with escapes and UTF-8",
       R"({"id":"c","choices":[{"index":0,"delta":{"content":"caf\u00e9 \"x\"\n日本"},)"
       R"("finish_reason":null}]})"},
      {"usage event (tree parser either way)",
       R"({"id":"c","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":340}})"},
  };
  for (const Event& e : events) {
    double tree =
        NanosPerEvent(e.data, [](const std::string& d) { return llm::ParseStreamChunkTree(d); });
    double used =
        NanosPerEvent(e.data, [](const std::string& d) { return llm::ParseStreamChunk(d); });
    std::printf("%-40s tree parse %7.0f ns, ParseStreamChunk %7.0f ns (%.1fx)\n", e.what, tree,
                used, tree / used);
    if (&e == &events.front()) {
      Summary("proposer: reading one streamed token's event",
              absl::StrFormat("%.0f ns (tree parse %.0f ns, %.1fx)", used, tree, tree / used));
    }
  }
}

}  // namespace
}  // namespace moa::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moa::bench::Run();
  return 0;
}
