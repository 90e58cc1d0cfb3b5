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

enum class Role { kSystem, kUser, kAssistant, kTool };

// "system", "user", "assistant" or "tool", as the OpenAI API spells it.
inline const char* RoleName(Role role) {
  switch (role) {
    case Role::kSystem:
      return "system";
    case Role::kUser:
      return "user";
    case Role::kAssistant:
      return "assistant";
    case Role::kTool:
      return "tool";
  }
  return "user";  // Unreachable: the switch covers every role.
}

// A call of one of the client's tools, as a model wrote it.
struct ToolCall {
  std::string id;         // The model's id for the call; a tool result names it.
  std::string name;       // The tool (function) called.
  std::string arguments;  // Its arguments: JSON text, as the model wrote them.
};

// An image in a message: an http(s) URL or a data:image/... URL.
struct Image {
  std::string url;
  std::string detail;  // "auto", "low", "high", or empty (the model's default).
};

struct Message {
  Role role = Role::kUser;
  std::string content;                    // May be empty on an assistant message with tool calls.
  std::vector<ToolCall> tool_calls = {};  // Assistant: the calls it made.
  std::string tool_call_id = {};          // Tool: the call this is the result of.
  std::vector<Image> images = {};         // Shown after the text (models with vision).
};

// A function the model may call (the client's `tools`).
struct Tool {
  std::string name;
  std::string description;
  std::string parameters_json;  // A JSON Schema object, as JSON text; empty: none given.
  bool strict = false;
};

// The client's tools and how the model may use them. No tools: a call
// without tools, and any tool turns of the conversation are sent as text
// (tool_text.h).
struct ToolOptions {
  std::vector<Tool> tools;
  // "" (the upstream's default), "auto", "none" or "required"; or, with
  // `choice_function` set, that function.
  std::string choice;
  std::string choice_function;
  std::optional<bool> parallel_tool_calls;

  bool empty() const { return tools.empty(); }
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
  // The client's tools, for the call that may use them.
  ToolOptions tools;
  // The upstream transfer ends with DEADLINE_EXCEEDED at this time.
  absl::Time deadline = absl::InfiniteFuture();
  // Sent upstream as x-request-id and traceparent (a child span) when set.
  TraceContext trace;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // Reasoning tokens included (they are billed as output).
  // Of completion_tokens, those spent thinking, when the upstream says
  // (OpenAI's completion_tokens_details, Gemini's thoughtsTokenCount;
  // Anthropic does not report them apart).
  int64_t reasoning_tokens = 0;
};

struct Completion {
  std::string finish_reason;  // "tool_calls" when the model called tools.
  std::vector<ToolCall> tool_calls;
  Usage usage;
  absl::Duration time_to_first_token;  // From Start() to the first delta.
  absl::Duration duration;             // From Start() to the end of the stream.
  int attempts = 1;
};

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_TYPES_H_
