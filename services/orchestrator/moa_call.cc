#include "services/orchestrator/moa_call.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/contract/contract.h"
#include "lib/llm/http_status.h"

namespace moa::orchestrator {

// Forwards one child call's events to the MoaCall, tagged with its place.
class MoaCall::ChildObserver final : public cluster::GenerationObserver {
 public:
  ChildObserver(std::shared_ptr<MoaCall> call, int layer, size_t index)
      : call_(std::move(call)), layer_(layer), index_(index) {}
  void OnDelta(absl::string_view text) override { call_->OnChildDelta(layer_, index_, text); }
  void OnDone(absl::StatusOr<v1::Completion> result) override {
    call_->OnChildDone(layer_, index_, std::move(result));
  }

 private:
  std::shared_ptr<MoaCall> call_;
  const int layer_;
  const size_t index_;
};

MoaCall::MoaCall(Options options, MoaBackends backends, telemetry::OrchestratorMetrics* metrics,
                 std::shared_ptr<MoaCallSink> sink)
    : options_(std::move(options)),
      backends_(backends),
      metrics_(metrics),
      sink_(std::move(sink)),
      accepted_(absl::Now()) {}

std::shared_ptr<MoaCall> MoaCall::Start(Options options, MoaBackends backends,
                                        telemetry::OrchestratorMetrics* metrics,
                                        std::shared_ptr<MoaCallSink> sink) {
  auto call = std::make_shared<MoaCall>(std::move(options), backends, metrics, std::move(sink));
  call->Begin();
  return call;
}

void MoaCall::Begin() {
  metrics_->RequestStarted(options_.pipeline.name);
  {
    absl::MutexLock lock(&mu_);
    v1::ChatEvent event;
    v1::Accepted* accepted = event.mutable_accepted();
    accepted->set_pipeline(options_.pipeline.name);
    for (const auto& layer : options_.pipeline.layers) {
      auto* l = accepted->add_layers();
      for (const auto& m : layer) l->add_models(m);
    }
    accepted->set_aggregator(options_.pipeline.aggregator);
    EmitLocked(std::move(event));
    StartLayerLocked(1);
  }
  LaunchPending();
  Deliver();
}

void MoaCall::LaunchPending() {
  while (true) {
    std::vector<PendingStart> starts;
    {
      absl::MutexLock lock(&mu_);
      starts.swap(to_start_);
    }
    if (starts.empty()) return;
    for (PendingStart& s : starts) {
      auto handle = s.backend->Start(
          std::move(s.call), std::make_shared<ChildObserver>(shared_from_this(), s.layer, s.index));
      bool cancel_now;
      {
        absl::MutexLock lock(&mu_);
        cancel_now = cancelled_;
        if (!cancel_now) children_.push_back(handle);
      }
      if (cancel_now) handle->Cancel();
    }
  }
}

std::string MoaCall::LayerLabel(int layer) const {
  return layer > static_cast<int>(options_.pipeline.layers.size()) ? "final"
                                                                   : std::to_string(layer);
}

void MoaCall::StartLayerLocked(size_t layer) {
  current_layer_ = static_cast<int>(layer);
  layer_started_ = absl::Now();
  const std::vector<std::string>& models = options_.pipeline.layers[layer - 1];
  proposals_.assign(models.size(), Proposal{});
  remaining_ = models.size();
  children_.clear();
  // Layer 1 sees the conversation as is; later layers see the previous
  // layer's answers (references replace, never accumulate).
  std::vector<synthesis::Reference> refs = std::move(references_);
  references_.clear();
  for (size_t i = 0; i < models.size(); ++i) {
    proposals_[i].model = models[i];
    proposals_[i].started = layer_started_;
    v1::ChatEvent event;
    auto* ref = event.mutable_proposal_started()->mutable_ref();
    ref->set_layer(static_cast<int>(layer));
    ref->set_model(models[i]);
    EmitLocked(std::move(event));
  }
  for (size_t i = 0; i < models.size(); ++i) {
    cluster::GenerationCall call;
    call.model = models[i];
    call.messages = options_.conversation;
    call.references = refs;
    call.params = options_.pipeline.params;
    call.deadline = options_.deadline;
    // Proposals nobody watches travel whole, one message instead of one per
    // token; only their full text is used.
    call.whole_text = !options_.stream_proposals;
    cluster::GenerationBackend* backend = layer == 1 ? backends_.proposers : backends_.aggregator;
    to_start_.push_back({backend, std::move(call), static_cast<int>(layer), i});
  }
}

void MoaCall::StartFinalLocked() {
  current_layer_ = static_cast<int>(options_.pipeline.layers.size()) + 1;
  layer_started_ = absl::Now();
  proposals_.assign(1, Proposal{});
  proposals_[0].model = options_.pipeline.aggregator;
  proposals_[0].started = layer_started_;
  remaining_ = 1;
  children_.clear();
  cluster::GenerationCall call;
  call.model = options_.pipeline.aggregator;
  call.messages = options_.conversation;
  call.references = std::move(references_);
  references_.clear();
  call.params = options_.pipeline.params;
  call.deadline = options_.deadline;
  to_start_.push_back({backends_.aggregator, std::move(call), current_layer_, 0});
}

void MoaCall::OnChildDelta(int layer, size_t index, absl::string_view text) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || layer != current_layer_ || index >= proposals_.size()) return;
    Proposal& p = proposals_[index];
    bool is_final = layer > static_cast<int>(options_.pipeline.layers.size());
    v1::ChatEvent event;
    if (is_final) {
      if (!answer_ttft_) {
        answer_ttft_ = absl::Now() - accepted_;
        metrics_->AnswerFirstToken(options_.pipeline.name, *answer_ttft_);
      }
      event.set_answer_delta(std::string(text));
      EmitLocked(std::move(event));
    } else {
      p.text.append(text.data(), text.size());
      if (options_.stream_proposals) {
        auto* d = event.mutable_proposal_delta();
        d->mutable_ref()->set_layer(layer);
        d->mutable_ref()->set_model(p.model);
        d->set_text(std::string(text));
        EmitLocked(std::move(event));
      }
    }
  }
  Deliver();
}

