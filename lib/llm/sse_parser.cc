#include "lib/llm/sse_parser.h"

namespace moa::llm {

bool SseParser::Feed(absl::string_view bytes, const EventCallback& on_event) {
  for (char c : bytes) {
    if (c == '\n' && last_was_cr_) {  // The LF of a CRLF whose CR ended the line already.
      last_was_cr_ = false;
      continue;
    }
    last_was_cr_ = false;
    if (c == '\r' || c == '\n') {
      last_was_cr_ = (c == '\r');
      bool ok = ProcessLine(line_, on_event);
      line_.clear();
      if (!ok) return false;
      continue;
    }
    line_.push_back(c);
    if (line_.size() > kMaxLineBytes) return false;
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
    pending_ = SseEvent{};
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
