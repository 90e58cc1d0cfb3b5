// The simulator's reading of a chat completion request and the answer it
// plans for it: kept apart from the server so the fuzz target drives exactly
// what a peer's bytes reach.
#ifndef MOA_TOOLS_UPSTREAM_SIM_SIM_REQUEST_H_
#define MOA_TOOLS_UPSTREAM_SIM_SIM_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/base/json.h"
#include "tools/upstream-sim/answer.h"

namespace moa::sim {

// The API a request came in: the simulator answers in the same one.
enum class SimApi { kOpenAi, kAnthropic, kGemini };

// A chat request as the simulator reads it. Values of the wrong type are
// the client's error (400), never an exception.
struct ChatRequestInfo {
  SimApi api = SimApi::kOpenAi;
  std::string model;
  std::vector<SimMessage> messages;
  moa::json::Json messages_json;  // As received, for the request log.
  moa::json::Json params;         // Sampling parameters as received, for tests to check.
  bool stream = false;
  bool include_usage = false;
  std::optional<int64_t> max_tokens;
  // The names of the request's function tools, in order, and the one
  // tool_choice names ("" for none named); tool_choice "none".
  std::vector<std::string> tool_names;
  std::string tool_choice_function;
  bool tool_choice_none = false;
  // The request asks the model to think; and (Gemini's includeThoughts)
  // to send the thinking's text.
  bool wants_reasoning = false;
  bool include_thoughts = false;
  // The response_format as received (null when none).
  moa::json::Json response_format;
  // The x-request-id and traceparent headers as received (at most 256
  // bytes each), for the request log.
  std::string request_id;
  std::string traceparent;
};

// Parses a POST /v1/chat/completions body; INVALID_ARGUMENT names what is
// wrong.
absl::StatusOr<ChatRequestInfo> ParseChat(absl::string_view body);

// What the simulator answers: `length` tokens of the deterministic answer,
// or, for a continuation, the rest of the answer the conversation before it
// would get (docs/simulator.md, "moa-upstream-sim").
struct PlannedAnswer {
  Continuation::Kind continuation = Continuation::Kind::kNone;
  // Set: the answer is a call of this tool, `tokens` its arguments' pieces.
  std::string tool_call;
  std::vector<std::string> tokens;
  int prompt_tokens = 0;
};
// `fixed`, when not empty, is the answer's text (a profile's answer_text).
// `tool_arguments`, when set, makes the answer a tool call when the request
// asks for one (Profile::tool_calls).
PlannedAnswer PlanAnswer(const ChatRequestInfo& info, int length, absl::string_view fixed = "",
                         const std::string* tool_arguments = nullptr);

}  // namespace moa::sim

#endif  // MOA_TOOLS_UPSTREAM_SIM_SIM_REQUEST_H_
