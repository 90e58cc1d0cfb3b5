// Plain value types of one chat-completion call, independent of gRPC and HTTP.
#ifndef MOA_LIB_LLM_TYPES_H_
#define MOA_LIB_LLM_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lib/base/trace_context.h"

namespace moa::llm {

enum class Role { kSystem, kUser, kAssistant };

// "system", "user" or "assistant", as the OpenAI API spells it.
inline const char* RoleName(Role role) {
  switch (role) {
    case Role::kSystem:
      return "system";
    case Role::kUser:
      return "user";
    case Role::kAssistant:
      return "assistant";
  }
  return "user";  // Unreachable: the switch covers every role.
}

struct Message {
  Role role = Role::kUser;
  std::string content;
};

struct SamplingParams {
  std::optional<double> temperature;
  std::optional<int32_t> max_tokens;
  std::optional<double> top_p;
  std::optional<int64_t> seed;
  std::vector<std::string> stop;
};

// How a proposer asks its upstream to continue a partial answer.
enum class Continuation {
  // A trailing assistant message the model continues (servers with
  // assistant prefill).
  kPrefill,
  // The same, plus vLLM's `continue_final_message: true,
  // add_generation_prompt: false`, which vLLM needs to continue it.
  kVllm,
  // Portable: a user message asking to continue the given text
  // (kContinueInstruction + the text); any chat model, less exact.
  kInstruction,
};

inline constexpr const char* kContinueInstruction =
    "Continue your previous answer exactly where it stops, without repeating any of it. "
    "The answer so far:\n\n";

struct ChatRequest {
  std::vector<Message> messages;
  SamplingParams params;
  // Ask a vLLM server to continue the trailing assistant message.
  bool continue_final_message = false;
  // The upstream transfer ends with DEADLINE_EXCEEDED at this time.
  absl::Time deadline = absl::InfiniteFuture();
  // Sent upstream as x-request-id and traceparent (a child span) when set.
  TraceContext trace;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

struct Completion {
  std::string finish_reason;
  Usage usage;
  absl::Duration time_to_first_token;  // From Start() to the first delta.
  absl::Duration duration;             // From Start() to the end of the stream.
  int attempts = 1;
};

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_TYPES_H_
