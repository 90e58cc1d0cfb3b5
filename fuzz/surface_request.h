// One HTTP door's request body, as the door handles it: parsed, planned
// against the fuzz config, errors written in the door's shape, and an
// answer written back in both forms (its text and tool calls are the
// request's own, so hostile arguments reach the writer too).
#ifndef MOA_FUZZ_SURFACE_REQUEST_H_
#define MOA_FUZZ_SURFACE_REQUEST_H_

#include <string>

#include "absl/strings/string_view.h"
#include "fuzz/fuzz_config.h"
#include "services/orchestrator/api_surface.h"
#include "services/orchestrator/engine/engine.h"

namespace moa::fuzz {

inline void FuzzSurfaceRequest(const orchestrator::ApiSurface& surface, absl::string_view body) {
  orchestrator::HttpError error;
  auto parsed = surface.Parse(body, &error);
  if (!parsed.ok()) {
    (void)surface.ErrorJson(error);
    return;
  }
  auto plan = orchestrator::PlanChat(parsed->chat, Config());
  if (!plan.ok()) {
    (void)surface.ErrorJson(orchestrator::ErrorFromStatus(plan.status()));
    return;
  }
  for (bool stream : {false, true}) {
    auto writer = surface.NewWriter(*parsed, parsed->chat.pipeline(), 0);
    std::string out = stream ? writer->Head() : "";
    for (const auto& m : parsed->chat.messages()) {
      v1::ChatEvent text;
      text.set_answer_delta(m.content());
      out += writer->Event(text);
      if (m.tool_calls_size() > 0) {
        v1::ChatEvent calls;
        *calls.mutable_answer_tool_calls()->mutable_calls() = m.tool_calls();
        out += writer->Event(calls);
      }
    }
    v1::ChatEvent summary;
    summary.mutable_summary()->set_finish_reason("tool_calls");
    out += writer->Event(summary);
    if (stream) {
      out += writer->Tail(absl::OkStatus());
    } else {
      (void)writer->Body();
    }
  }
}

}  // namespace moa::fuzz

#endif  // MOA_FUZZ_SURFACE_REQUEST_H_
