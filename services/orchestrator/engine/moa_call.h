// MoaCall: one Mixture-of-Agents request, independent of the server it came
// through (gRPC Chat, or the HTTP API). It runs the pipeline's steps in
// order (config::StepKind): propose, rank, judge and refine on the
// proposers, synthesize and the final answer through the aggregator,
// shuffle, dropout and vote here; and reports events in order to a sink.
// The texts one step hands the next are `references_`. Every step that
// calls models (a "layer": events' `layer` is the step's 1-based number)
// follows its LayerRule (layer_policy.h): it goes on once its quorum is in
// and the stragglers' grace or its share of the deadline ran out,
// cancelling the stragglers.
#ifndef MOA_SERVICES_ORCHESTRATOR_MOA_CALL_H_
#define MOA_SERVICES_ORCHESTRATOR_MOA_CALL_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/base/clock.h"
#include "lib/base/trace_context.h"
#include "lib/base/write_queue.h"
#include "lib/cluster/generation_backend.h"
#include "lib/llm/retry.h"
#include "lib/telemetry/orchestrator_metrics.h"
#include "moa/v1/orchestrator.pb.h"
#include "services/orchestrator/engine/answer_format.h"
#include "services/orchestrator/engine/first_token.h"
#include "services/orchestrator/engine/layer_policy.h"
#include "services/orchestrator/engine/pipeline.h"
#include "services/orchestrator/engine/staircase.h"

namespace moa::orchestrator {

// What a request spent, reported once at its end: tokens (prompt and
// completion of every call that ended well) and their cost, in total and
// by model (the models' names in the config, without a replica suffix;
// models that cost nothing are left out).
struct Spending {
  int64_t tokens = 0;
  double dollars = 0;
  std::map<std::string, double> dollars_by_model = {};
};

// Receives a call's events in order, then exactly one OnFinish. Never called
// concurrently; must not block or call back into the MoaCall.
class MoaCallSink {
 public:
  virtual ~MoaCallSink() = default;
  virtual void OnEvent(v1::ChatEvent event) = 0;
  // OK after the summary event; otherwise why the call failed.
  virtual void OnFinish(absl::Status status) = 0;
};

struct MoaBackends {
  cluster::GenerationBackend* proposers;   // Layer 1.
  cluster::GenerationBackend* aggregator;  // Layers 2..L and the final answer.
};

// What every MoaCall of a process shares; all must outlive the calls.
// Retries beyond a call's own list (the final answer asked again after its
// replicas and fallbacks failed, a layer whose every model failed asked
// again), shared by every request of the process: each such retry takes a
// token, each final answer that succeeds gives back 0.2, and retries stop
// while half the tokens are gone, so an outage never becomes a storm.
class SharedRetryBudget {
 public:
  explicit SharedRetryBudget(double tokens = 20) : budget_(tokens, 0.2) {}
  // Takes a token when retries are allowed.
  bool TryTake() {
    absl::MutexLock lock(&mu_);
    if (!budget_.AllowRetry()) return false;
    budget_.OnFailure();
    return true;
  }
  void OnSuccess() {
    absl::MutexLock lock(&mu_);
    budget_.OnSuccess();
  }

