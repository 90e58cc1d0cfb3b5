// The OpenAI chat-completions wire format of the orchestrator's HTTP server:
// parsing requests into a Chat request, and the JSON of responses, stream
// chunks and errors. Pure functions.
#ifndef MOA_SERVICES_ORCHESTRATOR_OPENAI_API_H_
#define MOA_SERVICES_ORCHESTRATOR_OPENAI_API_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/base/json.h"
#include "moa/v1/orchestrator.pb.h"
#include "services/orchestrator/api_surface.h"

namespace moa::orchestrator::openai {

using ::moa::orchestrator::ErrorFromStatus;
using ::moa::orchestrator::HttpError;
using ::moa::orchestrator::ParsedRequest;

// {"error": {"message", "type", "param", "code"}}.
std::string ErrorJson(const HttpError& error);

// Parses a POST /v1/chat/completions body. Content may be a string or a
// list of {"type": "text", "text": ...} parts (joined). Every field is
// honoured or refused: a field this server does not know, a value asking for
// what it does not do (logprobs, n != 1, ...), other part types and
// values of the wrong type are 400 naming the param, never ignored. Tools,
// tool_choice, parallel_tool_calls and the conversation's tool turns become
// ChatRequest.tools and tool messages.
absl::StatusOr<ParsedRequest> ParseChatCompletionRequest(absl::string_view body, HttpError* error);

// The top-level fields the parser reads (honours, or accepts at values that
// ask for nothing); any other is refused. docs/http-api.md's field table lists
// exactly these (a test holds them together).
std::vector<std::string> KnownChatFields();

// What the HTTP server learned from a MoaCall's events, for the response.
struct CallRecord {
  struct Proposal {
    int layer = 0;
    std::string model;
    std::string outcome;  // ok, or the status code name.
    std::string error;
    v1::Completion completion;
  };
  std::string pipeline;
  std::optional<v1::RouteChoice> route;  // Set when the request named a route.
  std::vector<Proposal> proposals;
  std::optional<v1::Summary> summary;
  std::vector<v1::ToolCall> tool_calls;  // The answer's, when it called tools.

  void Add(const v1::ChatEvent& event);
};

// The `usage` object: every call the request made, summed.
std::string UsageJson(const CallRecord& record);
// The `moa` extension: per-model usage, per-layer durations, each proposal.
std::string MoaExtensionJson(const CallRecord& record);

std::string CompletionJson(const std::string& id, int64_t created, const std::string& model,
                           const std::string& answer, const CallRecord& record);

// One SSE event "data: {...}\n\n" of a chat.completion.chunk.
std::string ChunkEvent(const std::string& id, int64_t created, const std::string& model,
                       absl::string_view delta_json, absl::string_view finish_reason_json);
std::string UsageChunkEvent(const std::string& id, int64_t created, const std::string& model,
                            const CallRecord& record);
std::string ContentDeltaJson(absl::string_view text);
// A json_schema response format's {name, schema, strict, description}
// (and `type`, when `with_type`: the Responses API's flat form), fields
// named under `path` (e.g. "response_format.json_schema."). False with
// `error` set on a refusal.
bool ReadJsonSchemaFormat(const moa::json::Json& object, const std::string& path, bool with_type,
                          v1::ResponseFormat* format, HttpError* error);

// POST /v1/chat/completions as an ApiSurface.
const ApiSurface& ChatCompletionsSurface();

// The delta of a chunk that carries the answer's tool calls, each whole
// (its index, id, type, name and arguments in one piece).
std::string ToolCallsDeltaJson(const v1::AnswerToolCalls& calls);

}  // namespace moa::orchestrator::openai

#endif  // MOA_SERVICES_ORCHESTRATOR_OPENAI_API_H_
