#include "services/orchestrator/engine/moa_call.h"

#include <algorithm>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/base/circuit_breaker.h"
#include "lib/base/log.h"
#include "lib/base/retry_after.h"
#include "lib/telemetry/outcome.h"
#include "lib/wire/wire.h"
#include "services/orchestrator/engine/steps.h"

namespace moa::orchestrator {
namespace {

// Under 2^53, so a seed survives JSON and JavaScript clients on its way
// back (HTTP moa_step_seed).
uint64_t RandomSeed() {
  std::random_device device;
  return ((uint64_t{device()} << 32) ^ device()) & ((uint64_t{1} << 53) - 1);
}

// Retries past a call's own list: the first after kRetryBackoff (x jitter
// in [0.5, 1]), doubling up to kRetryBackoffCap; a final answer is asked
// again only while the deadline leaves kMinAnswerTime after the backoff.
constexpr absl::Duration kRetryBackoff = absl::Milliseconds(250);
constexpr absl::Duration kRetryBackoffCap = absl::Seconds(5);
constexpr absl::Duration kMinAnswerTime = absl::Seconds(1);
constexpr size_t kMaxExtraFinalAttempts = 8;

double Jitter() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.5, 1.0)(rng);
}

// A pipeline given as layers alone (tests, older callers) proposes, then
// synthesizes per later layer.
MoaCall::Options WithSteps(MoaCall::Options options) {
  std::vector<config::StepConfig>& steps = options.pipeline.steps;
  for (size_t i = steps.size(); i < options.pipeline.layers.size(); ++i) {
    config::StepConfig step;
    step.kind = i == 0 ? config::StepKind::kPropose : config::StepKind::kSynthesize;
    steps.push_back(step);
  }
  return options;
}

}  // namespace

// Forwards one child call's events to the MoaCall, tagged with its place.
class MoaCall::ChildObserver final : public cluster::GenerationObserver {
 public:
  ChildObserver(std::shared_ptr<MoaCall> call, int layer, size_t index)
      : call_(std::move(call)), layer_(layer), index_(index) {}
  void OnDelta(absl::string_view text) override { call_->OnChildDelta(layer_, index_, text); }
  void OnDone(absl::StatusOr<llm::Completion> result) override {
    call_->OnChildDone(layer_, index_, std::move(result));
  }

 private:
  std::shared_ptr<MoaCall> call_;
  const int layer_;
  const size_t index_;
};

MoaCall::MoaCall(Options options, const MoaEnv& env, std::shared_ptr<MoaCallSink> sink)
    : options_(WithSteps(std::move(options))),
      backends_(env.backends),
      clock_(env.clock),
      config_(env.config),
      retries_(env.retries),
      first_tokens_(env.first_tokens),
      all_metrics_(env.metrics),
      slot_names_(config::SlotNames(options_.pipeline.layers, options_.pipeline.samples)),
      metrics_(env.metrics->For({options_.pipeline.name, slot_names_, options_.pipeline.aggregator,
                                 options_.pipeline.aggregator_fallbacks,
                                 config::StepKindNames(options_.pipeline.steps),
                                 config::StepKindName(options_.pipeline.terminal)})),
      sink_(std::move(sink)),
      accepted_(clock_->Now()),
      seed_(options_.step_seed.value_or(RandomSeed())) {}

std::shared_ptr<MoaCall> MoaCall::Start(Options options, const MoaEnv& env,
                                        std::shared_ptr<MoaCallSink> sink) {
  auto call = std::make_shared<MoaCall>(std::move(options), env, std::move(sink));
  call->Begin();
  return call;
}

void MoaCall::Begin() {
  metrics_->RequestStarted();
  {
    absl::MutexLock lock(&mu_);
    v1::ChatEvent event;
    v1::Accepted* accepted = event.mutable_accepted();
    accepted->set_pipeline(options_.pipeline.name);
    for (const auto& layer : slot_names_) {
      auto* l = accepted->add_layers();
      for (const auto& m : layer) l->add_models(m);
    }
    accepted->set_aggregator(options_.pipeline.aggregator);
    for (const config::StepConfig& s : options_.pipeline.steps) {
      accepted->add_steps(config::StepKindName(s.kind));
    }
    accepted->set_terminal(config::StepKindName(options_.pipeline.terminal));
    for (const std::string& m : TextOnlyModels()) accepted->add_text_only(m);
    accepted->set_preset(options_.pipeline.preset);
    if (options_.route) {
      *accepted->mutable_route() = *options_.route;
      all_metrics_->Routed(options_.route->route(), options_.route->pipeline(),
                           options_.route->by());
    }
    if (options_.route_usage) {
      AddUsageLocked(options_.route_usage->first, options_.route_usage->second, /*call=*/false);
    }
    skipped_ = options_.pipeline.trimmed;
    EmitLocked(std::move(event));
    StartLayerLocked(1);
  }
  Act();
  Deliver();
}

void MoaCall::Act() {
  while (true) {
    std::vector<std::shared_ptr<llm::CallHandle>> cancels;
    std::vector<PendingStart> starts;
    {
      absl::MutexLock lock(&mu_);
      cancels.swap(to_cancel_);
      starts.swap(to_start_);
    }
    if (cancels.empty() && starts.empty()) return;
    for (auto& handle : cancels) handle->Cancel();
    for (PendingStart& s : starts) {
      auto handle = s.backend->Start(
          std::move(s.call), std::make_shared<ChildObserver>(shared_from_this(), s.layer, s.index));
      bool keep;
      {
        absl::MutexLock lock(&mu_);
        // A call whose place is gone (cancelled, cut as a straggler, its
        // layer went on, or the answer ended) is cancelled now; Cancel on an
        // ended call is a no-op.
        if (IsFinal(s.layer)) {
          keep = !cancelled_ && !finished_ && final_.running && s.index == final_.seq;
          if (keep) final_.handle = handle;
        } else {
          keep = !cancelled_ && !finished_ && s.layer == current_layer_ &&
                 s.index < proposals_.size() && !proposals_[s.index].done;
          if (keep) proposals_[s.index].handle = handle;
        }
      }
      if (!keep) handle->Cancel();
    }
  }
}

void MoaCall::ArmLayerTimerLocked(absl::Time at, Clock::TimerId* id) {
  if (*id != 0) clock_->Cancel(*id);
  *id = 0;
  if (at == absl::InfiniteFuture()) return;
  std::weak_ptr<MoaCall> weak = weak_from_this();
  const int layer = current_layer_;
  *id = clock_->RunAt(at, [weak, layer] {
    if (auto self = weak.lock()) self->OnLayerTimer(layer);
  });
}

void MoaCall::CancelTimersLocked() {
  if (grace_timer_ != 0) clock_->Cancel(grace_timer_);
  if (layer_timer_ != 0) clock_->Cancel(layer_timer_);
  if (ask_again_timer_ != 0) clock_->Cancel(ask_again_timer_);
  if (stuck_timer_ != 0) clock_->Cancel(stuck_timer_);
  grace_timer_ = layer_timer_ = ask_again_timer_ = stuck_timer_ = 0;
}

void MoaCall::OnLayerTimer(int layer) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || layer != current_layer_ || IsFinal(layer) || remaining_ == 0) return;
    layer_timed_out_ = clock_->Now() >= layer_deadline_;
    CutStragglersLocked();
    LayerFinishedLocked();
  }
  Act();
  Deliver();
}

