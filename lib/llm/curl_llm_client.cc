#include "lib/llm/curl_llm_client.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <queue>
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

std::string Secs(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), "s"); }

// State the event thread shares with threads that cancel calls.
struct SharedQueue {
  absl::Mutex mu;
  int wake_fd = -1;  // An eventfd in the loop's epoll set; valid until `closed`.
  bool closed ABSL_GUARDED_BY(mu) = false;
  std::vector<std::shared_ptr<class Transfer>> cancels ABSL_GUARDED_BY(mu);

  void Wake() {
    uint64_t one = 1;
    ssize_t n = write(wake_fd, &one, sizeof(one));
    (void)n;  // EAGAIN: the counter is already non-zero, so the loop wakes anyway.
  }
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
    queue_->Wake();
  }

  void ResetAttempt(const Dialect& dialect) {
    parser.Reset();
    reader = dialect.NewReader();
    in_reasoning = false;
    http_code = 0;
    error_body.clear();
    retry_after.reset();
    failure.reset();
    done_marker = false;
    finish_reason.reset();
    tool_calls.clear();
    tool_call_bytes = 0;
    usage = Usage{};
    not_a_stream.reset();
    errbuf[0] = '\0';
  }

  std::shared_ptr<SharedQueue> queue_;
  std::atomic<bool> cancel_requested{false};
  std::shared_ptr<StreamObserver> observer;
  const Clock* const clock;  // The client's (UpstreamOptions::clock).

  std::string body;
  std::optional<absl::Status> body_error;  // The dialect cannot express the request.
  bool include_reasoning = false;          // ReasoningSettings::include_text.
  bool in_reasoning = false;               // Of this attempt: thinking text was sent last.
  TraceContext trace;                      // Sent as x-request-id and traceparent.
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
  int64_t text_bytes = 0;  // Of this attempt, for the stall message.
  absl::Time retry_due;

  SseParser parser;
  std::unique_ptr<StreamReader> reader;  // The dialect's, for this attempt.
  long http_code = 0;
  std::string error_body;
  std::optional<absl::Duration> retry_after;
  std::optional<absl::Status> failure;  // Set while parsing; aborts the transfer.
  bool done_marker = false;
  std::optional<std::string> finish_reason;
  std::vector<ToolCall> tool_calls;  // Assembled from the stream's fragments.
  size_t tool_call_bytes = 0;
  Usage usage;
  // A 2xx answer whose Content-Type says it is no event stream (an HTML
  // page, a whole JSON answer): its type, with the body kept in error_body.
  std::optional<std::string> not_a_stream;
  char errbuf[CURL_ERROR_SIZE] = {0};
};

}  // namespace

