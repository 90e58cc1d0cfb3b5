#include "services/orchestrator/http_door.h"

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lib/base/log.h"
#include "lib/contract/contract.h"
#include "lib/net/listen.h"
#include "services/orchestrator/openai_api.h"

namespace moa::orchestrator {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

class HttpDoor::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(HttpDoorOptions options, HttpDoorDeps deps)
      : options_(std::move(options)), deps_(deps), acceptor_(ioc_) {}

  absl::Status Listen();
  void Stop();
  void Drain(absl::Duration grace);
  int port() const { return port_; }

  const HttpDoorOptions& options() const { return options_; }
  const HttpDoorDeps& deps() const { return deps_; }
  std::atomic<int>& active() { return active_; }

  // Remembers a running MoA request so Drain can cancel it after the grace.
  void Track(const std::shared_ptr<MoaCall>& call) {
    absl::MutexLock lock(&calls_mu_);
    std::erase_if(calls_, [](const std::weak_ptr<MoaCall>& c) { return c.expired(); });
    calls_.push_back(call);
  }

 private:
  void Accept();

  const HttpDoorOptions options_;
  const HttpDoorDeps deps_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  int port_ = 0;
  std::atomic<int> active_{0};  // MoA requests in flight through this door.
  bool stopped_ = false;
  absl::Mutex calls_mu_;
  std::vector<std::weak_ptr<MoaCall>> calls_ ABSL_GUARDED_BY(calls_mu_);
};

namespace {

std::string NewCompletionId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char kHex[] = "0123456789abcdef";
  std::string id = "chatcmpl-moa-";
  for (int i = 0; i < 24; ++i) id += kHex[rng() % 16];
  return id;
}