void MoaCall::CutStragglersLocked() {
  const absl::Time now = clock_->Now();
  for (size_t i = 0; i < proposals_.size(); ++i) {
    Proposal& p = proposals_[i];
    if (p.done) continue;
    p.done = true;
    p.straggler = true;
    --remaining_;
    if (p.handle) to_cancel_.push_back(std::move(p.handle));
    metrics_->CallDone(static_cast<size_t>(current_layer_ - 1), i, telemetry::Outcome::kStraggler,
                       now - p.started);
    v1::ChatEvent event;
    auto* straggler = event.mutable_proposal_straggler();
    straggler->mutable_ref()->set_layer(current_layer_);
    straggler->mutable_ref()->set_model(p.model);
    wire::ToProto(now - p.started, straggler->mutable_ran());
    EmitLocked(std::move(event));
  }
}

std::optional<absl::Duration> MoaCall::FinalRetryDelayLocked(size_t attempt,
                                                             const absl::Status& status,
                                                             absl::Time now) {
  if (cancelled_ || now >= options_.deadline || !IsModelFailure(status)) return std::nullopt;
  const size_t listed = FinalModels().size();
  if (attempt + 1 < listed) return absl::ZeroDuration();  // Replicas, fallbacks: at once.
  // Past the list: the aggregator again with backoff (honouring a
  // Retry-After) while the deadline leaves time for an answer, at most
  // kMaxExtraFinalAttempts times, each taking a token of the shared budget.
  const size_t extra = attempt + 1 - listed;
  if (retries_ == nullptr || options_.deadline == absl::InfiniteFuture() ||
      extra >= kMaxExtraFinalAttempts) {
    return std::nullopt;
  }
  absl::Duration backoff =
      std::min(kRetryBackoffCap, kRetryBackoff * (int64_t{1} << std::min<size_t>(extra, 6))) *
      Jitter();
  if (auto retry_after = GetRetryAfter(status)) backoff = std::max(backoff, *retry_after);
  if (now + backoff + kMinAnswerTime >= options_.deadline) return std::nullopt;
  // The budget spares the model: a refusal of ours (an open breaker, whose
  // Retry-After is the cooldown) or of the path to it costs the model
  // nothing, so waiting it out takes no token.
  if (IsFromUpstream(status) && !retries_->TryTake()) return std::nullopt;
  return backoff;
}

void MoaCall::OnFinalRetryTimer() {
  {
    absl::MutexLock lock(&mu_);
    final_retry_timer_ = 0;
    if (finished_ || cancelled_ || final_.running) return;
    StartStepLocked(final_.last, /*retry=*/true);
  }
  Act();
  Deliver();
}

bool MoaCall::AskLayerAgainLocked(int layer) {
  const config::StepKind kind = KindOf(layer);
  if (answered_ > 0 || layer_asked_again_ || cancelled_ || retries_ == nullptr ||
      (kind != config::StepKind::kPropose && kind != config::StepKind::kSynthesize)) {
    return false;
  }
  std::vector<size_t> slots;
  absl::Duration backoff = kRetryBackoff * Jitter();
  for (size_t i = 0; i < proposals_.size(); ++i) {
    const Proposal& p = proposals_[i];
    // A stuck model would only hang again.
    if (p.skipped || p.straggler || p.stuck || !p.failure || !IsModelFailure(*p.failure)) {
      continue;
    }
    slots.push_back(i);
    if (auto retry_after = GetRetryAfter(*p.failure)) {
      backoff = std::max(backoff, std::min(*retry_after, kRetryBackoffCap));
    }
  }
  const absl::Time now = clock_->Now();
  if (slots.empty() || now + backoff >= layer_deadline_ || !retries_->TryTake()) return false;
  layer_asked_again_ = true;
  for (size_t i : slots) {
    Proposal& p = proposals_[i];
    p.done = false;
    p.failure.reset();
    p.started = now + backoff;
    ++remaining_;
  }
  asked_again_ = std::move(slots);
  std::weak_ptr<MoaCall> weak = weak_from_this();
  ask_again_timer_ = clock_->RunAt(now + backoff, [weak, layer] {
    if (auto self = weak.lock()) self->OnAskAgainTimer(layer);
  });
  return true;
}

void MoaCall::OnAskAgainTimer(int layer) {
  {
    absl::MutexLock lock(&mu_);
    ask_again_timer_ = 0;
    if (finished_ || layer != current_layer_) return;
    const std::vector<std::string>& names = slot_names_[layer - 1];
    for (size_t i : std::exchange(asked_again_, {})) {
      Proposal& p = proposals_[i];
      if (p.done) continue;  // Cut at the layer's deadline meanwhile.
      p.model = names[i];
      p.fallback = 0;
      p.started = clock_->Now();
      p.first_byte.reset();
      v1::ChatEvent event;
      auto* ref = event.mutable_proposal_started()->mutable_ref();
      ref->set_layer(layer);
      ref->set_model(p.model);
      EmitLocked(std::move(event));
      to_start_.push_back({LayerBackend(layer), SlotCallLocked(layer, i, layer_inputs_), layer, i});
    }
    ArmStuckTimerLocked();
  }
  Act();
  Deliver();
}

std::string MoaCall::BoundModelLocked(const Proposal& p) const {
  return p.fallback > 0 ? p.model : p.primary;
}

void MoaCall::ArmStuckTimerLocked() {
  // Only the default policy cuts stuck calls: a policy that names
  // min_proposals decides itself (`all` is the paper's wait-for-all, exactly;
  // k of n goes on with the grace).
  if (first_tokens_ == nullptr || options_.policy.min_proposals) return;
  if (stuck_timer_ != 0) clock_->Cancel(stuck_timer_);
  stuck_timer_ = 0;
  absl::Time earliest = absl::InfiniteFuture();
  for (const Proposal& p : proposals_) {
    if (p.done || p.skipped || p.first_byte) continue;
    earliest = std::min(earliest, p.started + first_tokens_->BoundFor(BoundModelLocked(p)));
  }
  if (earliest == absl::InfiniteFuture()) return;
  std::weak_ptr<MoaCall> weak = weak_from_this();
  const int layer = current_layer_;
  stuck_timer_ = clock_->RunAt(earliest, [weak, layer] {
    if (auto self = weak.lock()) self->OnStuckTimer(layer);
  });
}

void MoaCall::OnStuckTimer(int layer) {
  std::vector<std::string> stuck;
  cluster::GenerationBackend* backend = nullptr;
  {
    absl::MutexLock lock(&mu_);
    stuck_timer_ = 0;
    if (finished_ || layer != current_layer_ || IsFinal(layer)) return;
    backend = LayerBackend(layer);
    const absl::Time now = clock_->Now();
    for (size_t i = 0; i < proposals_.size(); ++i) {
      Proposal& p = proposals_[i];
      if (p.done || p.skipped || p.first_byte) continue;
      const absl::Duration bound = first_tokens_->BoundFor(BoundModelLocked(p));
      if (now < p.started + bound) continue;
      // Stuck, not slow: cut at once, the model's failure (its breaker
      // counts it, so later requests skip a model that hangs).
      p.done = p.stuck = true;
      p.failure = absl::DeadlineExceededError(absl::StrCat(
          "no first token after ",
          absl::FormatDuration(absl::Trunc(now - p.started, absl::Milliseconds(100))),
          " (its bound: ", absl::FormatDuration(absl::Trunc(bound, absl::Milliseconds(100))), ")"));
      --remaining_;
      if (p.handle) to_cancel_.push_back(std::move(p.handle));
      metrics_->CallDone(static_cast<size_t>(layer - 1), i, telemetry::OutcomeOf(*p.failure),
                         now - p.started);
      EmitFailedLocked(layer, p.model, *p.failure, "; cut as stuck");
      stuck.push_back(BoundModelLocked(p));
      first_tokens_->NoteStuck(stuck.back());
    }
    if (!stuck.empty() && remaining_ == 0) {
      if (!AskLayerAgainLocked(layer)) LayerFinishedLocked();
    } else {
      ArmStuckTimerLocked();
    }
    MaybeStartStepLocked();
  }
  for (const std::string& model : stuck) backend->ReportStuck(model);
  Act();
  Deliver();
}

