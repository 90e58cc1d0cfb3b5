// The simulator speaking the Anthropic Messages API (POST /v1/messages):
// reading a request into the simulator's terms, and writing its answer as
// that API's events or message. Pure functions; the server sends them.
#ifndef MOA_TOOLS_UPSTREAM_SIM_SIM_ANTHROPIC_H_
#define MOA_TOOLS_UPSTREAM_SIM_SIM_ANTHROPIC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/upstream-sim/sim_request.h"

namespace moa::sim {

// What every piece of one answer says about it.
struct AnswerFacts {
  int64_t id = 0;
  std::string model;
  int prompt_tokens = 0;
  std::string tool_call;     // Set: the answer calls this tool.
  std::string tool_call_id;  // Its id.
  // Thinking before the answer: tokens, and whether its text is sent.
  int reasoning_tokens = 0;
  bool reasoning_text = false;
};

// `n` tokens of simulated thinking text.
std::string ThinkingText(int n);

namespace anthropic {

// Parses a Messages request; INVALID_ARGUMENT names what is wrong (the API
// requires model, max_tokens and messages).
absl::StatusOr<ChatRequestInfo> Parse(absl::string_view body);

// The events before the first token (message_start, content_block_start,
// a ping), token k (a text_delta or input_json_delta), and the end
// (content_block_stop, message_delta with the stop reason and usage,
// message_stop). finish_reason is in OpenAI's words.
std::string StreamStart(const AnswerFacts& facts);
std::string StreamToken(const AnswerFacts& facts, const std::string& token);
std::string StreamEnd(const AnswerFacts& facts, absl::string_view finish_reason,
                      int completion_tokens);
// A non-streamed answer: the whole message.
std::string Whole(const AnswerFacts& facts, const std::string& text,
                  absl::string_view finish_reason, int completion_tokens);
// {"type":"error","error":{"type":..., "message":...}}.
std::string ErrorBody(absl::string_view type, absl::string_view message);

}  // namespace anthropic
}  // namespace moa::sim

#endif  // MOA_TOOLS_UPSTREAM_SIM_SIM_ANTHROPIC_H_
