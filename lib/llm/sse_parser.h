// Incremental parser for Server-Sent Events (text/event-stream), as the
// OpenAI-compatible streaming APIs send them.
#ifndef MOA_LIB_LLM_SSE_PARSER_H_
#define MOA_LIB_LLM_SSE_PARSER_H_

#include <functional>
#include <string>

#include "absl/strings/string_view.h"

namespace moa::llm {

struct SseEvent {
  std::string event;  // The "event:" field; empty means "message".
  std::string data;   // "data:" lines joined with '\n'.
};

// Feeds bytes as they arrive, split anywhere (even inside a CRLF), and emits
// each complete event. Lines may end in CRLF, LF or CR; comment lines (":...")
// and unknown fields are ignored; an event is dispatched at a blank line, and
// only when it carried data, as the WHATWG spec says. Not thread-safe.
class SseParser {
 public:
  using EventCallback = std::function<void(const SseEvent&)>;

  // Caps a single line so a peer that never sends a newline cannot grow the
  // buffer without bound; Feed returns false once a line exceeds it.
  static constexpr size_t kMaxLineBytes = 4 << 20;
  // Caps one event (its data lines joined) likewise.
  static constexpr size_t kMaxEventBytes = 8 << 20;

  // Parses `bytes` and calls `on_event` for each event completed by them.
  // Returns false when the stream is malformed (over-long line or event).
  bool Feed(absl::string_view bytes, const EventCallback& on_event);

  // Clears all state, for a new stream.
  void Reset();

 private:
  // False when the event grew over kMaxEventBytes.
  bool ProcessLine(absl::string_view line, const EventCallback& on_event);

  // An event buffer up to this size is kept for the next event.
  static constexpr size_t kKeptEventCapacity = 64 << 10;

  std::string line_;
  bool last_was_cr_ = false;
  bool have_data_ = false;
  SseEvent pending_;
};

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_SSE_PARSER_H_