std::string MoaCall::WhereTimeWentLocked() const {
  std::vector<std::string> parts;
  for (size_t i = 0; i < layer_durations_.size(); ++i) {
    parts.push_back(absl::StrCat("layer ", i + 1, " ", absl::FormatDuration(layer_durations_[i])));
  }
  parts.push_back(absl::StrCat(IsFinal(current_layer_) ? "final answer " : "this layer ",
                               absl::FormatDuration(clock_->Now() - layer_started_)));
  std::string budget =
      options_.deadline == absl::InfiniteFuture()
          ? std::string()
          : absl::StrCat(" of ", absl::FormatDuration(options_.deadline - accepted_));
  return absl::StrCat("time went to ", absl::StrJoin(parts, ", "), budget);
}

cluster::GenerationCall MoaCall::LayerCall(int layer, size_t index, const std::string& model,
                                           const std::vector<synthesis::Reference>& refs) const {
  cluster::GenerationCall call;
  call.model = model;
  const config::StepConfig& step = options_.pipeline.steps[layer - 1];
  switch (step.kind) {
    case config::StepKind::kPropose:
      call.messages = options_.conversation;
      break;
    case config::StepKind::kSynthesize:
      call.messages = options_.conversation;
      call.references = refs;
      call.analysis = layer_analysis_;
      break;
    case config::StepKind::kRank:
    case config::StepKind::kJudge:
      call.messages =
          CompareMessages(options_.conversation, refs,
                          !step.prompt.empty()                   ? step.prompt
                          : step.kind == config::StepKind::kRank ? DefaultRankInstruction()
                                                                 : DefaultJudgeInstruction());
      break;
    case config::StepKind::kRefine:
      call.messages =
          RefineMessages(options_.conversation, index < refs.size() ? refs[index].text : "",
                         step.prompt.empty() ? DefaultRefineInstruction() : step.prompt);
      break;
    default:  // Steps without calls never get here.
      call.messages = options_.conversation;
      break;
  }
  call.params = options_.pipeline.params;
  call.deadline = options_.deadline;
  call.trace = options_.trace;
  DropImagesFor(model, &call.messages);
  // The client's tools go to the final step; in a layer only to a model
  // configured for them (its calls join its text, OnSlotDoneLocked).
  if (!options_.tools.empty() && config_ != nullptr) {
    const config::ModelConfig* m = config_->FindModel(model.substr(0, model.find('#')));
    if (m != nullptr && m->layer_tools) call.tools = options_.tools;
  }
  // Proposals nobody watches travel whole, one message instead of one per
  // token; only their full text is used. The staircase reads the last
  // layer's text as it grows.
  call.whole_text =
      !options_.stream_proposals && !(options_.staircase.has_value() && layer == LastLayer());
  return call;
}

config::Sample MoaCall::SampleAt(size_t layer, size_t slot) const {
  const auto& samples = options_.pipeline.samples;
  if (layer >= samples.size() || slot >= samples[layer].size()) return {};
  return samples[layer][slot];
}

cluster::GenerationBackend* MoaCall::LayerBackend(int layer) const {
  // Only synthesis is the aggregator's; the other steps' prompts are built
  // here and go to the model's proposer as they are.
  return KindOf(layer) == config::StepKind::kSynthesize ? backends_.aggregator
                                                        : backends_.proposers;
}

void MoaCall::EmitFailedLocked(int layer, const std::string& model, const absl::Status& status,
                               absl::string_view note) {
  v1::ChatEvent event;
  auto* failed = event.mutable_proposal_failed();
  failed->mutable_ref()->set_layer(layer);
  failed->mutable_ref()->set_model(model);
  failed->mutable_status()->set_code(static_cast<int>(status.code()));
  failed->mutable_status()->set_message(absl::StrCat(status.message(), note));
  EmitLocked(std::move(event));
}

void MoaCall::StartLayerLocked(size_t layer) {
  current_layer_ = static_cast<int>(layer);
  layer_started_ = clock_->Now();
  // The first step sees the conversation as is; later ones the texts the
  // step before handed on (references replace, never accumulate).
  std::vector<synthesis::Reference> refs = std::move(references_);
  references_.clear();
  const config::StepKind kind = KindOf(static_cast<int>(layer));
  if (!config::StepCallsModels(kind)) return ApplyLocalStepLocked(std::move(refs));
  if (kind == config::StepKind::kSynthesize) layer_analysis_ = std::exchange(analysis_, "");
  const std::vector<std::string>& models = options_.pipeline.layers[layer - 1];
  // A refine slot refines the text of its index; slots past the texts left
  // have nothing to do.
  const size_t active =
      kind == config::StepKind::kRefine ? std::min(models.size(), refs.size()) : models.size();
  proposals_.assign(models.size(), Proposal{});
  remaining_ = active;
  answered_ = 0;
  layer_timed_out_ = false;
  rule_ = RuleFor(options_.policy, active);
  layer_deadline_ = rule_.LayerDeadline(layer_started_, options_.deadline);
  ArmLayerTimerLocked(layer_deadline_, &layer_timer_);
  layer_inputs_ = refs;  // Kept for fallback calls and the step's output.
  layer_asked_again_ = false;
  asked_again_.clear();
  const std::vector<std::string>& names = slot_names_[layer - 1];
  for (size_t i = 0; i < models.size(); ++i) {
    proposals_[i].model = names[i];  // "x#2" for sample 2 of model x.
    proposals_[i].primary = models[i];
    proposals_[i].started = layer_started_;
    if (i >= active) {
      proposals_[i].done = proposals_[i].skipped = true;
      continue;
    }
    v1::ChatEvent event;
    auto* ref = event.mutable_proposal_started()->mutable_ref();
    ref->set_layer(static_cast<int>(layer));
    ref->set_model(names[i]);
    EmitLocked(std::move(event));
  }
  for (size_t i = 0; i < active; ++i) {
    to_start_.push_back({LayerBackend(static_cast<int>(layer)),
                         SlotCallLocked(static_cast<int>(layer), i, refs), static_cast<int>(layer),
                         i});
  }
  ArmStuckTimerLocked();
}

cluster::GenerationCall MoaCall::SlotCallLocked(
    int layer, size_t index, const std::vector<synthesis::Reference>& refs) const {
  const std::vector<std::string>& models = options_.pipeline.layers[layer - 1];
  cluster::GenerationCall call = LayerCall(layer, index, models[index], refs);
  const config::Sample sample = SampleAt(static_cast<size_t>(layer - 1), index);
  if (sample.index > 0) {
    // Samples of one model differ by seed (the request's, or 1, plus the
    // sample's number less one) and, when configured, temperature.
    call.params.seed = call.params.seed.value_or(1) + sample.index - 1;
    if (sample.temperature) call.params.temperature = sample.temperature;
  }
  return call;
}

std::string MoaCall::FinalModelAt(size_t attempt) const {
  const std::vector<std::string> models = FinalModels();
  return attempt < models.size() ? models[attempt] : options_.pipeline.aggregator;
}

size_t MoaCall::FinalMetricsIndexAt(size_t attempt) const {
  return FinalMetricsIndex(attempt < FinalModels().size() ? attempt : 0);
}

bool MoaCall::ReadsImages(const std::string& model) const {
  if (config_ == nullptr) return true;  // No config (tests): nothing to say otherwise.
  const config::ModelConfig* m = config_->FindModel(model.substr(0, model.find('#')));
  return m != nullptr && m->vision;
}

