#include "lib/llm/curl_llm_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lib/base/redact.h"
#include "lib/base/retry_after.h"
#include "lib/llm/http_status.h"
#include "lib/llm/openai_json.h"
#include "lib/llm/sse_parser.h"

namespace moa::llm {
namespace {

constexpr size_t kMaxErrorBodyBytes = 64 << 10;

void GlobalCurlInit() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)done;
}

std::string ChatCompletionsUrl(const std::string& base_url) {
  std::string url = base_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url + "/chat/completions";
}

std::string Secs(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), "s"); }

// State the event thread shares with threads that cancel calls.
struct SharedQueue {
  absl::Mutex mu;
  CURLM* multi = nullptr;
  bool closed ABSL_GUARDED_BY(mu) = false;
  std::vector<std::shared_ptr<class Transfer>> cancels ABSL_GUARDED_BY(mu);
};

// One call: its request, its curl easy handle, and the state of the current
// attempt. Everything except `cancel_requested` belongs to the event thread.
class Transfer : public CallHandle, public std::enable_shared_from_this<Transfer> {
 public:
  Transfer(std::shared_ptr<SharedQueue> queue, std::shared_ptr<StreamObserver> observer,
           const Clock* clock)
      : queue_(std::move(queue)), observer(std::move(observer)), clock(clock) {}

  ~Transfer() override {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (headers != nullptr) curl_slist_free_all(headers);
  }

  void Cancel() override {
    if (cancel_requested.exchange(true)) return;
    absl::MutexLock lock(&queue_->mu);
    if (queue_->closed) return;
    queue_->cancels.push_back(shared_from_this());
    curl_multi_wakeup(queue_->multi);
  }

  void ResetAttempt() {
    parser.Reset();
    http_code = 0;
    error_body.clear();
    retry_after.reset();
    failure.reset();
    done_marker = false;
    finish_reason.reset();
    usage = Usage{};
    errbuf[0] = '\0';
  }

  std::shared_ptr<SharedQueue> queue_;
  std::atomic<bool> cancel_requested{false};
  std::shared_ptr<StreamObserver> observer;
  const Clock* const clock;  // The client's (UpstreamOptions::clock).

  std::string body;
  absl::Time started;
  absl::Time deadline;
  int attempt = 1;
  bool delta_sent = false;
  bool finished = false;
  absl::Duration time_to_first_token;

  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  absl::Time attempt_started;
  absl::Time last_data;
  absl::Time retry_due;

  SseParser parser;
  long http_code = 0;
  std::string error_body;
  std::optional<absl::Duration> retry_after;
  std::optional<absl::Status> failure;  // Set while parsing; aborts the transfer.
  bool done_marker = false;
  std::optional<std::string> finish_reason;
  Usage usage;
  char errbuf[CURL_ERROR_SIZE] = {0};
};

}  // namespace

class CurlLlmClient::Impl {
 public:
  explicit Impl(UpstreamOptions options)
      : options_(std::move(options)),
        url_(ChatCompletionsUrl(options_.base_url)),
        queue_(std::make_shared<SharedQueue>()),
        rng_(std::random_device{}()) {
    GlobalCurlInit();
    queue_->multi = curl_multi_init();
    thread_ = std::thread([this] { Loop(); });
  }

