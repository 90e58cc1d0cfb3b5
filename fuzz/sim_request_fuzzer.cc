// A proposer's (or anyone's) POST /v1/chat/completions body to the
// simulator: parsed, its answer planned (continuations included) and its
// request-log entry serialised, as the simulator does before answering.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "lib/base/json.h"
#include "tools/upstream-sim/sim_request.h"
#include "tools/upstream-sim/structured.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view body(reinterpret_cast<const char*>(data), size);
  auto info = moa::sim::ParseChat(body);
  if (!info.ok()) return 0;
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
  return 0;
}