class CurlLlmClient::Impl {
 public:
  Impl(UpstreamOptions options, std::unique_ptr<Dialect> dialect)
      : options_(std::move(options)),
        dialect_(std::move(dialect)),
        url_(dialect_->url()),
        queue_(std::make_shared<SharedQueue>()),
        rng_(std::random_device{}()) {
    GlobalCurlInit();
    multi_ = curl_multi_init();
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    queue_->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = queue_->wake_fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, queue_->wake_fd, &ev);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::SocketCallback);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::TimerCallback);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
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
    curl_multi_cleanup(multi_);  // May still tell SocketCallback to drop sockets.
    close(queue_->wake_fd);
    close(epoll_fd_);
  }

  std::shared_ptr<CallHandle> Start(ChatRequest request, std::shared_ptr<StreamObserver> observer) {
    auto t = std::make_shared<Transfer>(queue_, std::move(observer), options_.clock);
    t->started = options_.clock->Now();
    t->deadline = std::min(request.deadline, t->started + options_.total_timeout);
    if (absl::StatusOr<std::string> body = dialect_->Body(request); body.ok()) {
      t->body = *std::move(body);
    } else {
      t->body_error = body.status();
    }
    t->trace = request.trace;
    t->include_reasoning = options_.reasoning.include_text;
    {
      absl::MutexLock lock(&mu_);
      starts_.push_back(t);
    }
    Wake();
    return t;
  }

 private:
  void Wake() { queue_->Wake(); }

  // The socket interface: curl says which sockets to watch for what, and the
  // loop tells curl only about sockets that are ready, so a wake-up costs
  // what is ready, not every open transfer (curl_multi_poll walks them all).
  static int SocketCallback(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
    auto* self = static_cast<Impl*>(userp);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, s, nullptr);
      return 0;
    }
    epoll_event ev{};
    ev.data.fd = s;
    ev.events = ((what & CURL_POLL_IN) ? uint32_t{EPOLLIN} : 0u) |
                ((what & CURL_POLL_OUT) ? uint32_t{EPOLLOUT} : 0u);
    int op = socketp == nullptr ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(self->epoll_fd_, op, s, &ev) != 0) {
      // A socket number curl reused, or one we never saw: the other operation.
      epoll_ctl(self->epoll_fd_, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    }
    if (socketp == nullptr) curl_multi_assign(self->multi_, s, self);  // Marks it registered.
    return 0;
  }

  // Curl's own timeouts (connects, its internal timers); acted on by the loop,
  // never inside the callback.
  static int TimerCallback(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    if (timeout_ms < 0) {
      self->curl_due_.reset();
    } else {
      self->curl_due_ = absl::Now() + absl::Milliseconds(timeout_ms);
    }
    return 0;
  }

  void SocketAction(curl_socket_t s, int flags) {
    int running = 0;
    curl_multi_socket_action(multi_, s, flags, &running);
  }

  void ReapFinished() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      auto it = active_.find(msg->easy_handle);
      if (it == active_.end()) continue;
      std::shared_ptr<Transfer> t = it->second;
      OnTransferDone(t, msg->data.result);
    }
  }

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
        if (t->body_error) {
          Finish(*t, *t->body_error);
        } else if (t->cancel_requested) {
          Finish(*t, absl::CancelledError("request cancelled by the caller"));
        } else {
          BeginAttempt(t);
        }
      }
      for (auto& t : cancels) Finish(*t, absl::CancelledError("request cancelled by the caller"));

      // Curl's due timers run on every turn, not only when curl_due_ has
      // passed: state changes curl schedules "to run now" from inside a socket
      // action were otherwise picked up late (measured: +2 to +4 ms to every
      // time to first token through a proposer). The call walks only timers
      // that are due, not the transfers, and curl allows it early.
      curl_due_.reset();
      SocketAction(CURL_SOCKET_TIMEOUT, 0);
      ReapFinished();
      absl::Time next_wake = CheckTimers(options_.clock->Now());
      int64_t wait_ms = absl::ToInt64Milliseconds(next_wake - options_.clock->Now()) + 1;
      if (curl_due_) {
        wait_ms = std::min<int64_t>(wait_ms, absl::ToInt64Milliseconds(*curl_due_ - absl::Now()));
      }
      int n = epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()),
                         static_cast<int>(std::clamp<int64_t>(wait_ms, 0, 1000)));
      for (int i = 0; i < n; ++i) {
        const epoll_event& ev = events_[i];
        if (ev.data.fd == queue_->wake_fd) {
          uint64_t count;
          ssize_t r = read(queue_->wake_fd, &count, sizeof(count));
          (void)r;
          continue;
        }
        int flags = ((ev.events & (EPOLLIN | EPOLLHUP)) ? CURL_CSELECT_IN : 0) |
                    ((ev.events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                    ((ev.events & EPOLLERR) ? CURL_CSELECT_ERR : 0);
        SocketAction(ev.data.fd, flags);
      }
      ReapFinished();
    }
    // Shutting down: every call still open ends CANCELLED.
    std::vector<std::shared_ptr<Transfer>> open;
    for (auto& [easy, t] : active_) open.push_back(t);
    for (auto& t : waiting_) open.push_back(t);
    for (auto& t : open) Finish(*t, absl::CancelledError("upstream client shutting down"));
  }

  void BeginAttempt(const std::shared_ptr<Transfer>& t) {
    t->ResetAttempt(*dialect_);
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
    t->text_bytes = 0;
    active_[t->easy] = t;
    timers_.push({NextLook(*t, t->attempt_started), t, t->attempt});
    if (CURLMcode rc = curl_multi_add_handle(multi_, t->easy); rc != CURLM_OK) {
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
    for (const std::string& h : dialect_->FixedHeaders()) {
      t.headers = curl_slist_append(t.headers, h.c_str());
    }
    if (!options_.api_key.empty()) {
      for (const std::string& h : dialect_->AuthHeaders(options_.api_key)) {
        t.headers = curl_slist_append(t.headers, h.c_str());
      }
    }
    if (!t.trace.empty()) {
      // Well-formed by construction (AcceptTraceContext): no header injection.
      std::string id = absl::StrCat(kRequestIdHeader, ": ", t.trace.request_id);
      t.headers = curl_slist_append(t.headers, id.c_str());
      std::string parent = absl::StrCat(kTraceparentHeader, ": ", t.trace.Child().Traceparent());
      t.headers = curl_slist_append(t.headers, parent.c_str());
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
    if (!options_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
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
    if (t->http_code == 0) {
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->http_code);
      if (t->http_code >= 200 && t->http_code < 300) t->not_a_stream = NotAnEventStream(t->easy);
    }
    if (t->http_code < 200 || t->http_code >= 300 || t->not_a_stream) {
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

  // The Content-Type of a 2xx answer when it names something other than an
  // event stream. An answer without one is read as a stream (some servers
  // leave it out).
  static std::optional<std::string> NotAnEventStream(CURL* easy) {
    char* type = nullptr;
    curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
    if (type == nullptr || absl::StartsWithIgnoreCase(type, "text/event-stream")) {
      return std::nullopt;
    }
    return SanitizePeerText(type, "", 100);
  }

  static void HandleEvent(Transfer& t, const SseEvent& event) {
    if (t.failure || t.finished) return;
    absl::StatusOr<StreamChunk> chunk = t.reader->Read(event);
    if (!chunk.ok()) {
      t.failure = chunk.status();
      return;
    }
    if (chunk->error) {
      t.failure = *chunk->error;
      return;
    }
    if (chunk->done) t.done_marker = true;
    if (!chunk->reasoning.empty()) {
      if (t.include_reasoning) {
        // Marked so a reader (and a synthesis prompt) can tell it apart.
        const bool answer_follows = !chunk->delta.empty();
        chunk->delta = absl::StrCat(t.in_reasoning ? "" : "[reasoning]\n", chunk->reasoning,
                                    answer_follows ? "\n[answer]\n" : "", chunk->delta);
        t.in_reasoning = !answer_follows;
      } else {
        // Thinking is progress (a model may think for minutes before its
        // first word) but never answer text: it reaches no observer.
        t.last_data = t.clock->Now();
        if (!t.delta_sent) {
          t.delta_sent = true;
          t.time_to_first_token = t.last_data - t.started;
        }
        t.observer->OnProgress();
      }
    } else if (t.in_reasoning && !chunk->delta.empty()) {
      chunk->delta = absl::StrCat("\n[answer]\n", chunk->delta);
      t.in_reasoning = false;
    }
    if (!chunk->delta.empty()) {
      // Only text moves the idle clock: SSE comments, empty or role-only
      // deltas and keep-alive bytes are no progress (an upstream sending ":"
      // forever once held a call to its deadline).
      t.last_data = t.clock->Now();
      t.text_bytes += static_cast<int64_t>(chunk->delta.size());
      if (!t.delta_sent) {
        t.delta_sent = true;
        t.time_to_first_token = t.last_data - t.started;
      }
      t.observer->OnDelta(chunk->delta);
    }
    if (!chunk->tool_calls.empty()) {
      if (absl::Status s = AddToolCallFragments(t, chunk->tool_calls); !s.ok()) {
        t.failure = std::move(s);
        return;
      }
      // A tool call being written is progress as text is (no retry after
      // it; the idle clock moves).
      t.last_data = t.clock->Now();
      if (!t.delta_sent) {
        t.delta_sent = true;
        t.time_to_first_token = t.last_data - t.started;
      }
      t.observer->OnProgress();
    }
    if (chunk->finish_reason) t.finish_reason = chunk->finish_reason;
    if (chunk->usage) t.usage = *chunk->usage;
  }

  // Tool calls arrive in pieces: the first of index i names the call, the
  // rest add to its arguments. Their whole size is bounded.
  static absl::Status AddToolCallFragments(Transfer& t,
                                           const std::vector<ToolCallFragment>& fragments) {
    constexpr size_t kMaxToolCallBytes = 1 << 20;
    for (const ToolCallFragment& f : fragments) {
      if (static_cast<size_t>(f.index) >= t.tool_calls.size()) {
        t.tool_calls.resize(static_cast<size_t>(f.index) + 1);
      }
      ToolCall& call = t.tool_calls[static_cast<size_t>(f.index)];
      if (call.id.empty()) call.id = f.id;
      if (call.name.empty()) call.name = f.name;
      call.arguments += f.arguments;
      t.tool_call_bytes += f.id.size() + f.name.size() + f.arguments.size();
      if (t.tool_call_bytes > kMaxToolCallBytes) {
        return absl::InternalError(
            absl::StrCat("upstream's tool calls are over ", kMaxToolCallBytes >> 20, " MiB"));
      }
    }
    return absl::OkStatus();
  }

  // The calls as the completion reports them: every one named, each with
  // an id (made up when the server sent none, as some local servers do).
  static absl::Status FinishToolCalls(Transfer& t, Completion* c) {
    for (size_t i = 0; i < t.tool_calls.size(); ++i) {
      ToolCall& call = t.tool_calls[i];
      if (call.name.empty()) {
        return absl::InternalError(
            absl::StrCat("upstream sent tool call ", i, " without a function name"));
      }
      if (call.id.empty()) call.id = absl::StrCat("call_", t.attempt, "_", i);
      if (call.arguments.empty()) call.arguments = "{}";
    }
    c->tool_calls = std::move(t.tool_calls);
    if (!c->tool_calls.empty() && c->finish_reason == "stop") c->finish_reason = "tool_calls";
    return absl::OkStatus();
  }

  void OnTransferDone(const std::shared_ptr<Transfer>& t, CURLcode rc) {
    absl::Status status;
    // An answer without a body (a redirect) never reached WriteCallback.
    if (t->http_code == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->http_code);
    if (t->failure) {
      status = *t->failure;
    } else if (rc != CURLE_OK) {
      status = StatusFromCurl(rc, t->errbuf);
    } else if (t->not_a_stream) {
      status = absl::UnavailableError(absl::StrCat(
          "upstream answered HTTP ", t->http_code, " with Content-Type ", *t->not_a_stream,
          ", not an event stream (text/event-stream); is base_url an API of the kind upstream.api "
          "names? "
          "It said: ",
          ErrorMessageFromBody(t->error_body)));
    } else if (t->http_code >= 300 && t->http_code < 400) {
      // Redirects are not followed (a key must not travel to another host).
      char* location = nullptr;
      curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_URL, &location);
      status = absl::FailedPreconditionError(absl::StrCat(
          "upstream answered HTTP ", t->http_code, ", a redirect",
          location != nullptr ? absl::StrCat(" to ", SanitizePeerText(location, "", 200)) : "",
          "; redirects are not followed: set base_url to the address it names"));
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
      status = FinishToolCalls(*t, &c);
      if (status.ok()) {
        Finish(*t, std::move(c));
        return;
      }
    }
    FailOrRetry(t, std::move(status));
  }

  static absl::Status StatusFromCurl(CURLcode rc, const char* errbuf) {
    std::string detail =
        SanitizePeerText(errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc));
    switch (rc) {
      case CURLE_OUT_OF_MEMORY:
        // What curl reports for a response header line over its 100 KiB
        // limit (measured: "Out of memory" for a 2 MB header), not only for
        // a failed allocation.
        return absl::UnavailableError(absl::StrCat(
            "upstream response too large to read (a header line over curl's 100 KiB limit, "
            "or memory ran out): ",
            detail));
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
      case CURLE_OPERATION_TIMEDOUT:  // Only the connect timeout is set on the handle.
        return absl::UnavailableError(absl::StrCat("could not connect to upstream: ", detail));
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CACERT_BADFILE:
        // A configuration error, not an outage: retrying cannot help.
        return absl::FailedPreconditionError(absl::StrCat(
            "the upstream's TLS certificate is not trusted (", detail,
            "); set upstream.ca_file to the CA that signed it, or fix the host in base_url"));
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
    curl_multi_remove_handle(multi_, t->easy);
    active_.erase(t->easy);
    t->attempt++;
    t->retry_due = now + *delay;
    waiting_.push_back(t);
    t->observer->OnRetry(status, *delay);
  }

  // When the current attempt of `t` next needs a look: never later than its
  // deadline or its first-token or idle timeout. Before the first token it
  // is also no later than `now` + the idle timeout, because a first token
  // may come at any moment and the idle timeout then counts from it.
  absl::Time NextLook(const Transfer& t, absl::Time now) const {
    if (t.delta_sent) return std::min(t.deadline, t.last_data + options_.idle_timeout);
    return std::min({t.deadline, t.attempt_started + options_.first_token_timeout,
                     now + options_.idle_timeout});
  }

  // Ends calls past a timeout, starts retries that are due, and returns when
  // the loop must next wake for a timer. Only timers that are due are looked
  // at (a heap; an entry whose transfer got data since is pushed again at its
  // new due time), so the cost does not grow with the calls in flight.
  absl::Time CheckTimers(absl::Time now) {
    absl::Time next = now + absl::Seconds(1);
    std::vector<std::pair<std::shared_ptr<Transfer>, absl::Status>> expired;
    while (!timers_.empty() && timers_.top().due <= now) {
      TimerEntry entry = timers_.top();
      timers_.pop();
      std::shared_ptr<Transfer> t = entry.transfer.lock();
      if (t == nullptr || t->finished || t->attempt != entry.attempt ||
          active_.count(t->easy) == 0) {
        continue;  // That attempt is over.
      }
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
                                    "upstream stream stalled for ", Secs(options_.idle_timeout),
                                    " after ", t->text_bytes, " bytes")));
      } else {
        timers_.push({NextLook(*t, now), t, t->attempt});
      }
    }
    if (!timers_.empty()) next = std::min(next, timers_.top().due);
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
      curl_multi_remove_handle(multi_, t.easy);
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
  const std::unique_ptr<Dialect> dialect_;
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
  CURLM* multi_ = nullptr;
  int epoll_fd_ = -1;
  std::vector<epoll_event> events_ = std::vector<epoll_event>(1024);
  std::optional<absl::Time> curl_due_;  // Real time: curl's own timer.
  std::unordered_map<CURL*, std::shared_ptr<Transfer>> active_;
  std::vector<std::shared_ptr<Transfer>> waiting_;
  struct TimerEntry {
    absl::Time due;
    std::weak_ptr<Transfer> transfer;
    int attempt;
    bool operator>(const TimerEntry& o) const { return due > o.due; }
  };
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers_;
};

