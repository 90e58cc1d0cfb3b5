// Runs one Chat call and collects what the CLI shows: the answer, each
// proposal's outcome and timings, and the summary.
#ifndef MOA_TOOLS_MOA_CHAT_RUNNER_H_
#define MOA_TOOLS_MOA_CHAT_RUNNER_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "moa/v1/orchestrator.grpc.pb.h"

namespace moa::cli {

// One row of the per-model table.
struct CallRow {
  std::string layer;  // "1", "2", ... or "final".
  std::string model;
  std::string outcome;  // "ok", or the status code name.
  std::optional<absl::Duration> ttft;
  std::optional<absl::Duration> duration;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::string error;
};

struct ChatResult {
  grpc::Status status;
  std::string answer;
  std::vector<CallRow> rows;
  std::optional<v1::Summary> summary;
  int layers = 0;
};

struct ChatCallbacks {
  // Each answer delta, as it arrives.
  std::function<void(const std::string&)> on_answer_delta;
  // Layer progress: (layer, layers, finished proposals, proposals in layer).
  std::function<void(int, int, int, int)> on_progress;
  // A proposal's text, complete (when asked to show proposals).
  std::function<void(const v1::ProposalDone&)> on_proposal_done;
  std::function<void(const v1::ProposalDelta&)> on_proposal_delta;
};

ChatResult RunChat(v1::OrchestratorService::Stub& stub, const v1::ChatRequest& request,
                   absl::Duration timeout, const ChatCallbacks& callbacks);

// The per-model table, aligned, one row per call.
std::string FormatTable(const std::vector<CallRow>& rows);

}  // namespace moa::cli

#endif  // MOA_TOOLS_MOA_CHAT_RUNNER_H_
