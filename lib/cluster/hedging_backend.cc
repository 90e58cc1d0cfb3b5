#include "lib/cluster/hedging_backend.h"

#include <algorithm>
#include <vector>

namespace moa::cluster {

// One call and its possible hedge. Attempt 0 is the first call, attempt 1
// the hedge. The first attempt with text or a successful end wins; only the
// winner's events reach the observer, so they stay in order and never
// concurrent. A failure before any text waits for the other attempt if it
// still runs.
class HedgingBackend::HedgedCall final : public llm::CallHandle,
                                         public std::enable_shared_from_this<HedgedCall> {
 public:
  HedgedCall(HedgingBackend* backend, GenerationCall call,
             std::shared_ptr<GenerationObserver> observer)
      : backend_(backend),
        call_(std::move(call)),
        observer_(std::move(observer)),
        started_(backend->clock_->Now()) {}

  void Begin() {
    StartAttempt(0);
    const absl::Duration delay = backend_->HedgeDelay(call_.model);
    if (delay == absl::InfiniteDuration()) return;
    std::weak_ptr<HedgedCall> weak = weak_from_this();
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    timer_ = backend_->clock_->RunAt(started_ + delay, [weak] {
      if (auto self = weak.lock()) self->MaybeHedge();
    });
  }

  void Cancel() override {
    std::shared_ptr<llm::CallHandle> handles[2];
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      // No hedge after a cancel; the timer goes now, not when it fires.
      if (timer_ != 0) backend_->clock_->Cancel(timer_);
      timer_ = 0;
      handles[0] = attempts_[0].handle;
      handles[1] = attempts_[1].handle;
    }
    for (auto& h : handles) {
      if (h) h->Cancel();
    }
  }

 private:
  class AttemptObserver final : public GenerationObserver {
   public:
    AttemptObserver(std::shared_ptr<HedgedCall> call, int attempt)
        : call_(std::move(call)), attempt_(attempt) {}
    void OnDelta(absl::string_view text) override { call_->OnDelta(attempt_, text); }
    void OnDone(absl::StatusOr<llm::Completion> result) override {
      call_->OnDone(attempt_, std::move(result));
    }

   private:
    const std::shared_ptr<HedgedCall> call_;
    const int attempt_;
  };

  struct Attempt {
    std::shared_ptr<llm::CallHandle> handle;
    bool started = false;
    bool done = false;
    absl::Status failure;
  };

  void StartAttempt(int i) {
    {
      absl::MutexLock lock(&mu_);
      attempts_[i].started = true;
    }
    auto handle =
        backend_->inner_->Start(call_, std::make_shared<AttemptObserver>(shared_from_this(), i));
    bool cancel_now;
    {
      absl::MutexLock lock(&mu_);
      attempts_[i].handle = handle;
      // Lost the race already, or the caller cancelled meanwhile.
      cancel_now = cancelled_ || (winner_ != -1 && winner_ != i);
    }
    if (cancel_now) handle->Cancel();
  }

  void MaybeHedge() {
    {
      absl::MutexLock lock(&mu_);
      timer_ = 0;
      if (finished_ || cancelled_ || winner_ != -1 || attempts_[0].done) return;
    }
    if (!backend_->TakeHedgeToken()) return;
    if (backend_->on_hedge_) backend_->on_hedge_(call_.model, false);
    StartAttempt(1);
  }

