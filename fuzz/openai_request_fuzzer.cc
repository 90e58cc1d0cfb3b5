// A client's POST /v1/chat/completions body: parsed, validated against a
// cluster config and its limits, and answered, as the HTTP door does.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "lib/config/cluster_config.h"
#include "services/orchestrator/openai_api.h"
#include "services/orchestrator/orchestrator_service.h"

namespace {

const moa::config::ClusterConfig& Config() {
  static const moa::config::ClusterConfig config = *moa::config::ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\n  b: {endpoint: 'x:2'}\n"
      "aggregator: {endpoint: 'x:3'}\n"
      "pipelines:\n  moa: {layers: [[a, b]], aggregator: a}\n"
      "limits: {max_request_bytes: 65536, max_messages: 16}\n",
      "fuzz");
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view body(reinterpret_cast<const char*>(data), size);
  moa::orchestrator::openai::HttpError error;
  auto parsed = moa::orchestrator::openai::ParseChatCompletionRequest(body, &error);
  if (!parsed.ok()) {
    (void)moa::orchestrator::openai::ErrorJson(error);
    return 0;
  }
  auto pipeline = moa::orchestrator::ValidateChatRequest(parsed->chat, Config());
  if (!pipeline.ok()) {
    (void)moa::orchestrator::openai::ErrorJson(
        moa::orchestrator::openai::ErrorFromStatus(pipeline.status()));
    return 0;
  }
  // The request's own text comes back in the answer JSON.
  moa::orchestrator::openai::CallRecord record;
  std::string text;
  for (const auto& m : parsed->chat.messages()) text += m.content();
  (void)moa::orchestrator::openai::CompletionJson("id", 0, parsed->chat.pipeline(), text, record);
  (void)moa::orchestrator::openai::ContentDeltaJson(text);
  return 0;
}
