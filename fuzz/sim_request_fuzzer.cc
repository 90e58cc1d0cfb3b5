// A proposer's (or anyone's) request body to the simulator, read as each
// API it serves reads it (chat completions, Anthropic Messages, Gemini):
// parsed, its answer planned (continuations included), its request-log
// entry serialised and its answer written in that API's form, as the
// simulator does.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "lib/base/json.h"
#include "tools/upstream-sim/sim_anthropic.h"
#include "tools/upstream-sim/sim_gemini.h"
#include "tools/upstream-sim/sim_request.h"
#include "tools/upstream-sim/structured.h"

namespace {

void Check(const moa::sim::ChatRequestInfo& info);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto info = moa::sim::ParseChat(body); info.ok()) Check(*info);
  if (auto info = moa::sim::anthropic::Parse(body); info.ok()) Check(*info);
  if (auto info = moa::sim::gemini::Parse(body, "m", true); info.ok()) Check(*info);
  return 0;
}

namespace {

void Check(const moa::sim::ChatRequestInfo& parsed) {
  const moa::sim::ChatRequestInfo* info = &parsed;
  // The profile's answer length, cut by max_tokens as the server does.
  int length = 60;
  if (info->max_tokens) length = static_cast<int>(std::min<int64_t>(*info->max_tokens, length));
  moa::sim::PlannedAnswer answer = moa::sim::PlanAnswer(*info, length);
  (void)moa::sim::CountReferences(info->messages);
  (void)moa::json::Dump(info->messages_json);
  (void)moa::json::Dump(info->params);
  // A structured answer of whatever schema the request names, and a tool
  // call answer.
  if (auto wanted = moa::sim::FindRequestedJson(info->response_format, info->messages)) {
    if (wanted->schema) (void)moa::json::Dump(moa::sim::ConformingValue(*wanted->schema));
  }
  const std::string arguments = "{\"city\": \"Oslo\"}";
  (void)moa::sim::PlanAnswer(*info, length, "", &arguments);
  // Never more tokens than asked for, continuation or not.
  if (answer.tokens.size() > static_cast<size_t>(length)) __builtin_trap();
  // The answer in the request's API.
  std::string text;
  for (const std::string& t : answer.tokens) text += t;
  moa::sim::AnswerFacts facts{1, info->model, answer.prompt_tokens,
                              info->tool_names.empty() ? "" : info->tool_names[0], "c1"};
  const int n = static_cast<int>(answer.tokens.size());
  (void)moa::sim::anthropic::StreamStart(facts);
  for (const std::string& t : answer.tokens) {
    (void)moa::sim::anthropic::StreamToken(facts, t);
    (void)moa::sim::gemini::StreamToken(facts, t);
  }
  (void)moa::sim::anthropic::StreamEnd(facts, "stop", n);
  (void)moa::sim::anthropic::Whole(facts, text, "length", n);
  (void)moa::sim::gemini::StreamEnd(facts, text, "tool_calls", n);
  (void)moa::sim::gemini::Whole(facts, text, "stop", n);
}

}  // namespace