 private:
  absl::Mutex mu_;
  llm::RetryBudget budget_ ABSL_GUARDED_BY(mu_);
};

struct MoaEnv {
  MoaBackends backends;
  telemetry::OrchestratorMetrics* metrics;
  const Clock* clock = Clock::Real();
  // The models' prices (cost accounting); none: every call costs 0.
  const config::ClusterConfig* config = nullptr;
  // Retries past a call's own list (see SharedRetryBudget); null: none.
  SharedRetryBudget* retries = nullptr;
  // The models' first-token times: a layer call with no first byte past its
  // model's bound is cut as stuck. Null: no call is ever cut as stuck.
  FirstTokenBounds* first_tokens = nullptr;
};

// What the servers and the drain hold of a running request: its MoaCall,
// or a route's classifier call that will start one (route.h).
class RunningCall {
 public:
  virtual ~RunningCall() = default;
  // Cancels every child call at once; the sink gets OnFinish(reason)
  // unless the call had already finished. Thread-safe, idempotent.
  virtual void Cancel(absl::Status reason = absl::CancelledError("the request was cancelled")) = 0;
};

struct PendingRoute;

class MoaCall : public RunningCall, public std::enable_shared_from_this<MoaCall> {
 public:
  struct Options {
    ResolvedPipeline pipeline;
    std::vector<llm::Message> conversation;
    bool stream_proposals = false;
    absl::Time deadline = absl::InfiniteFuture();
    // The pipeline's policy with the request's override on top.
    config::LayerPolicy policy;
    // Set: the final answer streams in staircase steps (staircase.h).
    std::optional<StaircaseSchedule> staircase;
    // The client key's name, for the cost metric's `key` label.
    std::string key_name = "default";
    // Who the client says the end user is (OpenAI's `user`), for the log.
    std::string end_user;
    // Set: the final answer is held until whole, checked, and asked for
    // again once when it fails (answer_format.h).
    std::shared_ptr<const AnswerFormat> answer_format;
    // The client's tools: given to the final answer's model only (the
    // panel reads the conversation's tool turns as text), which may answer
    // with tool calls (an answer_tool_calls event).
    llm::ToolOptions tools;
    // The request's id and trace: every child call carries them, and the
    // request's log line names the id.
    TraceContext trace;
    // Called once at the end with what the request spent: the client
    // key's accounts.
    std::function<void(const Spending&)> on_spent;
    // Seed of the shuffle and dropout steps; unset: a random one (either
    // way reported in their events).
    std::optional<uint64_t> step_seed;
    // Set when the request named a route (route.h): its decision, for the
    // `accepted` event, the log line and moa_routes_total.
    std::optional<v1::RouteChoice> route;
    // The route's classifier call, when one was made: its model and usage
    // (counted with the request's).
    std::optional<std::pair<std::string, llm::Usage>> route_usage;
    // Set by PlanChat while the route's classifier is still to be asked:
    // Engine::Start asks it before the pipeline starts.
    std::shared_ptr<const PendingRoute> pending_route;
  };

  // Starts the call; events begin with `accepted`. The deadline is on
  // env.clock's time.
  static std::shared_ptr<MoaCall> Start(Options options, const MoaEnv& env,
                                        std::shared_ptr<MoaCallSink> sink);

  void Cancel(absl::Status reason = absl::CancelledError("the request was cancelled")) override;

  MoaCall(Options options, const MoaEnv& env, std::shared_ptr<MoaCallSink> sink);

 private:
  class ChildObserver;
  struct Proposal {
    std::string model;    // The model asked now (a fallback after a failure).
    std::string primary;  // The layer's model for this slot.
    size_t fallback = 0;  // Fallbacks of `primary` asked so far.
    std::string text;
    absl::Time started;
    std::optional<absl::Status> failure;
    std::optional<absl::Duration> took;  // Set when it answered.
    bool done = false;
    bool straggler = false;
    bool skipped = false;  // A refine slot with no text to refine: never started.
    bool stuck = false;    // Cut: no first byte within its model's bound.
    std::optional<absl::Time> first_byte;
    std::shared_ptr<llm::CallHandle> handle;  // While it runs.
  };

  // A child call decided under mu_ and started after it is released, since a
  // backend may report OnDone from inside Start.
  struct PendingStart {
    cluster::GenerationBackend* backend;
    cluster::GenerationCall call;
    int layer;
    size_t index;
  };