// One client connection; every handler runs on its strand. A MoaCall's
// events arrive on gRPC threads and are posted to the strand in order.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpDoor::Impl> door)
      : stream_(std::move(socket)), door_(std::move(door)) {}

  void Start() { DoRead(); }

  void PostEvent(v1::ChatEvent event) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), e = std::move(event)]() mutable { self->OnEvent(e); });
  }
  void PostFinish(absl::Status status) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), s = std::move(status)] { self->OnFinish(s); });
  }

 private:
  using Response = http::response<http::string_body>;

  class Sink final : public MoaCallSink {
   public:
    explicit Sink(std::shared_ptr<Session> session) : session_(std::move(session)) {}
    void OnEvent(v1::ChatEvent event) override { session_->PostEvent(std::move(event)); }
    void OnFinish(absl::Status status) override { session_->PostFinish(std::move(status)); }

   private:
    std::shared_ptr<Session> session_;
  };

  void DoRead() {
    parser_.emplace();
    parser_->body_limit(door_->options().max_body_bytes);
    parser_->header_limit(64 << 10);
    stream_.expires_after(absl::ToChronoNanoseconds(door_->options().read_timeout));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    stream_.expires_never();
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      return SendError({413,
                        absl::StrCat("the request body is larger than ",
                                     door_->options().max_body_bytes, " bytes"),
                        "invalid_request_error", "", "request_too_large"});
    }
    if (ec) return Close();
    request_ = parser_->release();
    keep_alive_ = request_.keep_alive();
    Route();
  }

  Response Reply(http::status status, std::string body,
                 const std::string& content_type = "application/json") {
    Response res{status, request_.version()};
    res.set(http::field::server, "moa-orchestrator");
    res.set(http::field::content_type, content_type);
    res.keep_alive(keep_alive_);
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
  }

  void Send(Response res) {
    auto sp = std::make_shared<Response>(std::move(res));
    http::async_write(stream_, *sp, [self = shared_from_this(), sp](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      if (!self->keep_alive_) return self->LingeringClose();
      self->DoRead();
    });
  }

  // After an early answer (413) the client may still be sending its body;
  // closing at once would reset the connection before it reads the answer.
  // So stop sending, read and discard what still comes (bounded in time and
  // bytes), then close.
  void LingeringClose() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(5));
    Discard(0);
  }
  void Discard(size_t total) {
    stream_.async_read_some(net::buffer(watch_buf_),
                            [self = shared_from_this(), total](beast::error_code ec, size_t n) {
                              if (ec || total + n > (64u << 20)) return self->Close();
                              self->Discard(total + n);
                            });
  }

  void SendError(const openai::HttpError& e) {
    Response res = Reply(static_cast<http::status>(e.status), openai::ErrorJson(e));
    if (e.status == 429) res.set(http::field::retry_after, "1");
    if (e.status == 401) res.set(http::field::www_authenticate, "Bearer");
    Send(std::move(res));
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  void Route() {
    std::string target(request_.target());
    std::string path = target.substr(0, target.find('?'));
    const HttpDoorDeps& deps = door_->deps();
    if (path == "/healthz" && request_.method() == http::verb::get) {
      return Send(Reply(http::status::ok, "ok\n", "text/plain"));
    }
    if (path == "/readyz" && request_.method() == http::verb::get) {
      bool ready = deps.readiness == nullptr || deps.readiness->ready();
      std::string reason = deps.readiness ? deps.readiness->reason() : "ready";
      return Send(Reply(ready ? http::status::ok : http::status::service_unavailable, reason + "\n",
                        "text/plain"));
    }
    if (path.rfind("/v1/", 0) == 0 && deps.api_keys->enabled()) {
      auto auth = request_.find(http::field::authorization);
      if (auth == request_.end() ||
          !deps.api_keys->CheckAuthorization(std::string(auth->value()))) {
        return SendError({401,
                          auth == request_.end()
                              ? "missing API key: send 'Authorization: Bearer <key>'"
                              : "incorrect API key",
                          "authentication_error", "", "invalid_api_key"});
      }
    }
    if (path == "/v1/models" && request_.method() == http::verb::get) return Models();
    if (path == "/v1/chat/completions") {
      if (request_.method() != http::verb::post) {
        return SendError({405, "use POST for /v1/chat/completions", "invalid_request_error", "",
                          "method_not_allowed"});
      }
      return ChatCompletions();
    }
    SendError({404, absl::StrCat("no route for ", std::string(request_.method_string()), " ", path),
               "invalid_request_error", "", "not_found"});
  }

  void Models() {
    nlohmann::json data = nlohmann::json::array();
    for (const auto& p : door_->deps().config->pipelines) {
      data.push_back(
          {{"id", p.name}, {"object", "model"}, {"created", 0}, {"owned_by", "moa-cluster"}});
    }
    Send(Reply(http::status::ok, nlohmann::json{{"object", "list"}, {"data", data}}.dump()));
  }

  void ChatCompletions() {
    const HttpDoorDeps& deps = door_->deps();
    openai::HttpError error;
    auto parsed = openai::ParseChatCompletionRequest(request_.body(), &error);
    if (!parsed.ok()) return SendError(error);
    auto pipeline = ValidateChatRequest(parsed->chat, *deps.config);
    if (!pipeline.ok()) {
      openai::HttpError e = openai::ErrorFromStatus(pipeline.status());
      if (e.status == 404) {
        e.message = absl::StrCat("The model '", parsed->chat.pipeline(),
                                 "' does not exist: ", pipeline.status().message());
      }
      return SendError(e);
    }
    if (!deps.admission->TryAcquire()) {
      return SendError({429,
                        absl::StrCat("the orchestrator is at its limit of ", deps.admission->max(),
                                     " concurrent requests; retry later"),
                        "rate_limit_error", "", "rate_limit_exceeded"});
    }
    admitted_ = true;
    door_->active().fetch_add(1);
    streaming_ = parsed->stream;
    include_usage_ = parsed->include_usage;
    model_ = parsed->chat.pipeline();
    id_ = NewCompletionId();
    created_ = absl::ToUnixSeconds(absl::Now());
    record_ = openai::CallRecord();
    answer_.clear();
    finished_ = false;
    client_gone_ = false;

    MoaCall::Options options;
    options.pipeline = *std::move(pipeline);
    options.conversation = contract::ToLlmMessages(parsed->chat.messages());
    options.deadline = absl::Now() + door_->options().request_timeout;
    if (streaming_) StartStream();
    WatchForClose();
    call_ = MoaCall::Start(std::move(options), deps.backends, deps.metrics,
                           std::make_shared<Sink>(shared_from_this()));
    door_->Track(call_);
  }

  void StartStream() {
    header_.emplace(http::status::ok, request_.version());
    header_->set(http::field::server, "moa-orchestrator");
    header_->set(http::field::content_type, "text/event-stream");
    header_->set(http::field::cache_control, "no-cache");
    header_->keep_alive(keep_alive_);
    header_->chunked(true);
    serializer_.emplace(*header_);
    writing_ = true;
    http::async_write_header(stream_, *serializer_,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               self->writing_ = false;
                               if (ec) return self->ClientGone();
                               self->Flush();
                             });
    pending_ +=
        openai::ChunkEvent(id_, created_, model_, R"({"role":"assistant","content":""})", "null");
  }

  // A read while the answer is pending notices at once when the client
  // closes the connection, so its MoA request is cancelled.
  void WatchForClose() {
    watching_ = true;
    stream_.socket().async_read_some(
        net::buffer(watch_buf_),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnWatch(ec, n); });
  }

  void OnWatch(beast::error_code ec, size_t n) {
    if (!ec) {  // The next request arrived early: keep its bytes.
      auto dst = buffer_.prepare(n);
      net::buffer_copy(dst, net::buffer(watch_buf_, n));
      buffer_.commit(n);
    }
    if (resume_after_watch_ && (!ec || ec == net::error::operation_aborted)) {
      watching_ = false;
      resume_after_watch_ = false;
      return DoRead();
    }
    if (!ec) return WatchForClose();
    watching_ = false;
    if (!finished_) ClientGone();
  }

  void ClientGone() {
    if (client_gone_) return;
    client_gone_ = true;
    if (call_) call_->Cancel();
    Close();
  }

  void OnEvent(const v1::ChatEvent& event) {
    record_.Add(event);
    if (!event.has_answer_delta()) return;
    answer_ += event.answer_delta();
    if (streaming_ && !client_gone_) {
      pending_ += openai::ChunkEvent(id_, created_, model_,
                                     openai::ContentDeltaJson(event.answer_delta()), "null");
      Flush();
    }
  }

  void OnFinish(const absl::Status& status) {
    finished_ = true;
    call_.reset();
    ReleaseSlot();
    if (client_gone_) return;
    if (!streaming_) {
      if (!status.ok()) return SendErrorAfterWatch(openai::ErrorFromStatus(status));
      return SendAfterWatch(
          Reply(http::status::ok, openai::CompletionJson(id_, created_, model_, answer_, record_)));
    }
    if (status.ok()) {
      std::string finish = record_.summary ? record_.summary->finish_reason() : "stop";
      pending_ += openai::ChunkEvent(id_, created_, model_, "{}", nlohmann::json(finish).dump());
      if (include_usage_) pending_ += openai::UsageChunkEvent(id_, created_, model_, record_);
      pending_ += "data: [DONE]\n\n";
    } else {
      // The 200 is out already: the error goes out as an event.
      pending_ +=
          absl::StrCat("data: ", openai::ErrorJson(openai::ErrorFromStatus(status)), "\n\n");
    }
    stream_done_ = true;
    Flush();
  }

  // Writes everything pending as one chunk; one write at a time.
  void Flush() {
    if (writing_ || client_gone_) return;
    if (pending_.empty()) {
      if (stream_done_ && !last_chunk_sent_) SendLastChunk();
      return;
    }
    writing_ = true;
    auto data = std::make_shared<std::string>(std::move(pending_));
    pending_.clear();
    net::async_write(stream_, http::make_chunk(net::buffer(*data)),
                     [self = shared_from_this(), data](beast::error_code ec, size_t) {
                       self->writing_ = false;
                       if (ec) return self->ClientGone();
                       self->Flush();
                     });
  }

  void SendLastChunk() {
    last_chunk_sent_ = true;
    writing_ = true;
    auto last = std::make_shared<http::chunk_last<http::chunk_crlf>>(http::make_chunk_last());
    net::async_write(stream_, *last,
                     [self = shared_from_this(), last](beast::error_code ec, size_t) {
                       self->writing_ = false;
                       if (ec) return self->Close();
                       self->ResetStream();
                       self->ResumeReading();
                     });
  }

  void ResetStream() {
    stream_done_ = false;
    last_chunk_sent_ = false;
    streaming_ = false;
    serializer_.reset();
    header_.reset();
  }

  // A whole response while the close-watch read may still be pending; the
  // next request is read once that read has ended.
  void SendAfterWatch(Response res) {
    auto sp = std::make_shared<Response>(std::move(res));
    http::async_write(stream_, *sp, [self = shared_from_this(), sp](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->ResumeReading();
    });
  }
  void SendErrorAfterWatch(const openai::HttpError& e) {
    Response res =
        Reply(static_cast<http::status>(e.status == 499 ? 500 : e.status), openai::ErrorJson(e));
    if (e.status == 429) res.set(http::field::retry_after, "1");
    SendAfterWatch(std::move(res));
  }

  void ResumeReading() {
    if (!keep_alive_) return Close();
    if (watching_) {
      resume_after_watch_ = true;
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
    } else {
      DoRead();
    }
  }

  void ReleaseSlot() {
    if (!admitted_) return;
    admitted_ = false;
    door_->deps().admission->Release();
    door_->active().fetch_sub(1);
  }

 public:
  ~Session() { ReleaseSlot(); }

 private:
  beast::tcp_stream stream_;
  std::shared_ptr<HttpDoor::Impl> door_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  bool keep_alive_ = true;

  // The MoA request in flight.
  std::shared_ptr<MoaCall> call_;
  bool admitted_ = false;
  bool streaming_ = false;
  bool include_usage_ = false;
  std::string model_;
  std::string id_;
  int64_t created_ = 0;
  openai::CallRecord record_;
  std::string answer_;
  bool finished_ = false;
  bool client_gone_ = false;

  // Streaming output.
  std::optional<http::response<http::empty_body>> header_;
  std::optional<http::response_serializer<http::empty_body>> serializer_;
  std::string pending_;
  bool writing_ = false;
  bool stream_done_ = false;
  bool last_chunk_sent_ = false;

  bool watching_ = false;
  bool resume_after_watch_ = false;
  std::array<char, 1024> watch_buf_;
};

}  // namespace

