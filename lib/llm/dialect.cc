#include "lib/llm/dialect.h"

#include <functional>

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

// Every API as the same four things: where calls go, the headers, the
// body and the stream reader.
class ApiDialect : public Dialect {
 public:
  using BodyFn = std::function<absl::StatusOr<std::string>(const ChatRequest&)>;
  using ReaderFn = std::function<std::unique_ptr<StreamReader>()>;
  ApiDialect(std::string url, std::string key_header, std::vector<std::string> fixed_headers,
             BodyFn body, ReaderFn reader)
      : url_(std::move(url)),
        key_header_(std::move(key_header)),
        fixed_headers_(std::move(fixed_headers)),
        body_(std::move(body)),
        reader_(std::move(reader)) {}
  const std::string& url() const override { return url_; }
  std::vector<std::string> AuthHeaders(absl::string_view api_key) const override {
    return {absl::StrCat(key_header_, api_key)};
  }
  std::vector<std::string> FixedHeaders() const override { return fixed_headers_; }
  absl::StatusOr<std::string> Body(const ChatRequest& request) const override {
    return body_(request);
  }
  std::unique_ptr<StreamReader> NewReader() const override { return reader_(); }

 private:
  const std::string url_;
  const std::string key_header_;  // "Name: " or "Authorization: Bearer ".
  const std::vector<std::string> fixed_headers_;
  const BodyFn body_;
  const ReaderFn reader_;
};

// OpenAI's stream: chunks, then "[DONE]".
class OpenAiStreamReader : public StreamReader {
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

std::unique_ptr<Dialect> Make(const DialectOptions& o) {
  const std::string& base = o.base_url;
  switch (o.api) {
    case UpstreamApi::kOpenAi:
    case UpstreamApi::kAzure: {
      const bool azure = o.api == UpstreamApi::kAzure;
      return std::make_unique<ApiDialect>(
          azure ? absl::StrCat(base, "/openai/deployments/", o.model,
                               "/chat/completions?api-version=", o.api_version)
                : base + "/chat/completions",
          azure ? "api-key: " : "Authorization: Bearer ", std::vector<std::string>{},
          [model = o.model, reasoning = o.reasoning](const ChatRequest& r) {
            return absl::StatusOr<std::string>(BuildChatCompletionBody(model, r, reasoning));
          },
          [] { return std::make_unique<OpenAiStreamReader>(); });
    }
    case UpstreamApi::kAnthropic:
      return std::make_unique<ApiDialect>(
          base + "/messages", "x-api-key: ",
          std::vector<std::string>{absl::StrCat("anthropic-version: ", kAnthropicVersion)},
          [model = o.model, reasoning = o.reasoning](const ChatRequest& r) {
            return BuildAnthropicBody(model, r, reasoning);
          },
          NewAnthropicStreamReader);
    case UpstreamApi::kGemini:
      return std::make_unique<ApiDialect>(
          absl::StrCat(base, "/models/", o.model, ":streamGenerateContent?alt=sse"),
          "x-goog-api-key: ", std::vector<std::string>{},
          [reasoning = o.reasoning](const ChatRequest& r) { return BuildGeminiBody(r, reasoning); },
          NewGeminiStreamReader);
  }
  return nullptr;  // Unreachable: the switch covers every API.
}

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
      return Make(options);
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
      return Make(options);
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