std::vector<std::string> MoaCall::TextOnlyModels() const {
  bool images = false;
  for (const llm::Message& m : options_.conversation) images |= !m.images.empty();
  std::vector<std::string> out;
  if (!images) return out;
  auto note = [&](const std::string& model) {
    if (!ReadsImages(model) && std::find(out.begin(), out.end(), model) == out.end()) {
      out.push_back(model);
    }
  };
  for (const auto& layer : options_.pipeline.layers) {
    for (const std::string& model : layer) note(model);
  }
  for (const auto& [model, fallbacks] : options_.pipeline.fallbacks) {
    for (const std::string& f : fallbacks) note(f);
  }
  if (options_.pipeline.terminal != config::StepKind::kVote) {
    for (const std::string& model : FinalModels()) note(model);
  }
  return out;
}

void MoaCall::DropImagesFor(const std::string& model, std::vector<llm::Message>* messages) const {
  if (ReadsImages(model)) return;
  for (llm::Message& m : *messages) m.images.clear();
}

std::vector<std::string> MoaCall::FinalModels() const {
  // The aggregator, up to twice more (gRPC picks another replica when there
  // is one; a failure may also come from a replica of the model behind it),
  // then each fallback in order.
  std::vector<std::string> models = {options_.pipeline.aggregator, options_.pipeline.aggregator,
                                     options_.pipeline.aggregator};
  for (const std::string& m : options_.pipeline.aggregator_fallbacks) models.push_back(m);
  return models;
}

size_t MoaCall::FinalMetricsIndex(size_t attempt) { return attempt < 3 ? 0 : attempt - 2; }

bool MoaCall::MaybeStartStepLocked() {
  // A final answer waiting for its retry's backoff starts from the timer.
  if (finished_ || cancelled_ || final_.running || final_retry_timer_ != 0) return false;
  if (final_.layer_done) {
    StartStepLocked(/*last=*/true, /*retry=*/false);
    return true;
  }
  if (!options_.staircase || current_layer_ != LastLayer()) return false;
  const int next = final_.step + 1;
  if (next >= options_.staircase->max_steps) return false;  // The last step waits for all.
  // The quorum of the proposals still in the running reached the chunk's
  // end (or finished); the rest are given what they have.
  const size_t end = options_.staircase->ChunkEndBytes(next);
  size_t live = 0, reached = 0;
  bool any_text = false;
  for (const Proposal& p : proposals_) {
    if (p.failure || p.straggler) continue;
    ++live;
    if (p.done || p.text.size() >= end) ++reached;
    any_text |= !p.text.empty();
  }
  if (live == 0 || !any_text || reached < std::min(rule_.min_proposals, live)) return false;
  StartStepLocked(/*last=*/false, /*retry=*/false);
  return true;
}

std::vector<synthesis::Reference> MoaCall::StepReferencesLocked(bool last, int step) const {
  if (last) return references_;
  const size_t end = options_.staircase->ChunkEndBytes(step);
  std::vector<synthesis::Reference> refs;
  for (const Proposal& p : proposals_) {
    if (p.failure || p.straggler || p.text.empty()) continue;
    absl::string_view text = Utf8Prefix(p.text, end);
    if (text.empty()) continue;
    refs.push_back({p.model, std::string(text), !p.done || text.size() < p.text.size()});
  }
  return refs;
}

void MoaCall::StartStepLocked(bool last, bool retry) {
  const absl::Time now = clock_->Now();
  if (!retry) {
    if (final_.step == 0) final_.stage_started = now;
    ++final_.step;
    final_.last = last;
    final_.references = StepReferencesLocked(last, final_.step);
    if (options_.staircase) {
      v1::ChatEvent event;
      v1::AnswerStep* step = event.mutable_answer_step();
      step->set_step(final_.step);
      step->set_last(last);
      step->set_answer_bytes(static_cast<int64_t>(answer_text_.size()));
      for (const synthesis::Reference& r : final_.references) {
        v1::StepReference* ref = step->add_references();
        ref->set_model(r.model);
        ref->set_bytes(static_cast<int64_t>(r.text.size()));
        ref->set_partial(r.partial);
      }
      EmitLocked(std::move(event));
    }
  }
  final_.model = FinalModelAt(final_.attempt);
  final_.call_started = now;
  final_.running = true;
  ++final_.seq;
  cluster::GenerationCall call;
  call.model = final_.model;
  call.messages = options_.conversation;
  call.references = final_.references;
  call.params = options_.pipeline.params;
  call.deadline = options_.deadline;
  call.trace = options_.trace;
  // Text already streamed to the client is continued, never asked for
  // again: after a failed call, and by every staircase step after the first.
  call.continue_from = answer_text_;
  call.analysis = analysis_;
  call.tools = options_.tools;
  DropImagesFor(call.model, &call.messages);
  if (final_.format_correction) {
    call.messages.push_back({llm::Role::kAssistant, final_.format_correction->first});
    call.messages.push_back(
        {llm::Role::kUser,
         absl::StrCat("That answer was not accepted: ", final_.format_correction->second,
                      ". Answer again, with the JSON only.")});
  }
  if (options_.staircase) {
    // Each step writes at most its chunk; all steps share the request's
    // max_tokens.
    std::optional<int> budget;
    if (options_.pipeline.params.max_tokens) {
      budget = std::max<int64_t>(
          1, *options_.pipeline.params.max_tokens - final_.usage.completion_tokens);
    }
    if (!last) {
      int chunk = static_cast<int>(options_.staircase->ChunkTokens(final_.step));
      call.params.max_tokens = budget ? std::min(*budget, chunk) : chunk;
    } else {
      call.params.max_tokens = budget;
    }
  }
  to_start_.push_back({backends_.aggregator, std::move(call), LastLayer() + 1, final_.seq});
  final_.first_byte = false;
  if (first_tokens_ != nullptr) {
    if (final_stuck_timer_ != 0) clock_->Cancel(final_stuck_timer_);
    std::weak_ptr<MoaCall> weak = weak_from_this();
    const size_t seq = final_.seq;
    final_stuck_timer_ = clock_->RunAt(now + first_tokens_->BoundFor(final_.model), [weak, seq] {
      if (auto self = weak.lock()) self->OnFinalStuckTimer(seq);
    });
  }
}

void MoaCall::OnFinalStuckTimer(size_t seq) {
  std::string model;
  {
    absl::MutexLock lock(&mu_);
    if (final_stuck_timer_ == 0) return;
    final_stuck_timer_ = 0;
    if (finished_ || !final_.running || final_.seq != seq || final_.first_byte) return;
    model = final_.model;
    const absl::Time now = clock_->Now();
    absl::Status stuck = absl::DeadlineExceededError(absl::StrCat(
        "no first token after ",
        absl::FormatDuration(absl::Trunc(now - final_.call_started, absl::Milliseconds(100))),
        "; cut as stuck"));
    MarkFromUpstream(stuck);  // The model's failure: a retry spends the budget.
    first_tokens_->NoteStuck(model);
    if (final_.handle) to_cancel_.push_back(std::move(final_.handle));
    OnFinalDoneLocked(std::move(stuck));
  }
  backends_.aggregator->ReportStuck(model);
  Act();
  Deliver();
}