  // Under mu_: makes `i` the winner if there is none; returns whether `i`
  // is the winner, and the loser's handle to cancel.
  bool ClaimLocked(int i, std::shared_ptr<llm::CallHandle>* loser)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (winner_ == -1) {
      winner_ = i;
      *loser = attempts_[1 - i].handle;
      if (timer_ != 0) backend_->clock_->Cancel(timer_);
      timer_ = 0;
      first_byte_ = backend_->clock_->Now() - started_;
    }
    return winner_ == i;
  }

  void OnDelta(int i, absl::string_view text) {
    std::shared_ptr<llm::CallHandle> loser;
    bool won_now = false;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      won_now = winner_ == -1;
      if (!ClaimLocked(i, &loser)) return;
    }
    if (won_now) Settled(i, loser);
    observer_->OnDelta(text);
  }

  void OnDone(int i, absl::StatusOr<llm::Completion> result) {
    std::shared_ptr<llm::CallHandle> loser;
    bool deliver = false, won_now = false;
    absl::StatusOr<llm::Completion> out = std::move(result);
    {
      absl::MutexLock lock(&mu_);
      attempts_[i].done = true;
      if (finished_) return;
      if (winner_ == i) {
        deliver = true;
      } else if (winner_ == -1 && out.ok()) {
        won_now = true;
        ClaimLocked(i, &loser);
        deliver = true;
      } else if (winner_ == -1) {
        attempts_[i].failure = out.status();
        const Attempt& other = attempts_[1 - i];
        if (!(other.started && !other.done)) {
          // Nothing else runs: the call fails with this attempt's error.
          deliver = true;
          if (timer_ != 0) backend_->clock_->Cancel(timer_);
          timer_ = 0;
        }
      }
      if (deliver) finished_ = true;
    }
    if (won_now) Settled(i, loser);
    if (deliver) observer_->OnDone(std::move(out));
  }

  // After a winner is known, outside the lock.
  void Settled(int winner, const std::shared_ptr<llm::CallHandle>& loser) {
    if (loser) loser->Cancel();
    backend_->RecordFirstByte(call_.model, first_byte_);
    if (winner == 1 && backend_->on_hedge_) backend_->on_hedge_(call_.model, true);
  }

  HedgingBackend* const backend_;
  const GenerationCall call_;
  const std::shared_ptr<GenerationObserver> observer_;
  const absl::Time started_;

  absl::Mutex mu_;
  Attempt attempts_[2] ABSL_GUARDED_BY(mu_);
  int winner_ ABSL_GUARDED_BY(mu_) = -1;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  Clock::TimerId timer_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration first_byte_ ABSL_GUARDED_BY(mu_);
};

HedgingBackend::HedgingBackend(GenerationBackend* inner, HedgeOptions options, const Clock* clock,
                               OnHedge on_hedge)
    : inner_(inner),
      options_(options),
      clock_(clock),
      on_hedge_(std::move(on_hedge)),
      tokens_(options.budget_burst) {}

std::shared_ptr<llm::CallHandle> HedgingBackend::Start(
    GenerationCall call, std::shared_ptr<GenerationObserver> observer) {
  {
    absl::MutexLock lock(&mu_);
    tokens_ = std::min(options_.budget_burst, tokens_ + options_.budget_ratio);
  }
  auto hedged = std::make_shared<HedgedCall>(this, std::move(call), std::move(observer));
  hedged->Begin();
  return hedged;
}

absl::Duration HedgingBackend::HedgeDelay(const std::string& model) {
  if (options_.hedge_after > absl::ZeroDuration()) {
    return std::max(options_.hedge_after, options_.min_delay);
  }
  const absl::Duration d = Percentile(model, options_.percentile, options_.min_samples);
  return d == absl::InfiniteDuration() ? d : std::max(d, options_.min_delay);
}

HedgingBackend::FirstByte HedgingBackend::RecentFirstByte(const std::string& model) {
  FirstByte f;
  {
    absl::MutexLock lock(&mu_);
    auto it = samples_.find(model);
    f.samples = it == samples_.end() ? 0 : static_cast<int>(it->second.size());
  }
  if (f.samples == 0) return f;
  f.p50 = Percentile(model, 0.5, 1);
  f.p95 = Percentile(model, 0.95, 1);
  // A sample may have gone between the reads only if every one did; keep zero.
  if (f.p50 == absl::InfiniteDuration()) f.p50 = absl::ZeroDuration();
  if (f.p95 == absl::InfiniteDuration()) f.p95 = absl::ZeroDuration();
  return f;
}

absl::Duration HedgingBackend::Percentile(const std::string& model, double share, int min_samples) {
  std::vector<absl::Duration> recent;
  {
    absl::MutexLock lock(&mu_);
    auto it = samples_.find(model);
    if (it == samples_.end() || it->second.empty() ||
        static_cast<int>(it->second.size()) < min_samples) {
      return absl::InfiniteDuration();
    }
    recent.assign(it->second.begin(), it->second.end());
  }
  const size_t k =
      std::min(recent.size() - 1, static_cast<size_t>(share * static_cast<double>(recent.size())));
  std::nth_element(recent.begin(), recent.begin() + static_cast<std::ptrdiff_t>(k), recent.end());
  return recent[k];
}

void HedgingBackend::RecordFirstByte(const std::string& model, absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto& ring = samples_[model];
  ring.push_back(d);
  if (ring.size() > 200) ring.pop_front();
}

bool HedgingBackend::TakeHedgeToken() {
  absl::MutexLock lock(&mu_);
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace moa::cluster
