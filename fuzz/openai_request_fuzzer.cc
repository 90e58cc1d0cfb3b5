// A client's POST /v1/chat/completions body: parsed, validated against a
// cluster config and its limits, and answered, as the HTTP door does.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "fuzz/fuzz_config.h"
#include "lib/llm/openai_json.h"
#include "services/orchestrator/engine/engine.h"
#include "services/orchestrator/openai_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view body(reinterpret_cast<const char*>(data), size);
  moa::orchestrator::openai::HttpError error;
  auto parsed = moa::orchestrator::openai::ParseChatCompletionRequest(body, &error);
  if (!parsed.ok()) {
    (void)moa::orchestrator::openai::ErrorJson(error);
    return 0;
  }
  auto pipeline = moa::orchestrator::PlanChat(parsed->chat, moa::fuzz::Config());
  if (!pipeline.ok()) {
    (void)moa::orchestrator::openai::ErrorJson(
        moa::orchestrator::openai::ErrorFromStatus(pipeline.status()));
    return 0;
  }
  // What the final step and a proposer are sent: the tools and tool turns
  // natively, and the same conversation written out in words.
  moa::llm::ChatRequest upstream;
  upstream.messages = pipeline->conversation;
  upstream.tools = pipeline->tools;
  (void)moa::llm::BuildChatCompletionBody("m", upstream);
  upstream.tools = {};
  (void)moa::llm::BuildChatCompletionBody("m", upstream);
  // The request's own text and tool calls come back in the answer JSON.
  moa::orchestrator::openai::CallRecord record;
  std::string text;
  for (const auto& m : parsed->chat.messages()) {
    text += m.content();
    record.tool_calls.insert(record.tool_calls.end(), m.tool_calls().begin(), m.tool_calls().end());
  }
  (void)moa::orchestrator::openai::CompletionJson("id", 0, parsed->chat.pipeline(), text, record);
  (void)moa::orchestrator::openai::ContentDeltaJson(text);
  return 0;
}