void MoaCall::OnChildDone(int layer, size_t index, absl::StatusOr<v1::Completion> result) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || layer != current_layer_ || index >= proposals_.size()) return;
    Proposal& p = proposals_[index];
    if (p.done) return;
    p.done = true;
    --remaining_;
    bool is_final = layer > static_cast<int>(options_.pipeline.layers.size());
    absl::Duration took = absl::Now() - p.started;
    metrics_->ProposalDone(options_.pipeline.name, LayerLabel(layer), p.model,
                           is_final ? "aggregator" : "proposer", llm::OutcomeLabel(result.status()),
                           took);
    if (result.ok()) {
      AddUsageLocked(p.model, result->usage());
      // The model's own time to first token, as its proposer measured it
      // (layer proposals travel whole, so no early delta marks it here).
      metrics_->ProposalFirstToken(options_.pipeline.name, LayerLabel(layer), p.model,
                                   is_final ? "aggregator" : "proposer",
                                   contract::FromProto(result->time_to_first_token()));
    }
    if (is_final) {
      metrics_->LayerDone(options_.pipeline.name, "final", took);
      if (!result.ok()) {
        absl::Status s = result.status();
        FinishLocked(absl::Status(
            s.code(), absl::StrCat("final answer by ", p.model, " failed: ", s.message())));
      } else {
        v1::ChatEvent event;
        v1::Summary* summary = event.mutable_summary();
        for (const auto& [model, usage] : usage_) {
          auto* mu = summary->add_usage();
          mu->set_model(model);
          *mu->mutable_usage() = usage;
        }
        for (absl::Duration d : layer_durations_) {
          contract::ToProto(d, summary->add_layer_durations());
        }
        contract::ToProto(answer_ttft_.value_or(absl::Now() - accepted_),
                          summary->mutable_time_to_first_token());
        contract::ToProto(absl::Now() - accepted_, summary->mutable_total());
        summary->set_finish_reason(result->finish_reason());
        *summary->mutable_answer() = *result;
        EmitLocked(std::move(event));
        FinishLocked(absl::OkStatus());
      }
    } else {
      v1::ChatEvent event;
      if (result.ok()) {
        auto* done = event.mutable_proposal_done();
        done->mutable_ref()->set_layer(layer);
        done->mutable_ref()->set_model(p.model);
        done->set_text(p.text);
        *done->mutable_completion() = *result;
      } else {
        p.failure = result.status();
        auto* failed = event.mutable_proposal_failed();
        failed->mutable_ref()->set_layer(layer);
        failed->mutable_ref()->set_model(p.model);
        failed->mutable_status()->set_code(static_cast<int>(result.status().code()));
        failed->mutable_status()->set_message(std::string(result.status().message()));
      }
      EmitLocked(std::move(event));
      if (remaining_ == 0) LayerFinishedLocked();
    }
  }
  LaunchPending();
  Deliver();
}

