#include "lib/llm/dialect.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/llm/anthropic_dialect.h"
#include "lib/llm/gemini_dialect.h"
#include "lib/llm/openai_json.h"

namespace moa::llm {

const char* UpstreamApiName(UpstreamApi api) {
  switch (api) {
    case UpstreamApi::kOpenAi:
      return "openai";
    case UpstreamApi::kAzure:
      return "azure";
    case UpstreamApi::kAnthropic:
      return "anthropic";
    case UpstreamApi::kGemini:
      return "gemini";
  }
  return "openai";  // Unreachable: the switch covers every API.
}

std::optional<UpstreamApi> UpstreamApiFromName(absl::string_view name) {
  for (UpstreamApi api :
       {UpstreamApi::kOpenAi, UpstreamApi::kAzure, UpstreamApi::kAnthropic, UpstreamApi::kGemini}) {
    if (name == UpstreamApiName(api)) return api;
  }
  return std::nullopt;
}

namespace {

// A deployment or model name or an api-version goes into a URL as it is:
// only characters that need no escaping.
bool UrlSafe(absl::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// OpenAI chat completions, and Azure OpenAI (the same body and stream at a
// deployment's URL).
class OpenAiDialect : public Dialect {
 public:
  explicit OpenAiDialect(DialectOptions options) : options_(std::move(options)) {
    url_ = options_.api == UpstreamApi::kAzure
               ? absl::StrCat(options_.base_url, "/openai/deployments/", options_.model,
                              "/chat/completions?api-version=", options_.api_version)
               : options_.base_url + "/chat/completions";
  }
  const std::string& url() const override { return url_; }
  std::vector<std::string> AuthHeaders(absl::string_view api_key) const override {
    if (options_.api == UpstreamApi::kAzure) return {absl::StrCat("api-key: ", api_key)};
    return {absl::StrCat("Authorization: Bearer ", api_key)};
  }
  absl::StatusOr<std::string> Body(const ChatRequest& request) const override {
    return BuildChatCompletionBody(options_.model, request, options_.reasoning);
  }
  std::unique_ptr<StreamReader> NewReader() const override {
    class Reader : public StreamReader {
     public:
      absl::StatusOr<StreamChunk> Read(const SseEvent& event) override {
        if (event.data == "[DONE]") {
          StreamChunk done;
          done.done = true;
          return done;
        }
        return ParseStreamChunk(event.data);
      }
    };
    return std::make_unique<Reader>();
  }

 private:
  const DialectOptions options_;
  std::string url_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Dialect>> MakeDialect(DialectOptions options) {
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();
  const ReasoningSettings& r = options.reasoning;
  switch (options.api) {
    case UpstreamApi::kAzure:
      if (!UrlSafe(options.model)) {
        return absl::InvalidArgumentError(
            "an Azure upstream's model is its deployment name: 1 to 128 of A-Z, a-z, 0-9, -, _ "
            "and .");
      }
      if (!UrlSafe(options.api_version)) {
        return absl::InvalidArgumentError(
            "an Azure upstream needs its api_version (e.g. 2024-10-21): 1 to 128 of A-Z, a-z, "
            "0-9, -, _ and .");
      }
      [[fallthrough]];
    case UpstreamApi::kOpenAi:
      if (r.budget_tokens) {
        return absl::InvalidArgumentError(
            absl::StrCat("reasoning.budget_tokens is for anthropic and gemini upstreams; an ",
                         UpstreamApiName(options.api), " upstream takes reasoning.effort"));
      }
      if (!r.effort.empty() && r.effort != "minimal" && r.effort != "low" && r.effort != "medium" &&
          r.effort != "high") {
        return absl::InvalidArgumentError("reasoning.effort must be minimal, low, medium or high");
      }
      return std::unique_ptr<Dialect>(new OpenAiDialect(std::move(options)));
    case UpstreamApi::kAnthropic:
    case UpstreamApi::kGemini: {
      const bool anthropic = options.api == UpstreamApi::kAnthropic;
      if (!r.effort.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("reasoning.effort is for openai and azure upstreams; an ",
                         UpstreamApiName(options.api), " upstream takes reasoning.budget_tokens"));
      }
      // Anthropic's smallest thinking budget is 1024 tokens; Gemini's 0
      // turns thinking off, -1 lets the model choose.
      const int32_t min_budget = anthropic ? 1024 : -1;
      if (r.budget_tokens && *r.budget_tokens < min_budget) {
        return absl::InvalidArgumentError(
            absl::StrCat("reasoning.budget_tokens must be >= ", min_budget, " for an ",
                         UpstreamApiName(options.api), " upstream"));
      }
      if (!anthropic && !UrlSafe(options.model)) {
        return absl::InvalidArgumentError(
            "a Gemini upstream's model goes into its URL: 1 to 128 of A-Z, a-z, 0-9, -, _ and .");
      }
      if (anthropic) return MakeAnthropicDialect(std::move(options));
      return MakeGeminiDialect(std::move(options));
    }
  }
  return absl::InvalidArgumentError("unknown upstream API");
}

std::optional<DataUrl> ParseDataUrl(absl::string_view url) {
  if (!absl::StartsWith(url, "data:")) return std::nullopt;
  const size_t comma = url.find(',');
  if (comma == absl::string_view::npos) return std::nullopt;
  absl::string_view head = url.substr(5, comma - 5);
  if (!absl::EndsWith(head, ";base64")) return std::nullopt;
  head.remove_suffix(7);
  if (head.empty() || head.find(';') != absl::string_view::npos) return std::nullopt;
  return DataUrl{std::string(head), std::string(url.substr(comma + 1))};
}

SplitSystem SplitSystemMessages(const std::vector<Message>& conversation) {
  SplitSystem out;
  for (const Message& m : conversation) {
    if (m.role == Role::kSystem) {
      if (!out.system.empty()) out.system += "\n\n";
      out.system += m.content;
    } else {
      out.messages.push_back(m);
    }
  }
  return out;
}

}  // namespace moa::llm