void MoaCall::OnChildDelta(int layer, size_t index, absl::string_view text) {
  bool started = false;  // Something to start or cancel: Act() after the lock.
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    v1::ChatEvent event;
    if (IsFinal(layer)) {
      if (!final_.running || index != final_.seq) return;
      if (!final_.first_byte) {
        final_.first_byte = true;
        if (final_stuck_timer_ != 0) clock_->Cancel(final_stuck_timer_);
        final_stuck_timer_ = 0;
        if (first_tokens_ != nullptr) {
          first_tokens_->Record(final_.model, clock_->Now() - final_.call_started);
        }
      }
      if (!answer_ttft_) {
        answer_ttft_ = clock_->Now() - accepted_;
        metrics_->AnswerFirstToken(*answer_ttft_);
      }
      // The answer as a whole stays within the cap one call has: resumes
      // and staircase steps each write up to it, and a resume must be able
      // to send the answer so far (continue_from) as one answer.
      const size_t room = MaxAnswerBytes() - std::min(MaxAnswerBytes(), answer_text_.size());
      const bool cut = text.size() > room;
      if (cut) text = Utf8Prefix(text, room);
      answer_text_.append(text.data(), text.size());
      // A structured answer is held until it is whole and checked.
      if (!text.empty() && options_.answer_format == nullptr) {
        event.set_answer_delta(std::string(text));
        EmitLocked(std::move(event));
      }
      if (cut) {
        AnswerFullLocked();
        started = true;  // Act() carries out the cancel.
      }
    } else {
      if (layer != current_layer_ || index >= proposals_.size()) return;
      Proposal& p = proposals_[index];
      if (!p.first_byte && !p.done) p.first_byte = clock_->Now();
      p.text.append(text.data(), text.size());
      if (options_.stream_proposals) {
        auto* d = event.mutable_proposal_delta();
        d->mutable_ref()->set_layer(layer);
        d->mutable_ref()->set_model(p.model);
        d->set_text(std::string(text));
        EmitLocked(std::move(event));
      }
      started = MaybeStartStepLocked();
    }
  }
  if (started) Act();
  Deliver();
}

size_t MoaCall::MaxAnswerBytes() const {
  return config_ == nullptr ? std::numeric_limits<size_t>::max()
                            : static_cast<size_t>(config_->limits.max_answer_bytes);
}

void MoaCall::AnswerFullLocked() {
  // The call still writing is no longer needed; what it used is not
  // reported once it is cancelled.
  if (final_.handle) to_cancel_.push_back(std::move(final_.handle));
  final_.running = false;
  const absl::Time now = clock_->Now();
  const size_t step = options_.pipeline.layers.size();
  metrics_->CallDone(step, FinalMetricsIndexAt(final_.attempt), telemetry::Outcome::kOk,
                     now - final_.call_started);
  if (!final_.layer_done) CutStragglersLocked();
  if (options_.answer_format != nullptr && !AnswerFormatHeldLocked()) return;
  metrics_->StepDone(step, now - final_.stage_started);
  metrics_->AnswerSteps(final_.step);
  llm::Completion answer;
  answer.finish_reason = "length";
  answer.usage = final_.usage;
  answer.time_to_first_token =
      answer_ttft_ ? accepted_ + *answer_ttft_ - final_.stage_started : now - final_.stage_started;
  answer.duration = now - final_.stage_started;
  EmitSummaryLocked(answer, final_.model);
  FinishLocked(absl::OkStatus());
}

void MoaCall::OnChildDone(int layer, size_t index, absl::StatusOr<llm::Completion> result) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (IsFinal(layer)) {
      if (!final_.running || index != final_.seq) return;
      OnFinalDoneLocked(std::move(result));
    } else {
      if (layer != current_layer_ || index >= proposals_.size()) return;
      Proposal& p = proposals_[index];
      if (p.done) return;  // Also a straggler's CANCELLED after its cut.
      if (!result.ok() && StartFallbackLocked(layer, index, result.status())) {
        // The slot goes on with the model's fallback.
      } else {
        OnSlotDoneLocked(layer, index, std::move(result));
      }
      MaybeStartStepLocked();
    }
  }
  Act();
  Deliver();
}

bool MoaCall::StartFallbackLocked(int layer, size_t index, const absl::Status& status) {
  Proposal& p = proposals_[index];
  auto it = options_.pipeline.fallbacks.find(p.primary);
  if (it == options_.pipeline.fallbacks.end() || p.fallback >= it->second.size()) return false;
  if (!p.text.empty() || cancelled_) return false;
  const absl::Time now = clock_->Now();
  if (now >= options_.deadline || !IsModelFailure(status)) return false;
  const std::string next = it->second[p.fallback++];
  metrics_->CallDone(static_cast<size_t>(layer - 1), index, telemetry::OutcomeOf(status),
                     now - p.started);
  EmitFailedLocked(layer, p.model, status, absl::StrCat("; asking its fallback ", next));
  p.model = next;
  p.started = now;
  p.first_byte.reset();
  p.handle.reset();
  to_start_.push_back(
      {LayerBackend(layer), LayerCall(layer, index, next, layer_inputs_), layer, index});
  ArmStuckTimerLocked();
  return true;
}

void MoaCall::OnSlotDoneLocked(int layer, size_t index, absl::StatusOr<llm::Completion> result) {
  Proposal& p = proposals_[index];
  p.done = true;
  p.handle.reset();
  --remaining_;
  const size_t step = static_cast<size_t>(layer - 1);
  const absl::Time now = clock_->Now();
  absl::Duration took = now - p.started;
  metrics_->CallDone(step, index, telemetry::OutcomeOf(result.status()), took);
  v1::ChatEvent event;
  if (result.ok()) {
    // A layer model given the tools may answer with calls: they are advice
    // to the next step like any text, so they join its text in words.
    for (const llm::ToolCall& c : result->tool_calls) {
      absl::StrAppend(&p.text, p.text.empty() ? "" : "\n", "[would call tool ", c.name,
                      " with arguments ", c.arguments, "]");
    }
    AddUsageLocked(p.model, result->usage);
    metrics_->Tokens(step, index, result->usage.prompt_tokens, result->usage.completion_tokens);
    // The model's own time to first token, as its proposer measured it
    // (layer proposals travel whole, so no early delta marks it here).
    metrics_->CallFirstToken(step, index, result->time_to_first_token);
    if (first_tokens_ != nullptr) {
      first_tokens_->Record(BoundModelLocked(p), p.first_byte ? *p.first_byte - p.started : took);
      ArmStuckTimerLocked();  // The bounds may have moved (the first call's too).
    }
    p.took = took;
    ++answered_;
    auto* done = event.mutable_proposal_done();
    done->mutable_ref()->set_layer(layer);
    done->mutable_ref()->set_model(p.model);
    done->set_text(p.text);
    wire::ToProto(*result, p.model, done->mutable_completion());
    EmitLocked(std::move(event));
  } else {
    p.failure = result.status();
    EmitFailedLocked(layer, p.model, result.status(), "");
  }
  if (remaining_ == 0) {
    if (!AskLayerAgainLocked(layer)) LayerFinishedLocked();
  } else if (result.ok() && answered_ == rule_.min_proposals) {
    // The quorum is in: the rest get the straggler grace.
    std::vector<absl::Duration> durations;
    for (const Proposal& q : proposals_) {
      if (q.took) durations.push_back(*q.took);
    }
    absl::Duration wait = rule_.StragglerWait(std::move(durations));
    if (wait <= absl::ZeroDuration()) {
      CutStragglersLocked();
      LayerFinishedLocked();
    } else if (wait != absl::InfiniteDuration()) {
      ArmLayerTimerLocked(std::min(now + wait, layer_deadline_), &grace_timer_);
    }
  }
}