absl::StatusOr<std::unique_ptr<CurlLlmClient>> CurlLlmClient::Create(UpstreamOptions options) {
  if (!absl::StartsWith(options.base_url, "http://") &&
      !absl::StartsWith(options.base_url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream base_url must start with http:// or https://, got '",
                     RedactUrl(options.base_url), "'"));
  }
  if (options.model.empty()) return absl::InvalidArgumentError("upstream model must not be empty");
  absl::StatusOr<std::unique_ptr<Dialect>> dialect = MakeDialect(
      {options.api, options.base_url, options.model, options.api_version, options.reasoning});
  if (!dialect.ok()) return dialect.status();
  if (options.retry.max_attempts < 1) {
    return absl::InvalidArgumentError("retry max_attempts must be >= 1");
  }
  return std::unique_ptr<CurlLlmClient>(
      new CurlLlmClient(std::make_unique<Impl>(std::move(options), *std::move(dialect))));
}

CurlLlmClient::CurlLlmClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CurlLlmClient::~CurlLlmClient() = default;

std::shared_ptr<CallHandle> CurlLlmClient::Start(ChatRequest request,
                                                 std::shared_ptr<StreamObserver> observer) {
  return impl_->Start(std::move(request), std::move(observer));
}

}  // namespace moa::llm
