// An Anthropic or Gemini upstream's bytes as the proposer's client reads
// them: SSE events through the dialect's stream reader, pieces put
// together as CurlLlmClient does (tool call fragments bounded by index).
// Differential: the same bytes fed one byte at a time must read the same
// (where a stream splits never changes what it says, reader state
// included). The rest of the input, as a client's text, goes through every
// dialect's request builder, whose body must be JSON.
//
// The first byte picks the dialect (even: Anthropic, odd: Gemini) and the
// piece size.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "lib/base/json.h"
#include "lib/llm/anthropic_dialect.h"
#include "lib/llm/gemini_dialect.h"
#include "lib/llm/openai_json.h"
#include "lib/llm/sse_parser.h"

namespace {

using moa::llm::StreamReader;

// What a stream said, as one comparable string; "!" marks where it failed.
std::string ReadAll(absl::string_view input, size_t piece, bool anthropic) {
  std::unique_ptr<StreamReader> reader =
      anthropic ? moa::llm::NewAnthropicStreamReader() : moa::llm::NewGeminiStreamReader();
  moa::llm::SseParser parser;
  std::string text, reasoning, out;
  std::map<int, std::string> calls;
  bool failed = false;
  for (size_t at = 0; at < input.size() && !failed; at += piece) {
    bool ok = parser.Feed(input.substr(at, piece), [&](const moa::llm::SseEvent& event) {
      if (failed) return;
      auto chunk = reader->Read(event);
      if (!chunk.ok()) {
        out += absl::StrCat("!", chunk.status().message());
        failed = true;
        return;
      }
      text += chunk->delta;
      reasoning += chunk->reasoning;
      for (const auto& f : chunk->tool_calls) {
        if (f.index < 0 || f.index >= moa::llm::kMaxToolCallIndex) __builtin_trap();
        calls[f.index] += absl::StrCat(f.id, "|", f.name, "|", f.arguments);
      }
      if (chunk->finish_reason) absl::StrAppend(&out, "finish=", *chunk->finish_reason, ";");
      if (chunk->usage) {
        absl::StrAppend(&out, "usage=", chunk->usage->prompt_tokens, ",",
                        chunk->usage->completion_tokens, ",", chunk->usage->reasoning_tokens, ";");
      }
      if (chunk->error) absl::StrAppend(&out, "error=", chunk->error->ToString(), ";");
      if (chunk->done) out += "done;";
    });
    if (!ok) {
      out += "!overlong";
      failed = true;
    }
  }
  for (const auto& [i, c] : calls) absl::StrAppend(&out, "call", i, "=", c, ";");
  return absl::StrCat(text, "\n", reasoning, "\n", out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool anthropic = data[0] % 2 == 0;
  const size_t piece = 1 + data[0] % 61;
  absl::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (ReadAll(input, piece, anthropic) != ReadAll(input, 1, anthropic)) {
    std::fprintf(stderr, "a stream read differently in pieces of %zu bytes and of one\n", piece);
    std::abort();
  }

  // The same bytes as a client's words in every part of a request.
  moa::llm::ChatRequest request;
  const std::string text(input.substr(0, 4096));
  request.messages = {{moa::llm::Role::kSystem, text},
                      {moa::llm::Role::kUser, text},
                      {moa::llm::Role::kAssistant, text},
                      {moa::llm::Role::kTool, text}};
  request.messages[0].images = {{text, ""}};
  request.messages[1].images = {{text, ""}};
  request.messages[2].tool_calls = {{"c1", text, text}};
  request.messages[3].tool_call_id = "c1";
  request.tools.tools = {{text, text, text, true}};
  request.tools.choice_function = text;
  request.params.stop = {text};
  moa::llm::ReasoningSettings thinking;
  thinking.budget_tokens = 1024;
  for (const auto& body :
       {moa::llm::BuildAnthropicBody("m", request, {}),
        moa::llm::BuildAnthropicBody("m", request, thinking),
        moa::llm::BuildGeminiBody(request, thinking),
        absl::StatusOr<std::string>(moa::llm::BuildChatCompletionBody("m", request))}) {
    if (body.ok() && !moa::json::Parse(*body, 256).ok()) __builtin_trap();
  }
  return 0;
}
