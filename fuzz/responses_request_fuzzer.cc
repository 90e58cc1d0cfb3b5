// A client's POST /v1/responses body: parsed, planned against a cluster
// config as the HTTP door does, and an answer written back in both forms
// (its tool calls are the request's own, so hostile arguments reach the
// writer too).
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "fuzz/fuzz_config.h"
#include "services/orchestrator/engine/engine.h"
#include "services/orchestrator/openai_api.h"
#include "services/orchestrator/responses_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moa::orchestrator;  // NOLINT: a fuzz target's one function.
  absl::string_view body(reinterpret_cast<const char*>(data), size);
  HttpError error;
  auto parsed = responses::ParseResponsesRequest(body, &error);
  if (!parsed.ok()) {
    (void)openai::ErrorJson(error);
    return 0;
  }
  auto plan = PlanChat(parsed->chat, moa::fuzz::Config());
  if (!plan.ok()) {
    (void)openai::ErrorJson(ErrorFromStatus(plan.status()));
    return 0;
  }
  for (bool stream : {false, true}) {
    auto writer = responses::ResponsesSurface().NewWriter(*parsed, parsed->chat.pipeline(), 0);
    std::string out = stream ? writer->Head() : "";
    for (const auto& m : parsed->chat.messages()) {
      moa::v1::ChatEvent text;
      text.set_answer_delta(m.content());
      out += writer->Event(text);
      if (m.tool_calls_size() > 0) {
        moa::v1::ChatEvent calls;
        *calls.mutable_answer_tool_calls()->mutable_calls() = m.tool_calls();
        out += writer->Event(calls);
      }
    }
    moa::v1::ChatEvent summary;
    summary.mutable_summary()->set_finish_reason("tool_calls");
    out += writer->Event(summary);
    if (stream) {
      out += writer->Tail(absl::OkStatus());
    } else {
      (void)writer->Body();
    }
  }
  return 0;
}
