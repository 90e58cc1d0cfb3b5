// One upstream API ("dialect") as the curl client speaks it: where a call
// goes, how it authenticates, the body it sends and how it reads the
// answer's events. The client, its retries, timeouts, cancellation and
// metrics are the same for every dialect; only these four things differ.
// One file per dialect: openai_json.cc (OpenAI and Azure OpenAI),
// anthropic_dialect.cc (Anthropic Messages), gemini_dialect.cc (Gemini).
#ifndef MOA_LIB_LLM_DIALECT_H_
#define MOA_LIB_LLM_DIALECT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/llm/sse_parser.h"
#include "lib/llm/types.h"

namespace moa::llm {

// The API an upstream speaks. Azure OpenAI is the OpenAI body and stream at
// a deployment's URL, with an api-version and an api-key header.
enum class UpstreamApi { kOpenAi, kAzure, kAnthropic, kGemini };

// "openai", "azure", "anthropic", "gemini": the config's `upstream.api`.
const char* UpstreamApiName(UpstreamApi api);
// The API a config name stands for; nullopt for any other name.
std::optional<UpstreamApi> UpstreamApiFromName(absl::string_view name);

// How hard a reasoning model thinks, in the form its API takes: an effort
// (OpenAI and Azure: "minimal", "low", "medium", "high") or a budget of
// thinking tokens (Anthropic, Gemini). At most one is set, and only the
// one the dialect has (MakeDialect refuses the other by name).
struct ReasoningSettings {
  std::string effort;
  std::optional<int32_t> budget_tokens;
  // The thinking text joins the answer, marked "[reasoning]" ... "[answer]"
  // (off: it never reaches an observer, so never a synthesis prompt).
  bool include_text = false;
  bool empty() const { return effort.empty() && !budget_tokens; }
};

// A piece of a streamed tool call: the first piece of call `index` names
// it (id, name); later ones add to its arguments.
struct ToolCallFragment {
  int index = 0;
  std::string id;
  std::string name;
  std::string arguments;
};

// Tool call indexes an upstream may use: 0 to kMaxToolCallIndex - 1.
inline constexpr int kMaxToolCallIndex = 128;

// What one event of a streamed answer carried, in every dialect's terms.
struct StreamChunk {
  std::string delta;                         // Answer text (may be empty).
  std::vector<ToolCallFragment> tool_calls;  // Pieces of tool calls.
  // Thinking text (Anthropic thinking blocks, Gemini thought parts): never
  // part of the answer; its arrival is progress as text is.
  std::string reasoning;
  std::optional<std::string> finish_reason;  // In OpenAI's words: stop, length, tool_calls...
  std::optional<Usage> usage;                // The latest totals the upstream reported.
  std::optional<absl::Status> error;         // An error event sent after the 200.
  bool done = false;                         // The stream's own end marker.
};

// Reads one attempt's events in order (some dialects carry state from one
// event to the next: Anthropic's usage and block indexes). Malformed
// events are INTERNAL naming what is wrong.
class StreamReader {
 public:
  virtual ~StreamReader() = default;
  virtual absl::StatusOr<StreamChunk> Read(const SseEvent& event) = 0;
};

struct DialectOptions {
  UpstreamApi api = UpstreamApi::kOpenAi;
  std::string base_url;  // Without a trailing slash.
  std::string model;
  std::string api_version;  // Azure only.
  ReasoningSettings reasoning;
};

class Dialect {
 public:
  virtual ~Dialect() = default;
  // Where every call goes.
  virtual const std::string& url() const = 0;
  // Header lines that authenticate a call with `api_key` (never empty)
  // and name the API version where the API wants one.
  virtual std::vector<std::string> AuthHeaders(absl::string_view api_key) const = 0;
  // Header lines every call carries, key or not.
  virtual std::vector<std::string> FixedHeaders() const { return {}; }
  // The streamed request's body; INVALID_ARGUMENT naming what this API
  // cannot express (a seed on Anthropic, an image URL on Gemini...).
  virtual absl::StatusOr<std::string> Body(const ChatRequest& request) const = 0;
  virtual std::unique_ptr<StreamReader> NewReader() const = 0;
};

// INVALID_ARGUMENT for a model name or version that cannot go into a URL,
// or a reasoning setting the API does not have.
absl::StatusOr<std::unique_ptr<Dialect>> MakeDialect(DialectOptions options);

// A data: URL's parts, for APIs that take an image as media type + base64.
struct DataUrl {
  std::string media_type;  // e.g. "image/png".
  std::string base64;
};
// nullopt unless `url` is data:<type>;base64,<data>.
std::optional<DataUrl> ParseDataUrl(absl::string_view url);

// The conversation's system messages joined (in order, blank line apart)
// and the other messages, for APIs that take the system prompt apart.
struct SplitSystem {
  std::string system;
  std::vector<Message> messages;
};
SplitSystem SplitSystemMessages(const std::vector<Message>& conversation);

// The deepest a stream event or error body from an upstream may nest, in
// every dialect (a line of '[' would otherwise build a huge tree).
inline constexpr int kMaxEventDepth = 32;

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_DIALECT_H_