void MoaCall::OnFinalDoneLocked(absl::StatusOr<llm::Completion> result) {
  final_.running = false;
  final_.handle.reset();
  if (final_stuck_timer_ != 0) clock_->Cancel(final_stuck_timer_);
  final_stuck_timer_ = 0;
  const size_t step = options_.pipeline.layers.size();
  const size_t metrics_index = FinalMetricsIndexAt(final_.attempt);
  const absl::Time now = clock_->Now();
  metrics_->CallDone(step, metrics_index, telemetry::OutcomeOf(result.status()),
                     now - final_.call_started);
  if (!result.ok()) {
    if (auto delay = FinalRetryDelayLocked(final_.attempt, result.status(), now)) {
      // Ask again (another replica, then the fallbacks, then the aggregator
      // with backoff); when part of the answer already reached the client,
      // the next call continues it.
      std::string note;
      if (!answer_text_.empty()) {
        metrics_->AnswerResumed();
        note =
            absl::StrCat("; resuming the answer after its first ", answer_text_.size(), " bytes");
      }
      if (*delay > absl::ZeroDuration()) {
        absl::StrAppend(&note, "; asking ", FinalModelAt(final_.attempt + 1), " again in ",
                        absl::FormatDuration(absl::Trunc(*delay, absl::Milliseconds(1))));
      }
      EmitFailedLocked(LastLayer() + 1, final_.model, result.status(), note);
      ++final_.attempt;
      if (*delay == absl::ZeroDuration()) {
        StartStepLocked(final_.last, /*retry=*/true);
      } else {
        std::weak_ptr<MoaCall> weak = weak_from_this();
        final_retry_timer_ = clock_->RunAt(now + *delay, [weak] {
          if (auto self = weak.lock()) self->OnFinalRetryTimer();
        });
      }
      return;
    }
    metrics_->StepDone(step, now - final_.stage_started);
    absl::Status s = result.status();
    FinishLocked(absl::Status(
        s.code(),
        absl::StrCat("final answer by ", final_.model, " failed",
                     final_.attempt > 0 ? absl::StrCat(" (attempt ", final_.attempt + 1, ")") : "",
                     " (", WhereTimeWentLocked(), "): ", s.message())));
    return;
  }
  AddUsageLocked(final_.model, result->usage);
  metrics_->Tokens(step, metrics_index, result->usage.prompt_tokens,
                   result->usage.completion_tokens);
  metrics_->CallFirstToken(step, metrics_index, result->time_to_first_token);
  final_.usage.prompt_tokens += result->usage.prompt_tokens;
  final_.usage.completion_tokens += result->usage.completion_tokens;
  // A staircase step cut at its chunk goes on with the next step; one the
  // model ended itself ("stop") ends the answer, as does a spent max_tokens.
  const std::optional<int>& max_tokens = options_.pipeline.params.max_tokens;
  const bool budget_spent = max_tokens && final_.usage.completion_tokens >= *max_tokens;
  if (!final_.last && result->finish_reason == "length" && !budget_spent) {
    MaybeStartStepLocked();
    return;
  }
  // Proposals still running are no longer needed.
  if (!final_.layer_done) CutStragglersLocked();
  if (retries_ != nullptr) retries_->OnSuccess();
  // An answer of tool calls is the client's next step, not an answer to
  // check: its text (if any) goes out as it is, then the calls.
  std::vector<llm::ToolCall> tool_calls = std::move(result->tool_calls);
  result->tool_calls.clear();
  if (!tool_calls.empty() && options_.answer_format != nullptr && !answer_text_.empty()) {
    v1::ChatEvent text;
    text.set_answer_delta(answer_text_);
    EmitLocked(std::move(text));
  }
  // Checked before the step counts as done: an answer asked again is one
  // step that took both calls.
  if (tool_calls.empty() && options_.answer_format != nullptr && !AnswerFormatHeldLocked()) {
    return;
  }
  if (!tool_calls.empty()) {
    v1::ChatEvent event;
    wire::ToProto(tool_calls, event.mutable_answer_tool_calls()->mutable_calls());
    EmitLocked(std::move(event));
  }
  metrics_->StepDone(step, now - final_.stage_started);
  metrics_->AnswerSteps(final_.step);
  if (options_.staircase) {
    // The answer as one completion: every step's usage, timed from the
    // first step.
    result->usage = final_.usage;
    result->time_to_first_token = answer_ttft_ ? accepted_ + *answer_ttft_ - final_.stage_started
                                               : now - final_.stage_started;
    result->duration = now - final_.stage_started;
  }
  EmitSummaryLocked(*result, final_.model);
  FinishLocked(absl::OkStatus());
}

bool MoaCall::AnswerFormatHeldLocked() {
  absl::StatusOr<std::string> checked = options_.answer_format->Check(answer_text_);
  if (checked.ok()) {
    answer_text_ = *std::move(checked);
    v1::ChatEvent event;
    event.set_answer_delta(answer_text_);
    EmitLocked(std::move(event));
    return true;
  }
  if (final_.format_correction) {
    metrics_->StepDone(options_.pipeline.layers.size(), clock_->Now() - final_.stage_started);
    FinishLocked(absl::InternalError(
        absl::StrCat("response_format: the final answer by ", final_.model,
                     " did not conform after it was asked again: ", checked.status().message())));
    return false;
  }
  // Asked again once, the same model, with the answer and what is wrong
  // with it as a turn of its conversation.
  EmitFailedLocked(LastLayer() + 1, final_.model, checked.status(),
                   "; asking again with what is wrong with it");
  final_.format_correction.emplace(std::move(answer_text_),
                                   std::string(checked.status().message()));
  answer_text_.clear();
  StartStepLocked(final_.last, /*retry=*/true);
  return false;
}

void MoaCall::LayerFinishedLocked() {
  CancelTimersLocked();
  absl::Duration took = clock_->Now() - layer_started_;
  layer_durations_.push_back(took);
  metrics_->StepDone(static_cast<size_t>(current_layer_ - 1), took);
  std::vector<synthesis::Reference> refs;
  if (!StepOutputLocked(took, &refs)) return;
  layer_references_.push_back(static_cast<int>(refs.size()));
  references_ = std::move(refs);
  if (EarlyStopLocked()) return;
  AdvanceLocked();
}

bool MoaCall::EarlyStopLocked() {
  const std::optional<config::EarlyStopConfig>& early_stop = options_.pipeline.early_stop;
  // The aggregator writes the answer from the agreed one: `then: aggregate`
  // on a pipeline that ends in one (a vote has none to ask).
  const bool aggregate = early_stop &&
                         early_stop->then == config::EarlyStopConfig::Then::kAggregate &&
                         options_.pipeline.terminal == config::StepKind::kAggregate;
  if (!early_stop || options_.staircase ||
      (!aggregate && (!options_.tools.empty() || options_.answer_format != nullptr))) {
    return false;
  }
  const config::StepKind kind = options_.pipeline.steps[current_layer_ - 1].kind;
  if (kind != config::StepKind::kPropose && kind != config::StepKind::kSynthesize &&
      kind != config::StepKind::kRefine) {
    return false;  // Its output is not one answer per model.
  }
  const Agreement agreement =
      Agree(references_, early_stop->similarity, static_cast<size_t>(early_stop->min_answers));
  if (!agreement.agreed) return false;
  const synthesis::Reference& agreed = references_[agreement.answer];
  const int skipped = LastLayer() - current_layer_;
  for (size_t i = static_cast<size_t>(current_layer_); i < options_.pipeline.layers.size(); ++i) {
    skipped_.insert(skipped_.end(), slot_names_[i].begin(), slot_names_[i].end());
  }
  if (options_.pipeline.terminal == config::StepKind::kAggregate && !aggregate) {
    skipped_.push_back(options_.pipeline.aggregator);
  }
  v1::ChatEvent event;
  v1::StepApplied* applied = event.mutable_step_applied();
  applied->set_step(current_layer_);
  applied->set_kind("early_stop");
  applied->add_kept(agreed.model);
  applied->set_note(absl::StrCat(
      references_.size(), " answers agree (least alike pair ",
      absl::StrFormat("%.2f", agreement.lowest), ", needed ",
      absl::StrFormat("%.2f", early_stop->similarity), "); ",
      aggregate
          ? (skipped > 0
                 ? absl::StrCat(skipped,
                                " later step(s) skipped; the aggregator "
                                "writes the answer from ",
                                agreed.model, "'s alone")
                 : absl::StrCat("the aggregator writes the answer from ", agreed.model, "'s alone"))
          : absl::StrCat(skipped > 0 ? absl::StrCat(skipped, " later step(s) and ") : "",
                         options_.pipeline.terminal == config::StepKind::kVote ? "the vote"
                                                                               : "the aggregator",
                         " skipped; the answer is ", agreed.model, "'s")));
  EmitLocked(std::move(event));
  metrics_->EarlyStop();
  if (aggregate) {
    // The final answer's call, as after the last step, with one reference.
    references_ = {agreed};
    current_layer_ = LastLayer();
    AdvanceLocked();
    return true;
  }
  current_layer_ = LastLayer() + 1;
  AnswerWithTextLocked(agreed.text, agreed.model);
  return true;
}