  ~Impl() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    thread_.join();
    {
      absl::MutexLock lock(&queue_->mu);
      queue_->closed = true;
    }
    curl_multi_cleanup(queue_->multi);
  }

  std::shared_ptr<CallHandle> Start(ChatRequest request, std::shared_ptr<StreamObserver> observer) {
    auto t = std::make_shared<Transfer>(queue_, std::move(observer), options_.clock);
    t->started = options_.clock->Now();
    t->deadline = std::min(request.deadline, t->started + options_.total_timeout);
    t->body = BuildChatCompletionBody(options_.model, request);
    {
      absl::MutexLock lock(&mu_);
      starts_.push_back(t);
    }
    Wake();
    return t;
  }

 private:
  void Wake() { curl_multi_wakeup(queue_->multi); }

  void Loop() {
    while (true) {
      std::vector<std::shared_ptr<Transfer>> starts, cancels;
      bool stopping;
      {
        absl::MutexLock lock(&mu_);
        starts.swap(starts_);
        stopping = stopping_;
      }
      {
        absl::MutexLock lock(&queue_->mu);
        cancels.swap(queue_->cancels);
      }
      if (stopping) {
        for (auto& t : starts) Finish(*t, absl::CancelledError("upstream client shutting down"));
        break;
      }
      for (auto& t : starts) {
        if (t->cancel_requested) {
          Finish(*t, absl::CancelledError("request cancelled by the caller"));
        } else {
          BeginAttempt(t);
        }
      }
      for (auto& t : cancels) Finish(*t, absl::CancelledError("request cancelled by the caller"));

      int running = 0;
      curl_multi_perform(queue_->multi, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(queue_->multi, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        auto it = active_.find(msg->easy_handle);
        if (it == active_.end()) continue;
        std::shared_ptr<Transfer> t = it->second;
        OnTransferDone(t, msg->data.result);
      }
      absl::Time next_wake = CheckTimers(options_.clock->Now());
      int timeout_ms = static_cast<int>(std::clamp<int64_t>(
          absl::ToInt64Milliseconds(next_wake - options_.clock->Now()) + 1, 0, 1000));
      curl_multi_poll(queue_->multi, nullptr, 0, timeout_ms, nullptr);
    }
    // Shutting down: every call still open ends CANCELLED.
    std::vector<std::shared_ptr<Transfer>> open;
    for (auto& [easy, t] : active_) open.push_back(t);
    for (auto& t : waiting_) open.push_back(t);
    for (auto& t : open) Finish(*t, absl::CancelledError("upstream client shutting down"));
  }

  void BeginAttempt(const std::shared_ptr<Transfer>& t) {
    t->ResetAttempt();
    if (t->easy == nullptr) {
      t->easy = curl_easy_init();
      if (t->easy == nullptr) {
        Finish(*t, absl::ResourceExhaustedError("could not allocate an upstream transfer"));
        return;
      }
      ConfigureEasy(*t);
    }
    t->attempt_started = options_.clock->Now();
    t->last_data = t->attempt_started;
    active_[t->easy] = t;
    if (CURLMcode rc = curl_multi_add_handle(queue_->multi, t->easy); rc != CURLM_OK) {
      active_.erase(t->easy);
      Finish(*t, absl::UnavailableError(
                     absl::StrCat("could not start upstream transfer: ", curl_multi_strerror(rc))));
    }
  }

  void ConfigureEasy(Transfer& t) {
    CURL* e = t.easy;
    t.headers = curl_slist_append(t.headers, "Content-Type: application/json");
    t.headers = curl_slist_append(t.headers, "Accept: text/event-stream");
    t.headers = curl_slist_append(t.headers, "Expect:");
    if (!options_.api_key.empty()) {
      std::string auth = absl::StrCat("Authorization: Bearer ", options_.api_key);
      t.headers = curl_slist_append(t.headers, auth.c_str());
    }
    curl_easy_setopt(e, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body.size()));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::WriteCallback);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::HeaderCallback);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
    curl_easy_setopt(e, CURLOPT_USERAGENT, "moa-cluster/0.1");
  }

  static size_t HeaderCallback(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    absl::string_view line(data, size * n);
    if (absl::StartsWithIgnoreCase(line, "HTTP/")) {
      t->retry_after.reset();  // A new response (e.g. after a redirect).
    } else if (absl::StartsWithIgnoreCase(line, "retry-after:")) {
      t->retry_after = ParseRetryAfter(line.substr(12), t->clock->Now());
    }
    return size * n;
  }

  static size_t WriteCallback(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    absl::string_view bytes(data, size * n);
    t->last_data = t->clock->Now();
    if (t->http_code == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->http_code);
    if (t->http_code < 200 || t->http_code >= 300) {
      size_t room = kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, t->error_body.size());
      t->error_body.append(bytes.data(), std::min(room, bytes.size()));
      return bytes.size();
    }
    bool ok = t->parser.Feed(bytes, [t](const SseEvent& event) { HandleEvent(*t, event); });
    if (!ok && !t->failure) {
      t->failure = absl::InternalError("upstream sent an over-long stream line or event");
    }
    return t->failure ? 0 : bytes.size();  // 0 aborts the transfer.
  }

  static void HandleEvent(Transfer& t, const SseEvent& event) {
    if (t.failure || t.finished) return;
    if (event.data == "[DONE]") {
      t.done_marker = true;
      return;
    }
    absl::StatusOr<StreamChunk> chunk = ParseStreamChunk(event.data);
    if (!chunk.ok()) {
      t.failure = chunk.status();
      return;
    }
    if (chunk->error) {
      t.failure = *chunk->error;
      return;
    }
    if (!chunk->delta.empty()) {
      if (!t.delta_sent) {
        t.delta_sent = true;
        t.time_to_first_token = t.clock->Now() - t.started;
      }
      t.observer->OnDelta(chunk->delta);
    }
    if (chunk->finish_reason) t.finish_reason = chunk->finish_reason;
    if (chunk->usage) t.usage = *chunk->usage;
  }

  void OnTransferDone(const std::shared_ptr<Transfer>& t, CURLcode rc) {
    absl::Status status;
    if (t->failure) {
      status = *t->failure;
    } else if (rc != CURLE_OK) {
      status = StatusFromCurl(rc, t->errbuf);
    } else if (t->http_code < 200 || t->http_code >= 300) {
      status = StatusFromHttp(static_cast<int>(t->http_code), ErrorMessageFromBody(t->error_body));
      if (t->retry_after) {
        status = absl::Status(status.code(), absl::StrCat(status.message(), " (retry after ",
                                                          Secs(*t->retry_after), ")"));
        SetRetryAfter(status, *t->retry_after);
      }
    } else if (!t->done_marker && !t->finish_reason) {
      status = absl::UnavailableError("upstream closed the stream before it finished");
    } else {
      Completion c;
      c.finish_reason = t->finish_reason.value_or("stop");
      c.usage = t->usage;
      c.duration = options_.clock->Now() - t->started;
      c.time_to_first_token = t->delta_sent ? t->time_to_first_token : c.duration;
      c.attempts = t->attempt;
      Finish(*t, std::move(c));
      return;
    }
    FailOrRetry(t, std::move(status));
  }

  static absl::Status StatusFromCurl(CURLcode rc, const char* errbuf) {
    std::string detail =
        SanitizePeerText(errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc));
    switch (rc) {
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
      case CURLE_OPERATION_TIMEDOUT:  // Only the connect timeout is set on the handle.
        return absl::UnavailableError(absl::StrCat("could not connect to upstream: ", detail));
      default:
        return absl::UnavailableError(absl::StrCat("upstream connection failed: ", detail));
    }
  }

  void FailOrRetry(const std::shared_ptr<Transfer>& t, absl::Status status) {
    absl::Time now = options_.clock->Now();
    std::optional<absl::Duration> delay;
    bool throttled = false;
    if (IsRetryable(status)) budget_.OnFailure();
    if (!t->delta_sent && !t->cancel_requested) {
      delay = RetryDelay(options_.retry, t->attempt + 1, status, now, t->deadline, rng_);
      if (delay && !budget_.AllowRetry()) {
        delay.reset();
        throttled = true;
      }
    }
    if (!delay) {
      if (t->attempt > 1 || throttled) {
        status = absl::Status(
            status.code(),
            absl::StrCat(status.message(), " (after ", t->attempt,
                         t->attempt == 1 ? " attempt" : " attempts",
                         throttled ? "; no retry: most recent calls to this upstream failed" : "",
                         ")"));
      }
      Finish(*t, std::move(status));
      return;
    }
    curl_multi_remove_handle(queue_->multi, t->easy);
    active_.erase(t->easy);
    t->attempt++;
    t->retry_due = now + *delay;
    waiting_.push_back(t);
    t->observer->OnRetry(status, *delay);
  }

  // Ends calls past a timeout, starts retries that are due, and returns when
  // the loop must next wake for a timer.
  absl::Time CheckTimers(absl::Time now) {
    absl::Time next = now + absl::Seconds(1);
    std::vector<std::pair<std::shared_ptr<Transfer>, absl::Status>> expired;
    for (auto& [easy, t] : active_) {
      absl::Time first_token_due = t->attempt_started + options_.first_token_timeout;
      absl::Time idle_due = t->last_data + options_.idle_timeout;
      if (now >= t->deadline) {
        expired.emplace_back(
            t, absl::DeadlineExceededError(absl::StrCat(
                   "upstream call exceeded its deadline after ", Secs(now - t->started))));
      } else if (!t->delta_sent && now >= first_token_due) {
        expired.emplace_back(
            t, absl::DeadlineExceededError(absl::StrCat("upstream sent no token within ",
                                                        Secs(options_.first_token_timeout))));
      } else if (t->delta_sent && now >= idle_due) {
        expired.emplace_back(t, absl::DeadlineExceededError(absl::StrCat(
                                    "upstream stream stalled for ", Secs(options_.idle_timeout))));
      } else {
        next = std::min({next, t->deadline, t->delta_sent ? idle_due : first_token_due});
      }
    }
    for (auto& [t, status] : expired) Finish(*t, std::move(status));

    std::vector<std::shared_ptr<Transfer>> due;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if ((*it)->finished) {
        it = waiting_.erase(it);
      } else if (now >= (*it)->retry_due) {
        due.push_back(*it);
        it = waiting_.erase(it);
      } else {
        next = std::min(next, (*it)->retry_due);
        ++it;
      }
    }
    for (auto& t : due) BeginAttempt(t);
    return next;
  }

  void Finish(Transfer& t, absl::StatusOr<Completion> result) {
    if (t.finished) return;
    t.finished = true;
    if (t.easy != nullptr && active_.count(t.easy) > 0) {
      // Removing an unfinished transfer closes its connection, so the upstream
      // stops generating at once.
      curl_multi_remove_handle(queue_->multi, t.easy);
      active_.erase(t.easy);
    }
    waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                  [&t](const auto& w) { return w.get() == &t; }),
                   waiting_.end());
    if (!result.ok() && !options_.api_key.empty() &&
        result.status().message().find(options_.api_key) != absl::string_view::npos) {
      // Defence in depth: no path should put the key in a message, but an
      // upstream may echo request headers in its error text.
      absl::Status redacted(result.status().code(),
                            SanitizePeerText(result.status().message(), options_.api_key, 2048));
      result.status().ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
        redacted.SetPayload(url, payload);
      });
      result = std::move(redacted);
    }
    if (result.ok()) budget_.OnSuccess();
    std::shared_ptr<StreamObserver> observer = std::move(t.observer);
    observer->OnDone(std::move(result));
  }

  const UpstreamOptions options_;
  const std::string url_;
  std::shared_ptr<SharedQueue> queue_;
  std::mt19937_64 rng_;
  RetryBudget budget_{options_.retry.budget_tokens,
                      options_.retry.budget_token_ratio};  // Loop only.
  std::thread thread_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::shared_ptr<Transfer>> starts_ ABSL_GUARDED_BY(mu_);

  // Event thread only.
  std::unordered_map<CURL*, std::shared_ptr<Transfer>> active_;
  std::vector<std::shared_ptr<Transfer>> waiting_;
};

absl::StatusOr<std::unique_ptr<CurlLlmClient>> CurlLlmClient::Create(UpstreamOptions options) {
  if (!absl::StartsWith(options.base_url, "http://") &&
      !absl::StartsWith(options.base_url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream base_url must start with http:// or https://, got '",
                     RedactUrl(options.base_url), "'"));
  }
  if (options.model.empty()) return absl::InvalidArgumentError("upstream model must not be empty");
  if (options.retry.max_attempts < 1) {
    return absl::InvalidArgumentError("retry max_attempts must be >= 1");
  }
  return std::unique_ptr<CurlLlmClient>(
      new CurlLlmClient(std::make_unique<Impl>(std::move(options))));
}

CurlLlmClient::CurlLlmClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CurlLlmClient::~CurlLlmClient() = default;

std::shared_ptr<CallHandle> CurlLlmClient::Start(ChatRequest request,
                                                 std::shared_ptr<StreamObserver> observer) {
  return impl_->Start(std::move(request), std::move(observer));
}

}  // namespace moa::llm
