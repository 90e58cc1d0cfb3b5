// How the aggregator and the orchestrator ask a model of the cluster for a
// streamed answer, without knowing whether it goes to a proposer, to the
// aggregator, or to a fake in a test. Only the cluster's own types (lib/llm)
// cross this interface; the gRPC implementations convert at the wire.
#ifndef MOA_LIB_CLUSTER_GENERATION_BACKEND_H_
#define MOA_LIB_CLUSTER_GENERATION_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/llm/llm_client.h"
#include "lib/synthesis/synthesis.h"

namespace moa::cluster {

struct GenerationCall {
  std::string model;                   // Cluster model name.
  std::vector<llm::Message> messages;  // The conversation.
  // Earlier answers to synthesize; empty for a plain proposal.
  std::vector<synthesis::Reference> references;
  llm::SamplingParams params;
  absl::Time deadline = absl::InfiniteFuture();
  // Ask for the text in one delta at the end (see GenerateRequest.whole_text).
  bool whole_text = false;
  // The answer so far, to be continued (see GenerateRequest.continue_from).
  std::string continue_from;
  // A judge's analysis given with the references (AggregateRequest.analysis).
  std::string analysis;
  // The client's tools, for the call that writes the final answer (or a
  // proposer configured to get them); none: tool turns go as text.
  llm::ToolOptions tools;
  // The request's id and trace, passed on in the call's metadata.
  TraceContext trace;
};

// Receives one call's events: deltas, then exactly one OnDone. Calls may come
// from any thread but never concurrently for one call. Must not block. A
// whole-text call delivers an empty delta when the model's first byte
// arrives (its text comes whole at the end).
class GenerationObserver {
 public:
  virtual ~GenerationObserver() = default;
  virtual void OnDelta(absl::string_view text) = 0;
  // The completion as the model's service reported it (its usage, time to
  // first token and duration), or why the call failed.
  virtual void OnDone(absl::StatusOr<llm::Completion> result) = 0;
};

class GenerationBackend {
 public:
  virtual ~GenerationBackend() = default;
  // Starts the call and returns at once; Cancel() on the handle ends it
  // (OnDone CANCELLED unless it had ended). Thread-safe.
  virtual std::shared_ptr<llm::CallHandle> Start(GenerationCall call,
                                                 std::shared_ptr<GenerationObserver> observer) = 0;
  // A call to `model` was cut by its caller as stuck (no first byte within
  // the model's bound): it ends CANCELLED, yet it is the model's failure.
  // Backends that keep per-model state (a breaker) count it; others pass it
  // on or ignore it.
  virtual void ReportStuck(const std::string& model) {}
};

}  // namespace moa::cluster

#endif  // MOA_LIB_CLUSTER_GENERATION_BACKEND_H_
