#include "tools/moa/chat_runner.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/wire/wire.h"

namespace moa::cli {
namespace {

std::string FormatSeconds(const std::optional<absl::Duration>& d) {
  if (!d) return "-";
  return absl::StrFormat("%.2fs", absl::ToDoubleSeconds(*d));
}

CallRow Row(std::string layer, std::string model, std::string outcome) {
  CallRow row;
  row.layer = std::move(layer);
  row.model = std::move(model);
  row.outcome = std::move(outcome);
  return row;
}

}  // namespace

ChatResult RunChat(v1::OrchestratorService::Stub& stub, const v1::ChatRequest& request,
                   absl::Duration timeout, const ChatCallbacks& cb) {
  ChatResult result;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  auto reader = stub.Chat(&ctx, request);
  v1::ChatEvent event;
  std::vector<int> layer_sizes;
  std::map<int, int> finished_in_layer;
  std::vector<std::string> kinds;  // Each layer's step kind (Accepted.steps).
  bool staircase = false;
  // A layer's label: its number, and its kind unless it proposes or
  // synthesizes (as every layer of a `layers:` pipeline does).
  auto label = [&](int layer) {
    if (layer >= 1 && layer <= static_cast<int>(kinds.size())) {
      const std::string& kind = kinds[static_cast<size_t>(layer - 1)];
      if (kind != "propose" && kind != "synthesize") return absl::StrCat(layer, " ", kind);
    }
    return absl::StrCat(layer);
  };
  auto progress = [&](int layer) {
    if (cb.on_progress && layer >= 1 && layer <= static_cast<int>(layer_sizes.size())) {
      cb.on_progress(layer, static_cast<int>(layer_sizes.size()), finished_in_layer[layer],
                     layer_sizes[layer - 1]);
    }
  };
  while (reader->Read(&event)) {
    switch (event.event_case()) {
      case v1::ChatEvent::kAccepted:
        for (const auto& l : event.accepted().layers()) layer_sizes.push_back(l.models_size());
        kinds.assign(event.accepted().steps().begin(), event.accepted().steps().end());
        result.layers = static_cast<int>(layer_sizes.size());
        if (event.accepted().has_route()) {
          // The route's decision: a row of its own before the steps.
          const v1::RouteChoice& r = event.accepted().route();
          CallRow row = Row("route", "-", "ok");
          row.error =
              absl::StrCat(r.route(), " -> ", r.pipeline(), " by ", r.by(), ": ", r.reason());
          result.rows.push_back(row);
        }
        progress(1);
        break;
      case v1::ChatEvent::kProposalStarted:
        progress(event.proposal_started().ref().layer());
        break;
      case v1::ChatEvent::kProposalDelta:
        if (cb.on_proposal_delta) cb.on_proposal_delta(event.proposal_delta());
        break;
      case v1::ChatEvent::kProposalDone: {
        const auto& d = event.proposal_done();
        CallRow row = Row(label(d.ref().layer()), d.ref().model(), "ok");
        row.ttft = wire::FromProto(d.completion().time_to_first_token());
        row.duration = wire::FromProto(d.completion().duration());
        row.prompt_tokens = d.completion().usage().prompt_tokens();
        row.completion_tokens = d.completion().usage().completion_tokens();
        result.rows.push_back(row);
        ++finished_in_layer[d.ref().layer()];
        progress(d.ref().layer());
        if (cb.on_proposal_done) cb.on_proposal_done(d);
        break;
      }
      case v1::ChatEvent::kProposalFailed: {
        const auto& f = event.proposal_failed();
        CallRow row =
            Row(label(f.ref().layer()), f.ref().model(),
                absl::StatusCodeToString(static_cast<absl::StatusCode>(f.status().code())));
        row.error = f.status().message();
        result.rows.push_back(row);
        ++finished_in_layer[f.ref().layer()];
        progress(f.ref().layer());
        break;
      }
      case v1::ChatEvent::kProposalStraggler: {
        const auto& st = event.proposal_straggler();
        CallRow row = Row(label(st.ref().layer()), st.ref().model(), "straggler");
        row.duration = wire::FromProto(st.ran());
        row.error = "cut when its layer went on";
        result.rows.push_back(row);
        ++finished_in_layer[st.ref().layer()];
        progress(st.ref().layer());
        break;
      }
      case v1::ChatEvent::kStepApplied: {
        // What a step did with the texts: a row of its own, no model.
        const v1::StepApplied& a = event.step_applied();
        const bool terminal = a.step() > static_cast<int>(kinds.size());
        CallRow row = Row(terminal ? a.kind() : label(a.step()), "-", "ok");
        std::vector<std::string> parts;
        if (a.kept_size() > 0)
          parts.push_back(absl::StrCat("kept ", absl::StrJoin(a.kept(), ", ")));
        if (a.dropped_size() > 0) {
          parts.push_back(absl::StrCat("dropped ", absl::StrJoin(a.dropped(), ", ")));
        }
        if (a.seed() != 0) parts.push_back(absl::StrCat("seed ", a.seed()));
        if (!a.note().empty()) parts.push_back(a.note());
        row.error = absl::StrJoin(parts, "; ");
        result.rows.push_back(row);
        break;
      }
      case v1::ChatEvent::kAnswerStep:
        staircase = true;  // The summary counts the steps.
        break;
      case v1::ChatEvent::kAnswerToolCalls:
        // The CLI sends no tools, so no answer calls one; shown in words
        // should a pipeline's model still do so.
        for (const v1::ToolCall& c : event.answer_tool_calls().calls()) {
          std::string line = absl::StrCat("\n[tool call ", c.name(), " ", c.arguments(), "]");
          result.answer += line;
          if (cb.on_answer_delta) cb.on_answer_delta(line);
        }
        break;
      case v1::ChatEvent::kAnswerDelta:
        result.answer += event.answer_delta();
        if (cb.on_answer_delta) cb.on_answer_delta(event.answer_delta());
        break;
      case v1::ChatEvent::kSummary: {
        result.summary = event.summary();
        const v1::Completion& a = event.summary().answer();
        CallRow row =
            Row("final", a.model(),
                staircase ? absl::StrCat("ok (staircase: ", event.summary().answer_steps(),
                                         event.summary().answer_steps() == 1 ? " step)" : " steps)")
                          : "ok");
        row.ttft = wire::FromProto(a.time_to_first_token());
        row.duration = wire::FromProto(a.duration());
        row.prompt_tokens = a.usage().prompt_tokens();
        row.completion_tokens = a.usage().completion_tokens();
        result.rows.push_back(row);
        break;
      }
      case v1::ChatEvent::EVENT_NOT_SET:
        break;
    }
  }
  result.status = reader->Finish();
  return result;
}

std::string FormatTable(const std::vector<CallRow>& rows) {
  size_t model_width = 5, layer_width = 6;
  for (const CallRow& r : rows) {
    model_width = std::max(model_width, r.model.size());
    layer_width = std::max(layer_width, r.layer.size());
  }
  std::string out = absl::StrFormat("%-*s %-*s %8s %9s %13s  %s\n", static_cast<int>(layer_width),
                                    "layer", static_cast<int>(model_width), "model", "ttft",
                                    "duration", "tokens in/out", "outcome");
  for (const CallRow& r : rows) {
    std::string tokens = absl::StartsWith(r.outcome, "ok") && r.model != "-"
                             ? absl::StrCat(r.prompt_tokens, "/", r.completion_tokens)
                             : "-";
    std::string outcome = r.error.empty() ? r.outcome : absl::StrCat(r.outcome, ": ", r.error);
    absl::StrAppendFormat(&out, "%-*s %-*s %8s %9s %13s  %s\n", static_cast<int>(layer_width),
                          r.layer, static_cast<int>(model_width), r.model, FormatSeconds(r.ttft),
                          FormatSeconds(r.duration), tokens, outcome);
  }
  return out;
}

}  // namespace moa::cli