  void Begin();
  // A call of a proposer layer (layer 1 on the proposers, later ones on the
  // aggregator).
  // `index`: the slot (a refine slot refines the text of the same index).
  cluster::GenerationCall LayerCall(int layer, size_t index, const std::string& model,
                                    const std::vector<synthesis::Reference>& refs) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  config::StepKind KindOf(int layer) const { return options_.pipeline.steps[layer - 1].kind; }
  // Shuffle and dropout: the texts in, the texts out at once.
  void ApplyLocalStepLocked(std::vector<synthesis::Reference> texts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The texts a step that called models hands on (`references_` of the
  // next): its answers (propose, synthesize), the refined texts (a failed
  // refine keeps the draft), the ranked best (rank), the texts as they were
  // with the analysis aside (judge). False when none is left (the request
  // failed).
  bool StepOutputLocked(absl::Duration took, std::vector<synthesis::Reference>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next step, or the terminal one.
  void AdvanceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The terminal vote over `references_`: the answer, then the summary.
  void VoteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The pipeline's early_stop: when the answers of the step that just ended
  // agree, answers with the agreed one and finishes (true); otherwise
  // false. Off when the answer must come from a final call: tools, a
  // response format, staircase streaming.
  bool EarlyStopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The whole answer is `text`, with no final call (the vote, early stop):
  // one answer delta, the summary naming `model`, the end.
  void AnswerWithTextLocked(const std::string& text, const std::string& model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitStepAppliedLocked(int step, config::StepKind kind, uint64_t seed,
                             const std::vector<synthesis::Reference>& kept,
                             const std::vector<synthesis::Reference>& dropped, std::string note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The summary event, with `answer` as the final answer's completion.
  void EmitSummaryLocked(const llm::Completion& answer, const std::string& model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int LastLayer() const { return static_cast<int>(options_.pipeline.layers.size()); }
  cluster::GenerationBackend* LayerBackend(int layer) const;
  config::Sample SampleAt(size_t layer, size_t slot) const;
  void EmitFailedLocked(int layer, const std::string& model, const absl::Status& status,
                        absl::string_view note) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Carries out what was decided under mu_: cancels, then starts, until
  // nothing is left (a start may finish inline and decide more).
  void Act();
  void OnLayerTimer(int layer);
  void CutStragglersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelTimersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmLayerTimerLocked(absl::Time at, Clock::TimerId* id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string WhereTimeWentLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartLayerLocked(size_t layer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the final answer's next step when it may start (normal
  // streaming: once the last layer finished; staircase: see staircase.h).
  // Returns whether it did.
  bool MaybeStartStepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a step of the final answer on FinalModels()[final_.attempt];
  // `retry`: the same step again after its call failed.
  void StartStepLocked(bool last, bool retry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The references of the next step: every answer whole for the last one,
  // else each proposal in the running cut at the step's chunk end.
  std::vector<synthesis::Reference> StepReferencesLocked(bool last, int step) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnFinalDoneLocked(absl::StatusOr<llm::Completion> result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // limits.max_answer_bytes of the config (no cap without one).
  size_t MaxAnswerBytes() const;
  // The answer reached MaxAnswerBytes: the running call is cancelled and the
  // answer ends with finish reason "length".
  // response_format: true when the whole answer passed its check (and was
  // emitted); false when the call was asked again or failed.
  bool AnswerFormatHeldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AnswerFullLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::string> FinalModels() const;
  // Whether a model (or a slot, "x#2") reads images: its config says
  // `capabilities: [vision]`.
  bool ReadsImages(const std::string& model) const;
  // The pipeline's models that get the text only (the `accepted` event).
  std::vector<std::string> TextOnlyModels() const;
  // The conversation as `model` is sent it: without images unless it reads them.
  void DropImagesFor(const std::string& model, std::vector<llm::Message>* messages) const;
  static size_t FinalMetricsIndex(size_t attempt);
  // The model of final attempt `attempt`: the list of FinalModels(), then
  // the aggregator again.
  std::string FinalModelAt(size_t attempt) const;
  size_t FinalMetricsIndexAt(size_t attempt) const;
  // Whether (and after how long) the final answer is asked again after
  // attempt `attempt` failed with `status`: at once through its list, then,
  // while the deadline leaves time and the shared budget allows, the
  // aggregator again with backoff.
  std::optional<absl::Duration> FinalRetryDelayLocked(size_t attempt, const absl::Status& status,
                                                      absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnFinalRetryTimer();
  // Every model of a propose or synthesize layer failed: its failed slots
  // are asked again once after a backoff, within the layer's share of the
  // deadline and the shared budget. Returns whether they will be.
  bool AskLayerAgainLocked(int layer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnAskAgainTimer(int layer);
  // The model a slot's first-token time is kept under (its fallback when
  // one runs, else the layer's model: samples share their model's).
  std::string BoundModelLocked(const Proposal& p) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Arms the stuck check for the earliest bound of the running slots that
  // have no first byte yet.
  void ArmStuckTimerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnStuckTimer(int layer);
  // The final answer's call sent nothing within its model's bound: it is
  // cut and asked again as after any failure of the model (no hedge budget
  // needed), and the model's breaker counts it.
  void OnFinalStuckTimer(size_t seq);
  // Slot `index`'s call in layer `layer` (its model, a sample's seed).
  cluster::GenerationCall SlotCallLocked(int layer, size_t index,
                                         const std::vector<synthesis::Reference>& refs) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnChildDelta(int layer, size_t index, absl::string_view text);
  void OnChildDone(int layer, size_t index, absl::StatusOr<llm::Completion> result);
  // A layer call failed before any text: ask the model's next fallback in
  // the same slot, when it has one. Returns whether it did.
  bool StartFallbackLocked(int layer, size_t index, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnSlotDoneLocked(int layer, size_t index, absl::StatusOr<llm::Completion> result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LayerFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(v1::ChatEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver();
  // At the finish, outside mu_: adds what the call's upstream calls cost to
  // the cost metric and writes the request's log line.
  void RecordFinish(const absl::Status& status);
  // `call`: one of the pipeline's calls (not the route's classifier), whose
  // mean prices the skipped calls.
  void AddUsageLocked(const std::string& model, const llm::Usage& usage, bool call = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the skipped calls would have cost, estimated (Summary.saved_*).
  std::pair<int64_t, double> SavedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What `usage` of `model` (a slot name: "x#2" is model x) costs.
  double CostOf(const std::string& model, const llm::Usage& usage) const;
  bool IsFinal(int layer) const {
    return layer > static_cast<int>(options_.pipeline.layers.size());
  }

  const Options options_;
  const MoaBackends backends_;
  const Clock* const clock_;
  const config::ClusterConfig* const config_;
  SharedRetryBudget* const retries_;
  FirstTokenBounds* const first_tokens_;
  telemetry::OrchestratorMetrics* const all_metrics_;
  // Each layer slot's name in events, references and metrics ("x#2" for
  // sample 2 of model x).
  const std::vector<std::vector<std::string>> slot_names_;
  // Resolved once for the call. Its children are leaves (an atomic, or a
  // histogram's own short lock) that never call back, so they may be
  // touched under mu_.
  const std::shared_ptr<const telemetry::PipelineMetrics> metrics_;
  const std::shared_ptr<MoaCallSink> sink_;
  const absl::Time accepted_;
  const uint64_t seed_;  // Options::step_seed, or a random one.

  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  int current_layer_ ABSL_GUARDED_BY(mu_) = 0;  // 1-based; L+1 is the final answer.
  absl::Time layer_started_ ABSL_GUARDED_BY(mu_);
  std::vector<Proposal> proposals_ ABSL_GUARDED_BY(mu_);
  size_t remaining_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<synthesis::Reference> references_ ABSL_GUARDED_BY(mu_);
  std::vector<synthesis::Reference> layer_inputs_ ABSL_GUARDED_BY(mu_);
  std::vector<PendingStart> to_start_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<llm::CallHandle>> to_cancel_ ABSL_GUARDED_BY(mu_);
  // The current proposer layer's rule, answers in, and timers. The clock's
  // timers never run inside RunAt and Cancel never waits, so they are set
  // and cancelled under mu_.
  LayerRule rule_ ABSL_GUARDED_BY(mu_);
  size_t answered_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time layer_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool layer_timed_out_ ABSL_GUARDED_BY(mu_) = false;
  Clock::TimerId grace_timer_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimerId layer_timer_ ABSL_GUARDED_BY(mu_) = 0;
  // A layer whose every model failed is asked again once (its failed slots,
  // after a backoff), and the final answer past its list after a backoff.
  Clock::TimerId ask_again_timer_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimerId stuck_timer_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimerId final_retry_timer_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimerId final_stuck_timer_ ABSL_GUARDED_BY(mu_) = 0;
  bool layer_asked_again_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<size_t> asked_again_ ABSL_GUARDED_BY(mu_);  // Slots waiting for the timer.
  std::vector<int> layer_references_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, llm::Usage>> usage_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> layer_durations_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Duration> answer_ttft_ ABSL_GUARDED_BY(mu_);
  std::string answer_text_ ABSL_GUARDED_BY(mu_);  // Streamed to the client so far.
  // The models of the calls not made (Summary.skipped_calls): a preset's
  // trimmed slots, then what early stop skipped.
  std::vector<std::string> skipped_ ABSL_GUARDED_BY(mu_);
  // Tokens of the pipeline's calls that ended well, and how many: their
  // mean prices the skipped ones (the route's classifier not counted).
  llm::Usage call_usage_ ABSL_GUARDED_BY(mu_);
  int calls_ended_well_ ABSL_GUARDED_BY(mu_) = 0;
  // A judge's analysis, for the next synthesize step or the final answer.
  std::string analysis_ ABSL_GUARDED_BY(mu_);
  // The analysis the running synthesize step was given (its fallbacks too).
  std::string layer_analysis_ ABSL_GUARDED_BY(mu_);

  // The final answer: one call (normal streaming, plus retries), or the
  // staircase's steps, one at a time, each continuing the answer so far.
  struct FinalStage {
    bool layer_done = false;   // The last proposer layer finished: references_ hold it.
    size_t attempt = 0;        // Index into FinalModels(): calls that failed so far.
    int step = 0;              // Steps started; the running one's number.
    bool running = false;      // A call is in progress.
    bool last = false;         // The running (or latest) step is the last.
    size_t seq = 0;            // Tags the running call's events.
    std::string model;         // Of the running call.
    absl::Time call_started;   // Of the running call.
    bool first_byte = false;   // The running call has sent something.
    absl::Time stage_started;  // When the first step started.
    std::shared_ptr<llm::CallHandle> handle;
    std::vector<synthesis::Reference> references;  // The running step's, for its retries.
    llm::Usage usage;                              // Summed over the calls that ended well.
    // The answer that failed response_format's check and why: the one call
    // asked again gets them as a turn of its conversation.
    std::optional<std::pair<std::string, std::string>> format_correction;
  };
  FinalStage final_ ABSL_GUARDED_BY(mu_);

  // Ordered delivery without calling the sink under mu_: events queue here,
  // and whichever thread finds no delivery in flight delivers the next one
  // (the sink's "write" is synchronous). Closed with finish_status_.
  // Events queued behind a delivery go out together: one batch per turn.
  struct AppendBatch {
    bool operator()(std::vector<v1::ChatEvent>& last, std::vector<v1::ChatEvent>& next) const {
      for (v1::ChatEvent& e : next) last.push_back(std::move(e));
      return true;
    }
  };
  using Outbox = WriteQueue<std::vector<v1::ChatEvent>, AppendBatch>;
  Outbox outbox_ ABSL_GUARDED_BY(mu_);
  absl::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_MOA_CALL_H_