absl::Status HttpDoor::Impl::Listen() {
  if (absl::Status s = moa::net::Listen(acceptor_, options_.host, options_.port); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("HTTP door: ", s.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  Accept();
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] { ioc_.run(); });
  }
  return absl::OkStatus();
}

void HttpDoor::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_),
                         [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
                           if (!ec) {
                             socket.set_option(tcp::no_delay(true), ec);
                             std::make_shared<Session>(std::move(socket), self)->Start();
                           }
                           if (self->acceptor_.is_open()) self->Accept();
                         });
}

void HttpDoor::Impl::Drain(absl::Duration grace) {
  net::post(ioc_, [self = shared_from_this()] {
    beast::error_code ignored;
    self->acceptor_.close(ignored);
  });
  absl::Time end = absl::Now() + grace;
  while (active_.load() > 0 && absl::Now() < end) absl::SleepFor(absl::Milliseconds(20));
  // Past the grace: cancel what still runs (its clients get the error) and
  // give the cancels a moment to reach the upstreams.
  std::vector<std::shared_ptr<MoaCall>> running;
  {
    absl::MutexLock lock(&calls_mu_);
    for (auto& weak : calls_) {
      if (auto call = weak.lock()) running.push_back(std::move(call));
    }
    calls_.clear();
  }
  for (auto& call : running) call->Cancel();
  end = absl::Now() + absl::Seconds(2);
  while (active_.load() > 0 && absl::Now() < end) absl::SleepFor(absl::Milliseconds(20));
}

void HttpDoor::Impl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  ioc_.stop();
  for (auto& t : threads_) t.join();
}

absl::StatusOr<std::unique_ptr<HttpDoor>> HttpDoor::Start(HttpDoorOptions options,
                                                          HttpDoorDeps deps) {
  auto impl = std::make_shared<Impl>(std::move(options), deps);
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  return std::unique_ptr<HttpDoor>(new HttpDoor(std::move(impl)));
}

HttpDoor::HttpDoor(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpDoor::~HttpDoor() { impl_->Stop(); }
int HttpDoor::port() const { return impl_->port(); }
void HttpDoor::Drain(absl::Duration grace) { impl_->Drain(grace); }

}  // namespace moa::orchestrator
