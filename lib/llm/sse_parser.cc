#include "lib/llm/sse_parser.h"

namespace moa::llm {

bool SseParser::Feed(absl::string_view bytes, const EventCallback& on_event) {
  size_t at = 0;
  if (last_was_cr_ && !bytes.empty()) {  // The LF of a CRLF whose CR ended the line already.
    if (bytes[0] == '\n') at = 1;
    last_was_cr_ = false;
  }
  while (at < bytes.size()) {
    size_t end = at;
    while (end < bytes.size() && bytes[end] != '\n' && bytes[end] != '\r') ++end;
    absl::string_view piece = bytes.substr(at, end - at);
    if (line_.size() + piece.size() > kMaxLineBytes) return false;
    if (end == bytes.size()) {  // The line goes on in the next bytes.
      line_.append(piece.data(), piece.size());
      return true;
    }
    bool ok;
    if (line_.empty()) {  // The whole line is here: no copy.
      ok = ProcessLine(piece, on_event);
    } else {
      line_.append(piece.data(), piece.size());
      ok = ProcessLine(line_, on_event);
      line_.clear();
    }
    if (!ok) return false;
    at = end + 1;
    if (bytes[end] == '\r') {
      if (at == bytes.size()) {
        last_was_cr_ = true;
      } else if (bytes[at] == '\n') {
        ++at;
      }
    }
  }
  return true;
}

void SseParser::Reset() {
  line_.clear();
  last_was_cr_ = false;
  have_data_ = false;
  pending_ = SseEvent{};
}

bool SseParser::ProcessLine(absl::string_view line, const EventCallback& on_event) {
  if (line.empty()) {
    if (have_data_) on_event(pending_);
    // Reuse the buffers for the next event unless one grew large.
    if (pending_.data.capacity() > kKeptEventCapacity) {
      pending_ = SseEvent{};
    } else {
      pending_.event.clear();
      pending_.data.clear();
    }
    have_data_ = false;
    return true;
  }
  if (line.front() == ':')
    return true;  // Comment, e.g. ": keep-alive" or ": OPENROUTER PROCESSING".
  absl::string_view field = line;
  absl::string_view value;
  if (size_t colon = line.find(':'); colon != absl::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (have_data_) pending_.data.push_back('\n');
    pending_.data.append(value.data(), value.size());
    have_data_ = true;
    if (pending_.data.size() > kMaxEventBytes) return false;
  } else if (field == "event") {
    pending_.event.assign(value.data(), value.size());
  }
  // "id" and "retry" mean nothing for a chat completion stream.
  return true;
}

}  // namespace moa::llm