void MoaCall::LayerFinishedLocked() {
  absl::Duration took = absl::Now() - layer_started_;
  layer_durations_.push_back(took);
  metrics_->LayerDone(options_.pipeline.name, LayerLabel(current_layer_), took);
  // A failed proposer is left out of the references, never sent as empty.
  std::vector<synthesis::Reference> refs;
  std::vector<std::string> errors;
  bool all_deadline = true;
  for (const Proposal& p : proposals_) {
    if (p.failure) {
      errors.push_back(absl::StrCat(p.model, ": ", absl::StatusCodeToString(p.failure->code()),
                                    ": ", p.failure->message()));
      all_deadline &= p.failure->code() == absl::StatusCode::kDeadlineExceeded;
    } else {
      refs.push_back({p.model, p.text});
    }
  }
  if (refs.empty()) {
    absl::StatusCode code = all_deadline || absl::Now() >= options_.deadline
                                ? absl::StatusCode::kDeadlineExceeded
                                : absl::StatusCode::kUnavailable;
    FinishLocked(absl::Status(code, absl::StrCat("every model of layer ", current_layer_,
                                                 " failed: ", absl::StrJoin(errors, "; "))));
    return;
  }
  references_ = std::move(refs);
  if (current_layer_ < static_cast<int>(options_.pipeline.layers.size())) {
    StartLayerLocked(current_layer_ + 1);
  } else {
    StartFinalLocked();
  }
}

void MoaCall::AddUsageLocked(const std::string& model, const v1::Usage& usage) {
  metrics_->Tokens(options_.pipeline.name, model, usage.prompt_tokens(), usage.completion_tokens());
  for (auto& [m, u] : usage_) {
    if (m == model) {
      u.set_prompt_tokens(u.prompt_tokens() + usage.prompt_tokens());
      u.set_completion_tokens(u.completion_tokens() + usage.completion_tokens());
      return;
    }
  }
  usage_.emplace_back(model, usage);
}

void MoaCall::Cancel() {
  std::vector<std::shared_ptr<llm::CallHandle>> children;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    cancelled_ = true;
    children = children_;
    FinishLocked(absl::CancelledError("the request was cancelled"));
  }
  for (auto& child : children) child->Cancel();
  Deliver();
}

void MoaCall::FinishLocked(absl::Status status) {
  if (finished_) return;
  finished_ = true;
  absl::string_view outcome = llm::OutcomeLabelAt(status, options_.deadline, absl::Now());
  metrics_->RequestFinished(options_.pipeline.name, outcome, absl::Now() - accepted_);
  // Only Cancel() can finish while children run, and it cancels them; on
  // every other path the last child has already ended.
  finish_status_ = std::move(status);
}

void MoaCall::EmitLocked(v1::ChatEvent event) { outbox_.push_back(std::move(event)); }

void MoaCall::Deliver() {
  while (true) {
    std::deque<v1::ChatEvent> batch;
    std::optional<absl::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (delivering_) return;  // The delivering thread will pick these up.
      if (outbox_.empty() && (!finish_status_ || finish_delivered_)) return;
      delivering_ = true;
      batch.swap(outbox_);
      if (finish_status_ && !finish_delivered_) {
        finish = finish_status_;
        finish_delivered_ = true;
      }
    }
    for (v1::ChatEvent& e : batch) sink_->OnEvent(std::move(e));
    if (finish) sink_->OnFinish(*finish);
    {
      absl::MutexLock lock(&mu_);
      delivering_ = false;
    }
  }
}

}  // namespace moa::orchestrator