void MoaCall::AnswerWithTextLocked(const std::string& text, const std::string& model) {
  answer_ttft_ = clock_->Now() - accepted_;
  metrics_->AnswerFirstToken(*answer_ttft_);
  answer_text_ = text;
  v1::ChatEvent delta;
  delta.set_answer_delta(text);
  EmitLocked(std::move(delta));
  llm::Completion answer;
  answer.finish_reason = "stop";
  EmitSummaryLocked(answer, model);
  FinishLocked(absl::OkStatus());
}

bool MoaCall::StepOutputLocked(absl::Duration took, std::vector<synthesis::Reference>* out) {
  const config::StepConfig& step = options_.pipeline.steps[current_layer_ - 1];
  auto answered = [](const Proposal& p) { return !p.skipped && !p.failure && !p.straggler; };
  switch (step.kind) {
    case config::StepKind::kRefine:
      for (size_t i = 0; i < layer_inputs_.size(); ++i) {
        if (i < proposals_.size() && answered(proposals_[i]) && !proposals_[i].text.empty()) {
          out->push_back({proposals_[i].model, proposals_[i].text});
        } else {
          out->push_back(layer_inputs_[i]);  // Not refined: the draft goes on.
        }
      }
      return true;
    case config::StepKind::kRank: {
      const Proposal& p = proposals_[0];
      const size_t n = layer_inputs_.size();
      size_t named = 0;
      std::vector<size_t> order = ReadRanking(answered(p) ? p.text : "", n, &named);
      std::string note =
          named > 0 ? absl::StrCat(p.model, " ranked ", named, " of ", n, " texts")
          : answered(p)
              ? absl::StrCat(p.model,
                             "'s answer names no text by number; the texts keep their order")
              : absl::StrCat(p.model, " did not answer; the texts keep their order");
      std::vector<synthesis::Reference> dropped;
      for (size_t i = 0; i < order.size(); ++i) {
        (i < static_cast<size_t>(step.keep) ? out : &dropped)->push_back(layer_inputs_[order[i]]);
      }
      EmitStepAppliedLocked(current_layer_, step.kind, 0, *out, dropped, std::move(note));
      return true;
    }
    case config::StepKind::kJudge: {
      const Proposal& p = proposals_[0];
      std::string note;
      if (answered(p) && !p.text.empty()) {
        analysis_ = p.text;
        note =
            absl::StrCat(p.model, "'s analysis (", p.text.size(), " bytes) goes to the next step");
      } else {
        note = absl::StrCat(p.model, " gave no analysis; the next step gets the texts alone");
      }
      EmitStepAppliedLocked(current_layer_, step.kind, 0, layer_inputs_, {}, std::move(note));
      *out = layer_inputs_;
      return true;
    }
    default:
      break;
  }
  // Propose and synthesize: the answers. Failed proposals and stragglers are
  // left out, never sent as empty.
  std::vector<std::string> errors;
  bool all_deadline = true;
  for (const Proposal& p : proposals_) {
    if (p.failure) {
      errors.push_back(absl::StrCat(p.model, ": ", absl::StatusCodeToString(p.failure->code()),
                                    ": ", p.failure->message()));
      all_deadline &= p.failure->code() == absl::StatusCode::kDeadlineExceeded;
    } else if (p.straggler) {
      errors.push_back(absl::StrCat(p.model, ": no answer after ", absl::FormatDuration(took)));
    } else {
      out->push_back({p.model, p.text});
    }
  }
  if (!out->empty()) return true;
  layer_references_.push_back(0);
  if (layer_timed_out_) {
    FinishLocked(absl::DeadlineExceededError(absl::StrCat(
        "layer ", current_layer_, " used its share of the deadline (",
        rule_.layer_deadline_share * 100, "% of the time left, ", absl::FormatDuration(took),
        ") with no answer: ", absl::StrJoin(errors, "; "))));
    return false;
  }
  absl::StatusCode code = all_deadline || clock_->Now() >= options_.deadline
                              ? absl::StatusCode::kDeadlineExceeded
                              : absl::StatusCode::kUnavailable;
  FinishLocked(absl::Status(code, absl::StrCat("every model of layer ", current_layer_,
                                               " failed: ", absl::StrJoin(errors, "; "))));
  return false;
}

void MoaCall::ApplyLocalStepLocked(std::vector<synthesis::Reference> texts) {
  const int number = current_layer_;
  const config::StepConfig& step = options_.pipeline.steps[number - 1];
  const uint64_t seed = StepSeed(seed_, number);
  std::vector<synthesis::Reference> kept, dropped;
  if (step.kind == config::StepKind::kShuffle) {
    for (size_t i : ShuffledOrder(texts.size(), seed)) kept.push_back(texts[i]);
  } else {
    std::vector<bool> keeps =
        DropoutKeeps(texts.size(), step.rate, static_cast<size_t>(step.min_keep), seed);
    for (size_t i = 0; i < texts.size(); ++i) (keeps[i] ? kept : dropped).push_back(texts[i]);
  }
  // The request's seed, which replays every step of the run (each step
  // derives its own from it).
  EmitStepAppliedLocked(number, step.kind, seed_, kept, dropped, "");
  layer_durations_.push_back(absl::ZeroDuration());
  metrics_->StepDone(static_cast<size_t>(number - 1), absl::ZeroDuration());
  layer_references_.push_back(static_cast<int>(kept.size()));
  references_ = std::move(kept);
  AdvanceLocked();
}

void MoaCall::AdvanceLocked() {
  if (current_layer_ < LastLayer()) {
    StartLayerLocked(static_cast<size_t>(current_layer_ + 1));
    return;
  }
  current_layer_ = LastLayer() + 1;
  if (options_.pipeline.terminal == config::StepKind::kVote) {
    layer_started_ = clock_->Now();
    VoteLocked();
    return;
  }
  final_.layer_done = true;
  // Where the time went counts the final answer from its first step.
  layer_started_ = final_.step > 0 ? final_.stage_started : clock_->Now();
  MaybeStartStepLocked();
}

void MoaCall::VoteLocked() {
  const VoteResult vote = Vote(references_, options_.pipeline.vote_normalize);
  std::vector<std::string> counts;
  for (const auto& [key, count] : vote.counts) {
    // Cut on a UTF-8 boundary: events are protobuf strings.
    counts.push_back(absl::StrCat(
        "\"", key.size() > 40 ? absl::StrCat(Utf8Prefix(key, 40), "...") : key, "\" ", count));
  }
  const synthesis::Reference& winner = references_[vote.winner];
  EmitStepAppliedLocked(current_layer_, config::StepKind::kVote, 0, {winner}, {},
                        absl::StrCat("votes: ", absl::StrJoin(counts, ", ")));
  metrics_->StepDone(options_.pipeline.layers.size(), absl::ZeroDuration());
  AnswerWithTextLocked(winner.text, "vote");
}

void MoaCall::EmitStepAppliedLocked(int step, config::StepKind kind, uint64_t seed,
                                    const std::vector<synthesis::Reference>& kept,
                                    const std::vector<synthesis::Reference>& dropped,
                                    std::string note) {
  v1::ChatEvent event;
  v1::StepApplied* applied = event.mutable_step_applied();
  applied->set_step(step);
  applied->set_kind(config::StepKindName(kind));
  applied->set_seed(seed);
  for (const synthesis::Reference& r : kept) applied->add_kept(r.model);
  for (const synthesis::Reference& r : dropped) applied->add_dropped(r.model);
  applied->set_note(std::move(note));
  EmitLocked(std::move(event));
}

