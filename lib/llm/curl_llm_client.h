// LlmClient over libcurl: one multi handle and one event thread per client,
// however many calls are in flight.
#ifndef MOA_LIB_LLM_CURL_LLM_CLIENT_H_
#define MOA_LIB_LLM_CURL_LLM_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/base/clock.h"
#include "lib/llm/dialect.h"
#include "lib/llm/llm_client.h"
#include "lib/llm/retry.h"

namespace moa::llm {

struct UpstreamOptions {
  // Base URL of the API (no trailing slash needed). OpenAI-compatible: ending
  // in /v1, requests go to {base_url}/chat/completions. Azure: the
  // resource's endpoint (https://NAME.openai.azure.com); requests go to
  // {base_url}/openai/deployments/{model}/chat/completions?api-version=...
  // Anthropic: https://api.anthropic.com/v1, requests go to .../messages.
  // Gemini: https://generativelanguage.googleapis.com/v1beta, requests go to
  // .../models/{model}:streamGenerateContent?alt=sse.
  std::string base_url;
  // Model id sent upstream (Azure: the deployment's name).
  std::string model;
  UpstreamApi api = UpstreamApi::kOpenAi;
  // Azure's api-version (required there, e.g. "2024-10-21").
  std::string api_version;
  // How hard a reasoning model thinks, in its API's form.
  ReasoningSettings reasoning;
  // The key, sent as the API wants it (Authorization: Bearer, api-key,
  // x-api-key, x-goog-api-key); empty sends none (local servers). Never
  // logged and never put in an error message.
  std::string api_key;
  // PEM bundle of the CAs an https:// upstream's certificate must chain to
  // (an upstream with a private CA); empty: the system's bundle.
  std::string ca_file;
  absl::Duration connect_timeout = absl::Seconds(10);
  // From the start of an attempt to the first streamed text.
  absl::Duration first_token_timeout = absl::Seconds(60);
  // Longest silence between two pieces of a stream once text has started.
  absl::Duration idle_timeout = absl::Seconds(30);
  // Whole call, retries included; the caller's deadline may be sooner.
  absl::Duration total_timeout = absl::Minutes(10);
  RetryPolicy retry;
  // Every timeout, retry delay and duration is measured on this clock (a
  // fake one in tests; the event loop then wakes at least once a second to
  // look at it). Must outlive the client.
  const Clock* clock = Clock::Real();
};

class CurlLlmClient : public LlmClient {
 public:
  // Starts the event thread. INVALID_ARGUMENT for an unusable base URL,
  // model name or reasoning setting.
  static absl::StatusOr<std::unique_ptr<CurlLlmClient>> Create(UpstreamOptions options);

  // Cancels every call in flight (each observer gets OnDone CANCELLED), then
  // joins the event thread.
  ~CurlLlmClient() override;

  std::shared_ptr<CallHandle> Start(ChatRequest request,
                                    std::shared_ptr<StreamObserver> observer) override;

  class Impl;

 private:
  explicit CurlLlmClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_CURL_LLM_CLIENT_H_