void MoaCall::EmitSummaryLocked(const llm::Completion& answer, const std::string& model) {
  const absl::Time now = clock_->Now();
  v1::ChatEvent event;
  v1::Summary* summary = event.mutable_summary();
  double cost = 0;
  for (const auto& [m, usage] : usage_) {
    auto* mu = summary->add_usage();
    mu->set_model(m);
    mu->mutable_usage()->set_prompt_tokens(usage.prompt_tokens);
    mu->mutable_usage()->set_completion_tokens(usage.completion_tokens);
    mu->mutable_usage()->set_reasoning_tokens(usage.reasoning_tokens);
    mu->set_cost_dollars(CostOf(m, usage));
    cost += mu->cost_dollars();
  }
  summary->set_cost_dollars(cost);
  summary->set_skipped_calls(static_cast<int>(skipped_.size()));
  const auto [saved_tokens, saved_dollars] = SavedLocked();
  summary->set_saved_tokens(saved_tokens);
  summary->set_saved_dollars(saved_dollars);
  if (!skipped_.empty()) {
    all_metrics_->Saved(options_.pipeline.name, static_cast<int>(skipped_.size()), saved_dollars);
  }
  for (absl::Duration d : layer_durations_) {
    wire::ToProto(d, summary->add_layer_durations());
  }
  for (int n : layer_references_) summary->add_layer_references(n);
  wire::ToProto(answer_ttft_.value_or(now - accepted_), summary->mutable_time_to_first_token());
  wire::ToProto(now - accepted_, summary->mutable_total());
  summary->set_finish_reason(answer.finish_reason);
  summary->set_answer_steps(final_.step);
  wire::ToProto(answer, model, summary->mutable_answer());
  EmitLocked(std::move(event));
}

double MoaCall::CostOf(const std::string& model, const llm::Usage& usage) const {
  if (config_ == nullptr) return 0;
  const config::ModelConfig* m = config_->FindModel(model.substr(0, model.find('#')));
  if (m == nullptr || !m->price) return 0;
  return m->price->Cost(usage.prompt_tokens, usage.completion_tokens);
}

std::pair<int64_t, double> MoaCall::SavedLocked() const {
  if (calls_ended_well_ == 0) return {0, 0};
  llm::Usage mean;
  mean.prompt_tokens = call_usage_.prompt_tokens / calls_ended_well_;
  mean.completion_tokens = call_usage_.completion_tokens / calls_ended_well_;
  int64_t tokens = 0;
  double dollars = 0;
  for (const std::string& model : skipped_) {
    tokens += mean.prompt_tokens + mean.completion_tokens;
    dollars += CostOf(model, mean);
  }
  return {tokens, dollars};
}

void MoaCall::AddUsageLocked(const std::string& model, const llm::Usage& usage, bool call) {
  if (call) {
    ++calls_ended_well_;
    call_usage_.prompt_tokens += usage.prompt_tokens;
    call_usage_.completion_tokens += usage.completion_tokens;
  }
  for (auto& [m, u] : usage_) {
    if (m == model) {
      u.prompt_tokens += usage.prompt_tokens;
      u.completion_tokens += usage.completion_tokens;
      u.reasoning_tokens += usage.reasoning_tokens;
      return;
    }
  }
  usage_.emplace_back(model, usage);
}

void MoaCall::Cancel(absl::Status reason) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    cancelled_ = true;
    FinishLocked(std::move(reason));
  }
  Act();
  Deliver();
}

void MoaCall::FinishLocked(absl::Status status) {
  if (finished_) return;
  finished_ = true;
  CancelTimersLocked();
  if (final_retry_timer_ != 0) clock_->Cancel(final_retry_timer_);
  if (final_stuck_timer_ != 0) clock_->Cancel(final_stuck_timer_);
  final_retry_timer_ = final_stuck_timer_ = 0;
  const absl::Time now = clock_->Now();
  metrics_->RequestFinished(telemetry::OutcomeAt(status, options_.deadline, now), now - accepted_);
  // Whatever still runs ends now: every child on Cancel(), and with
  // staircase streaming the answer's step when the layer under it failed.
  for (Proposal& p : proposals_) {
    if (p.handle) to_cancel_.push_back(std::move(p.handle));
  }
  if (final_.handle) to_cancel_.push_back(std::move(final_.handle));
  finish_status_ = std::move(status);
  outbox_.Close();
}

void MoaCall::EmitLocked(v1::ChatEvent event) {
  std::vector<v1::ChatEvent> one;
  one.push_back(std::move(event));
  outbox_.Push(std::move(one));
}

void MoaCall::RecordFinish(const absl::Status& status) {
  // Every call that ended well cost its tokens, whether the request
  // succeeded or not. Once finished, usage_ no longer changes.
  std::vector<std::pair<std::string, llm::Usage>> usage;
  int steps;
  {
    absl::MutexLock lock(&mu_);
    usage = usage_;
    steps = final_.step;
  }
  Spending spent;
  int64_t prompt = 0, completion = 0;
  for (const auto& [model, u] : usage) {
    const double cost = CostOf(model, u);
    spent.dollars += cost;
    prompt += u.prompt_tokens;
    completion += u.completion_tokens;
    if (cost > 0) {
      const std::string name = model.substr(0, model.find('#'));
      all_metrics_->AddCost(name, options_.key_name, cost);
      spent.dollars_by_model[name] += cost;
    }
  }
  spent.tokens = prompt + completion;
  if (options_.on_spent) options_.on_spent(spent);
  const absl::Time now = clock_->Now();
  LogFields fields = {
      {"request_id", options_.trace.request_id},
      {"trace_id", options_.trace.trace_id},
      {"pipeline", options_.pipeline.name},
      {"key", options_.key_name},
      {"outcome",
       std::string(telemetry::OutcomeName(telemetry::OutcomeAt(status, options_.deadline, now)))},
      {"duration_ms", absl::StrCat(absl::ToInt64Milliseconds(now - accepted_))},
      {"answer_steps", absl::StrCat(steps)},
      {"prompt_tokens", absl::StrCat(prompt)},
      {"completion_tokens", absl::StrCat(completion)},
      {"cost_dollars", absl::StrCat(spent.dollars)}};
  if (!options_.end_user.empty()) fields.emplace_back("end_user", options_.end_user);
  if (!options_.pipeline.preset.empty()) fields.emplace_back("preset", options_.pipeline.preset);
  if (options_.route) {
    fields.emplace_back("route", options_.route->route());
    fields.emplace_back("route_by", options_.route->by());
    fields.emplace_back("route_reason", options_.route->reason());
  }
  LogFor(status.ok() ? LogLevel::kInfo : LogLevel::kWarning, "moa-orchestrator", fields,
         status.ok() ? "request answered" : absl::StrCat("request failed: ", status.ToString()));
}

void MoaCall::Deliver() {
  while (true) {
    std::vector<v1::ChatEvent>* batch = nullptr;
    absl::Status finish;
    {
      absl::MutexLock lock(&mu_);
      switch (outbox_.Next()) {
        case Outbox::Step::kWrite:
          batch = &outbox_.in_flight();
          break;
        case Outbox::Step::kFinish:
          finish = finish_status_;
          break;
        case Outbox::Step::kNone:
          return;  // Nothing to do, or another thread is delivering.
      }
    }
    if (batch == nullptr) {
      RecordFinish(finish);
      sink_->OnFinish(std::move(finish));
      return;
    }
    // The batch in flight is this thread's until WriteDone.
    for (v1::ChatEvent& e : *batch) sink_->OnEvent(std::move(e));
    absl::MutexLock lock(&mu_);
    outbox_.WriteDone(true);
  }
}

}  // namespace moa::orchestrator
