#include "lib/net/http_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <exception>
#include <limits>
#include <thread>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/base/log.h"
#include "lib/base/write_queue.h"
#include "lib/net/listen.h"
#include "lib/net/request_parser.h"
#include "lib/net/tls_context.h"

namespace moa::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

// Exchanges can be held outside the server (by a request that is still
// running when the server stops). They post work to a connection's strand
// only while the gate is open, that is while the io_context exists.
struct Gate {
  absl::Mutex mu;
  bool open ABSL_GUARDED_BY(mu) = true;
};

// After an early answer, what is read and thrown away before closing: the
// rest of a declared or chunked body up to 64 MiB (so the client, still
// sending, reads the answer instead of a reset), else 1 MiB; never for
// longer than 5 s.
constexpr size_t kMinLingerBytes = 1 << 20;
constexpr size_t kMaxLingerBytes = 64 << 20;
constexpr absl::Duration kLingerTime = absl::Seconds(5);

// The most a connection's read buffer holds: a whole header, what is read
// ahead behind a request, and one read.
size_t ReadBufferLimit(const HttpServerOptions& options) {
  return options.max_header_bytes + options.max_read_ahead_bytes + (64 << 10);
}

// A header value never carries CR or LF from a handler into the response.
std::string HeaderSafe(absl::string_view value) {
  std::string out(value);
  for (char& c : out) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return out;
}

std::string StatusLine(int status) {
  auto beast_reason = http::obsolete_reason(static_cast<http::status>(status));
  absl::string_view reason(beast_reason.data(), beast_reason.size());
  return absl::StrCat("HTTP/1.1 ", status, " ", reason.empty() ? "Unknown" : reason, "\r\n");
}

// The head of a response: status line and headers, ending in the blank line.
std::string SerializeHead(const HttpResponse& r, absl::string_view server, bool keep_alive,
                          absl::string_view framing) {
  std::string out = StatusLine(r.status);
  absl::StrAppend(&out, "Server: ", server, "\r\nContent-Type: ", HeaderSafe(r.content_type),
                  "\r\n", framing, "Connection: ", keep_alive ? "keep-alive" : "close", "\r\n");
  for (const auto& [name, value] : r.headers) {
    absl::StrAppend(&out, HeaderSafe(name), ": ", HeaderSafe(value), "\r\n");
  }
  out += "\r\n";
  return out;
}

HttpResponse PlainError(int status, std::string message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  r.body = absl::StrCat(R"({"error":{"message":")", escaped,
                        R"(","type":"invalid_request_error","param":null,"code":null}})");
  return r;
}

// What the server and the exchanges see of a connection, plaintext or TLS.
// Every call runs on the connection's strand.
class ConnectionBase : public std::enable_shared_from_this<ConnectionBase> {
 public:
  virtual ~ConnectionBase() = default;
  virtual void Start() = 0;
  virtual void CloseIfIdle() = 0;
  virtual void Respond(uint64_t seq, HttpResponse r) = 0;
  virtual void StartStream(uint64_t seq, HttpResponse head, std::string keepalive_chunk) = 0;
  virtual void Write(uint64_t seq, std::string data) = 0;
  virtual void End(uint64_t seq) = 0;
  virtual void Abort(uint64_t seq) = 0;
  virtual void SetOnClosed(uint64_t seq, std::function<void(bool)> callback) = 0;
  virtual asio::any_io_executor executor() = 0;
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, HttpHandler* handler, std::unique_ptr<ServerTlsContext> tls)
      : options_(std::move(options)), handler_(handler), tls_(std::move(tls)), acceptor_(ioc_) {}

  ~Impl() {
    ioc_.stop();
    for (auto& t : threads_) t.join();
    {
      absl::MutexLock lock(&gate_->mu);
      gate_->open = false;
    }
    absl::MutexLock lock(&mu_);
    connections_.clear();
  }

  absl::Status Listen() {
    if (absl::Status s = moa::net::Listen(acceptor_, options_.host, options_.port); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(options_.name, ": ", s.message()));
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
    return absl::OkStatus();
  }

  void StopAccepting();
  void Remove(ConnectionBase* c) {
    std::shared_ptr<ConnectionBase> last;  // Destroyed after the lock is released.
    absl::MutexLock lock(&mu_);
    auto it = connections_.find(c);
    if (it == connections_.end()) return;
    last = std::move(it->second);
    connections_.erase(it);
  }
  size_t connections() const {
    absl::MutexLock lock(&mu_);
    return connections_.size();
  }

  const HttpServerOptions& options() const { return options_; }
  HttpHandler* handler() const { return handler_; }
  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  const std::shared_ptr<Gate>& gate() const { return gate_; }
  int port() const { return port_; }

 private:
  void Accept();
  void RejectBusy(tcp::socket socket);
  static bool OutOfDescriptors(const beast::error_code& ec);
  void NoteOutOfDescriptors();

  // Accepting again after the process ran out of descriptors.
  static constexpr absl::Duration kAcceptRetry = absl::Milliseconds(50);
  static constexpr absl::Duration kFdReportInterval = absl::Seconds(10);

  const HttpServerOptions options_;
  HttpHandler* const handler_;
  const std::unique_ptr<ServerTlsContext> tls_;  // Null: plaintext.
  std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();
  std::atomic<bool> draining_{false};
  mutable absl::Mutex mu_;
  std::unordered_map<ConnectionBase*, std::shared_ptr<ConnectionBase>> connections_
      ABSL_GUARDED_BY(mu_);
  // Destroyed before the members above: pending handlers may hold connections.
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_{ioc_};
  // Only the accept handler touches these (one accept at a time).
  int64_t fd_waits_ = 0;
  absl::Time last_fd_report_ = absl::InfinitePast();
  std::vector<std::thread> threads_;
  int port_ = 0;
};

namespace {

// One client connection over `Stream`: a TCP socket, or TLS over one. Every
// member function runs on the connection's strand (the socket's executor),
// except the constructor.
template <typename Stream>
class Connection final : public ConnectionBase {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

  Connection(tcp::socket socket, std::shared_ptr<ssl::context> tls, HttpServer::Impl* server)
      : tls_(std::move(tls)),
        stream_(MakeStream(std::move(socket), tls_.get())),
        timer_(stream_.get_executor()),
        server_(server),
        buffer_(ReadBufferLimit(server->options())) {}

  void Start() override {
    asio::post(stream_.get_executor(), [self = Self()] {
      if constexpr (kTls) {
        self->PeekFirstByte();
      } else {
        self->ReadHeader();
      }
    });
  }

  // Drain: a connection waiting for a request that has not begun goes now.
  void CloseIfIdle() override {
    if (phase_ == Phase::kReading && buffer_.size() == 0 && !(parser_ && parser_->got_some())) {
      Close();
    }
  }

  // ---- HttpExchange operations, for request `seq`.
  void Respond(uint64_t seq, HttpResponse r) override {
    if (!Current(seq) || head_queued_) return;
    head_queued_ = true;
    std::string head = SerializeHead(r, server_->options().name, KeepAlive(),
                                     absl::StrCat("Content-Length: ", r.body.size(), "\r\n"));
    complete_ = true;
    Enqueue(absl::StrCat(head, r.body));
    out_.Close();
    Flush();
  }

  void StartStream(uint64_t seq, HttpResponse head, std::string keepalive_chunk) override {
    if (!Current(seq) || head_queued_) return;
    head_queued_ = true;
    streaming_ = true;
    keepalive_chunk_ = std::move(keepalive_chunk);
    // An HTTP/1.0 client gets the body unframed, ended by closing.
    if (version_ < 11) keep_alive_ = false;
    Enqueue(SerializeHead(head, server_->options().name, KeepAlive(),
                          version_ < 11 ? "" : "Transfer-Encoding: chunked\r\n"));
    if (peer_eof_) Probe();
  }

  void Write(uint64_t seq, std::string data) override {
    if (!Current(seq) || !streaming_ || data.empty()) return;
    Enqueue(Chunk(data));
  }

  void End(uint64_t seq) override {
    if (!Current(seq) || !streaming_) return;
    complete_ = true;
    if (version_ >= 11) Enqueue("0\r\n\r\n");
    out_.Close();
    Flush();
  }

  void Abort(uint64_t seq) override {
    if (!Current(seq)) return;
    beast::error_code ignored;
    Socket().set_option(asio::socket_base::linger(true, 0), ignored);
    ClientGone();
  }

  void SetOnClosed(uint64_t seq, std::function<void(bool)> callback) override {
    if (!Current(seq)) return;
    on_closed_ = std::move(callback);
  }

  asio::any_io_executor executor() override { return stream_.get_executor(); }

 private:
  static Stream MakeStream(tcp::socket socket, ssl::context* tls) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *tls);
    } else {
      return socket;
    }
  }
  std::shared_ptr<Connection> Self() {
    return std::static_pointer_cast<Connection>(shared_from_this());
  }
  tcp::socket& Socket() { return beast::get_lowest_layer(stream_); }

  // ---- TLS: the first byte tells a handshake (0x16) from a client that
  // speaks plain HTTP to this port, which gets a plain 400 saying so instead
  // of a handshake failure it cannot read.
  void PeekFirstByte() {
    ArmTimer(server_->options().read_timeout);
    Socket().async_receive(
        asio::buffer(first_byte_), tcp::socket::message_peek,
        [self = Self()](beast::error_code ec, size_t n) { self->OnFirstByte(ec, n); });
  }

  void OnFirstByte(beast::error_code ec, size_t n) {
    if (ec || n == 0 || timed_out_) return Close();
    if (first_byte_[0] != 0x16) {
      CancelTimer();
      return RefusePlaintext();
    }
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = Self()](beast::error_code ec) { self->OnHandshake(ec); });
    }
  }

  void OnHandshake(beast::error_code ec) {
    CancelTimer();
    if (ec) return Close();  // A bad or untrusting client, or too slow.
    ReadHeader();
  }

  void RefusePlaintext() {
    static const std::string kRefusal = [] {
      std::string body =
          R"({"error":{"message":"this port serves HTTPS; use https:// to reach it",)"
          R"("type":"invalid_request_error","param":null,"code":"tls_required"}})";
      return absl::StrCat(
          "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: ",
          body.size(), "\r\n\r\n", body);
    }();
    phase_ = Phase::kLingering;
    asio::async_write(Socket(), asio::buffer(kRefusal),
                      [self = Self()](beast::error_code ec, size_t) {
                        if (ec) return self->Close();
                        beast::error_code ignored;
                        self->Socket().shutdown(tcp::socket::shutdown_send, ignored);
                        self->ArmTimer(kLingerTime);
                        self->Discard(0, /*raw=*/true);
                      });
  }

  enum class Phase {
    kReading,        // Waiting for or reading a request.
    kPending,        // A request was handed over; its response is not complete.
    kAfterResponse,  // The response is out; waiting for the read-ahead to stop.
    kLingering,      // Answered and closing: discarding what the client still sends.
    kClosed,
  };

  bool Current(uint64_t seq) const {
    return seq == seq_ && phase_ == Phase::kPending && !complete_;
  }
  bool KeepAlive() const { return keep_alive_ && !server_->draining(); }

  std::string Chunk(absl::string_view data) const {
    if (version_ < 11) return std::string(data);
    return absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n");
  }

  // ---- Reading a request.
  void ReadHeader() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kReading;
    linger_bytes_ = kMinLingerBytes;
    body_expected_ = false;
    if (server_->draining() && buffer_.size() == 0) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_->options().max_header_bytes));
    // No body limit while reading the head: Beast would refuse a large
    // Content-Length before Screen could check credentials. OnHeader sets it.
    // (Not boost::none: Beast compares the length against the optional, and
    // every length is "greater" than none.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    ArmTimer(server_->options().read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = Self()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (phase_ != Phase::kReading) return;
    if (ec) return OnReadError(ec);
    const HttpRequestHeader& header = parser_->get().base();
    version_ = header.version();
    std::optional<HttpResponse> early;
    try {
      early = server_->handler()->Screen(header);
    } catch (const std::exception& e) {
      LogError(server_->options().name, "request screening failed: ", e.what());
      early = PlainError(500, "internal error");
    }
    // A chunked body's length is unknown: allow the most.
    linger_bytes_ =
        parser_->content_length()
            ? std::clamp<size_t>(*parser_->content_length(), kMinLingerBytes, kMaxLingerBytes)
            : (parser_->chunked() ? kMaxLingerBytes : kMinLingerBytes);
    body_expected_ = !parser_->is_done();
    if (early && !body_expected_) {
      // Nothing to skip: answer as any request, keeping the connection.
      BeginExchange(parser_->get().keep_alive());
      parser_.reset();
      return Respond(seq_, *std::move(early));
    }
    if (early) return AnswerAndClose(*std::move(early));
    parser_->body_limit(server_->options().max_body_bytes);
    if (auto length = parser_->content_length();
        length && *length > server_->options().max_body_bytes) {
      return AnswerAndClose(
          PlainError(413, absl::StrCat("the request body is larger than ",
                                       server_->options().max_body_bytes, " bytes")));
    }
    auto expect = header[http::field::expect];
    if (absl::EqualsIgnoreCase(absl::string_view(expect.data(), expect.size()), "100-continue")) {
      // The client waits for this before sending a large body.
      auto note = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(stream_, asio::buffer(*note),
                        [self = Self(), note](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = Self()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnReadError(beast::error_code ec) {
    CancelTimer();
    const bool started = buffer_.size() > 0 || (parser_ && parser_->got_some());
    if (timed_out_) {
      if (!started) return Close();
      body_expected_ = false;  // Too slow to wait for: close after the answer.
      return AnswerAndClose(PlainError(408, "the request was not received in time"));
    }
    if (ec == http::error::header_limit) {
      return AnswerAndClose(
          PlainError(431, absl::StrCat("the request headers are larger than ",
                                       server_->options().max_header_bytes, " bytes")));
    }
    if (ec == http::error::buffer_overflow) {
      // A chunk header or trailer section that does not fit the read buffer.
      return AnswerAndClose(
          PlainError(431, absl::StrCat("a chunk header or trailer section is larger than ",
                                       ReadBufferLimit(server_->options()) / 1024, " KiB")));
    }
    if (parser_ && !parser_->refusal().empty()) {
      body_expected_ = false;  // What follows is not framed in a way we read.
      return AnswerAndClose(PlainError(400, parser_->refusal()));
    }
    if (ec == http::error::body_limit) {
      // A chunked body grew over the limit (a declared Content-Length was
      // refused in OnHeader): the client is still sending the rest.
      linger_bytes_ = kMaxLingerBytes;
      body_expected_ = true;
      return AnswerAndClose(
          PlainError(413, absl::StrCat("the request body is larger than ",
                                       server_->options().max_body_bytes, " bytes")));
    }
    // The client closed or reset the connection, or sent half a request.
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != http::make_error_code(http::error::end_of_stream).category()) {
      return Close();
    }
    body_expected_ = false;  // What follows a framing error is not worth reading.
    AnswerAndClose(PlainError(400, absl::StrCat("malformed HTTP request: ", ec.message())));
  }

  void OnBody(beast::error_code ec) {
    if (phase_ != Phase::kReading) return;
    CancelTimer();
    if (ec) return OnReadError(ec);
    HttpRequest request = parser_->release();
    parser_.reset();
    body_expected_ = false;  // All of it is in.
    BeginExchange(request.keep_alive());
    ReadAhead();
    auto exchange = MakeExchange();
    try {
      server_->handler()->Handle(std::move(request), std::move(exchange));
    } catch (const std::exception& e) {
      LogError(server_->options().name, "request handler failed: ", e.what());
      Respond(seq_, PlainError(500, "internal error"));
    }
  }

  std::shared_ptr<HttpExchange> MakeExchange();

  // A new request's answer begins.
  void BeginExchange(bool keep_alive) {
    keep_alive_ = keep_alive;
    phase_ = Phase::kPending;
    ++seq_;
    head_queued_ = streaming_ = complete_ = peer_eof_ = false;
    out_.Reopen();
    on_closed_ = nullptr;
    keepalive_chunk_.clear();
  }

  // While a response is pending: keep what the client sends (a pipelined
  // request) up to the read-ahead bound, and notice when it goes away.
  void ReadAhead() {
    if (reading_ahead_ || peer_eof_ || phase_ != Phase::kPending) return;
    const size_t limit = server_->options().max_read_ahead_bytes;
    const size_t room = limit - std::min(limit, buffer_.size());
    if (room == 0) return;  // Back-pressure: TCP flow control holds the client.
    reading_ahead_ = true;
    stream_.async_read_some(
        buffer_.prepare(std::min<size_t>(room, 4096)),
        [self = Self()](beast::error_code ec, size_t n) { self->OnReadAhead(ec, n); });
  }

  void OnReadAhead(beast::error_code ec, size_t n) {
    reading_ahead_ = false;
    if (!ec) buffer_.commit(n);
    if (phase_ == Phase::kAfterResponse) {
      if (ec && ec != asio::error::operation_aborted) return Close();
      return ReadHeader();
    }
    if (phase_ != Phase::kPending) return;
    if (!ec) return ReadAhead();
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      // Half-closed, or gone entirely: TCP tells the two apart only when we
      // send. The answer still goes out; the connection closes after it.
      peer_eof_ = true;
      keep_alive_ = false;
      return Probe();
    }
    ClientGone();
  }

  // Sends bytes the client ignores: a client that closed its socket answers
  // them with a reset, which the error wait below sees at once.
  void Probe() {
    // An HTTP/1.0 client must not get a 1xx, and its unframed stream has no
    // chunk a client would ignore: it gets the answer, then the close.
    if (probing_ || version_ < 11) return;
    if (!head_queued_ && !out_.writing()) {
      Enqueue("HTTP/1.1 100 Continue\r\n\r\n");
    } else if (streaming_ && !keepalive_chunk_.empty()) {
      Enqueue(Chunk(keepalive_chunk_));
    } else if (!streaming_) {
      return;  // The whole answer is on its way; its write tells.
    }
    probing_ = true;
    Socket().async_wait(tcp::socket::wait_error, [self = Self()](beast::error_code ec) {
      self->probing_ = false;
      if (!ec && self->phase_ == Phase::kPending) self->ClientGone();
    });
  }

  // ---- Writing.
  // Every response is one stream of out_: its bytes queue (merged) behind
  // the write in flight, and it finishes once its last byte is written.
  void Enqueue(std::string bytes) {
    if (phase_ == Phase::kClosed) return;
    queued_bytes_ += bytes.size();
    if (queued_bytes_ > server_->options().max_write_queue_bytes) {
      LogWarning(server_->options().name, "closing a connection whose client stopped reading");
      return ClientGone();
    }
    out_.Push(std::move(bytes));
    Flush();
  }

  void Flush() {
    if (phase_ == Phase::kClosed) return;
    switch (out_.Next()) {
      case Output::Step::kWrite:
        queued_bytes_ = 0;  // Everything queued was merged into this write.
        asio::async_write(stream_, asio::buffer(out_.in_flight()),
                          [self = Self()](beast::error_code ec, size_t) {
                            self->out_.WriteDone(!ec);
                            if (ec) return self->ClientGone();
                            self->Flush();
                          });
        return;
      case Output::Step::kFinish:
        if (phase_ == Phase::kPending) ResponseDone();
        return;
      case Output::Step::kNone:
        return;
    }
  }

  void ResponseDone() {
    if (auto callback = std::move(on_closed_)) {
      on_closed_ = nullptr;
      callback(true);
    }
    if (!KeepAlive()) return LingeringClose();
    phase_ = Phase::kAfterResponse;
    if (reading_ahead_) {
      beast::error_code ignored;
      Socket().cancel(ignored);  // OnReadAhead goes on to the next request.
    } else {
      ReadHeader();
    }
  }

  // An answer that ends the connection (an error found while reading, or a
  // request screened out before its body was read).
  void AnswerAndClose(HttpResponse r) {
    BeginExchange(/*keep_alive=*/false);
    Respond(seq_, std::move(r));
  }

  // Reads and throws away what the client still sends (bounded in bytes and
  // time) before closing, so a client still sending its body reads the
  // answer instead of a reset. No FIN while a body is still expected: some
  // clients treat the server's FIN while they send as a failed request.
  // Over TLS the end is a close_notify (the client can tell it from a
  // cut), and the wait for the client's own is bounded the same way.
  void LingeringClose() {
    phase_ = Phase::kLingering;
    ArmTimer(kLingerTime);
    if constexpr (kTls) {
      if (!body_expected_) {
        beast::error_code ignored;
        if (reading_ahead_) Socket().cancel(ignored);
        stream_.async_shutdown([self = Self()](beast::error_code) { self->Close(); });
        return;
      }
    } else if (!body_expected_) {
      beast::error_code ignored;
      Socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    Discard(0, /*raw=*/false);
  }

  // `raw`: from the TCP socket under a TLS stream (a plaintext client).
  void Discard(size_t total, bool raw) {
    if (phase_ != Phase::kLingering) return;
    auto on_read = [self = Self(), total, raw](beast::error_code ec, size_t n) {
      if (ec || self->timed_out_ || total + n >= self->linger_bytes_) return self->Close();
      self->Discard(total + n, raw);
    };
    if (raw) {
      Socket().async_read_some(asio::buffer(discard_), std::move(on_read));
    } else {
      stream_.async_read_some(asio::buffer(discard_), std::move(on_read));
    }
  }

  void ClientGone() {
    if (phase_ == Phase::kClosed) return;
    if (auto callback = std::move(on_closed_)) {
      on_closed_ = nullptr;
      callback(false);
    }
    Close();
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    CancelTimer();
    beast::error_code ignored;
    Socket().close(ignored);
    out_.Break();  // A write in flight keeps its buffer until it fails.
    server_->Remove(this);
  }

  void ArmTimer(absl::Duration d) {
    timed_out_ = false;
    uint64_t generation = ++timer_generation_;
    timer_.expires_after(absl::ToChronoNanoseconds(d));
    timer_.async_wait([self = Self(), generation](beast::error_code ec) {
      if (ec || generation != self->timer_generation_) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->Socket().cancel(ignored);
    });
  }
  void CancelTimer() {
    ++timer_generation_;
    timer_.cancel();
  }

  std::shared_ptr<ssl::context> tls_;  // Null for plaintext; outlives stream_.
  Stream stream_;
  asio::steady_timer timer_;
  HttpServer::Impl* const server_;
  Phase phase_ = Phase::kReading;
  // Bounded: what Beast must hold at once to frame a request (a header, a
  // chunk header, a trailer section) cannot grow past it.
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  unsigned version_ = 11;
  size_t linger_bytes_ = kMinLingerBytes;
  bool body_expected_ = false;  // The request being read has a body to come.
  uint64_t timer_generation_ = 0;
  bool timed_out_ = false;

  // The request being answered.
  uint64_t seq_ = 0;
  bool keep_alive_ = true;
  bool head_queued_ = false;
  bool streaming_ = false;
  bool complete_ = false;  // The last byte of the response is queued.
  std::string keepalive_chunk_;
  std::function<void(bool)> on_closed_;
  bool reading_ahead_ = false;
  bool peer_eof_ = false;
  bool probing_ = false;

  using Output = WriteQueue<std::string, AppendBytes>;
  Output out_;
  size_t queued_bytes_ = 0;  // Queued behind the write in flight.
  std::array<char, 4096> discard_;
  std::array<unsigned char, 1> first_byte_;
};

class Exchange final : public HttpExchange {
 public:
  Exchange(std::shared_ptr<Gate> gate, std::weak_ptr<ConnectionBase> connection, uint64_t seq,
           asio::any_io_executor executor)
      : gate_(std::move(gate)),
        connection_(std::move(connection)),
        seq_(seq),
        executor_(std::move(executor)) {}

  void Respond(HttpResponse response) override {
    Post([r = std::move(response)](ConnectionBase& c, uint64_t seq) mutable {
      c.Respond(seq, std::move(r));
    });
  }
  void StartStream(HttpResponse head, std::string keepalive_chunk) override {
    Post([h = std::move(head), k = std::move(keepalive_chunk)](ConnectionBase& c,
                                                               uint64_t seq) mutable {
      c.StartStream(seq, std::move(h), std::move(k));
    });
  }
  void Write(std::string data) override {
    Post([d = std::move(data)](ConnectionBase& c, uint64_t seq) mutable {
      c.Write(seq, std::move(d));
    });
  }
  void End() override {
    Post([](ConnectionBase& c, uint64_t seq) { c.End(seq); });
  }
  void Abort() override {
    Post([](ConnectionBase& c, uint64_t seq) { c.Abort(seq); });
  }
  void OnClosed(std::function<void(bool)> callback) override {
    Post([cb = std::move(callback)](ConnectionBase& c, uint64_t seq) mutable {
      c.SetOnClosed(seq, std::move(cb));
    });
  }
  asio::any_io_executor executor() const override { return executor_; }

 private:
  template <typename F>
  void Post(F f) {
    // The reader lock only keeps the io_context alive while posting.
    absl::ReaderMutexLock lock(&gate_->mu);
    if (!gate_->open) return;
    std::shared_ptr<ConnectionBase> c = connection_.lock();
    if (c == nullptr) return;
    asio::post(executor_,
               [c = std::move(c), seq = seq_, f = std::move(f)]() mutable { f(*c, seq); });
  }

  std::shared_ptr<Gate> gate_;
  std::weak_ptr<ConnectionBase> connection_;
  const uint64_t seq_;
  asio::any_io_executor executor_;
};

template <typename Stream>
std::shared_ptr<HttpExchange> Connection<Stream>::MakeExchange() {
  return std::make_shared<Exchange>(server_->gate(), weak_from_this(), seq_,
                                    stream_.get_executor());
}

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (ec && OutOfDescriptors(ec)) {
      // The connection stays in the listen backlog. Accepting again at once
      // would fail again at once: the loop spun a core while the process
      // was at its open-file limit. Wait, then try.
      NoteOutOfDescriptors();
      accept_retry_.expires_after(absl::ToChronoNanoseconds(kAcceptRetry));
      accept_retry_.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && acceptor_.is_open()) Accept();
      });
      return;
    }
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      std::shared_ptr<ssl::context> tls = tls_ ? tls_->Current(absl::Now()) : nullptr;
      std::shared_ptr<ConnectionBase> connection;
      {
        absl::MutexLock lock(&mu_);
        if (connections_.size() < options_.max_connections) {
          if (tls) {
            connection = std::make_shared<Connection<ssl::stream<tcp::socket>>>(std::move(socket),
                                                                                tls, this);
          } else {
            connection =
                std::make_shared<Connection<tcp::socket>>(std::move(socket), nullptr, this);
          }
          connections_.emplace(connection.get(), connection);
        }
      }
      if (connection) {
        connection->Start();
      } else {
        RejectBusy(std::move(socket));
      }
    }
    if (acceptor_.is_open()) Accept();
  });
}

bool HttpServer::Impl::OutOfDescriptors(const beast::error_code& ec) {
  return ec == asio::error::no_descriptors ||
         (ec.category() == boost::system::system_category() &&
          (ec.value() == ENFILE || ec.value() == ENOBUFS || ec.value() == ENOMEM));
}

// One line per interval, with how many accepts waited since the last one.
void HttpServer::Impl::NoteOutOfDescriptors() {
  ++fd_waits_;
  const absl::Time now = absl::Now();
  if (now - last_fd_report_ < kFdReportInterval) return;
  last_fd_report_ = now;
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  LogWarning(options_.name, "out of file descriptors (limit ", limit.rlim_cur, ", ", connections(),
             " connections open): new connections wait in the backlog (", fd_waits_,
             " waits since the last report); raise the limit (ulimit -n) or lower "
             "--max_connections");
  fd_waits_ = 0;
}

// Over the connection cap: a short 503, then close.
void HttpServer::Impl::RejectBusy(tcp::socket socket) {
  static const std::string kBusy = [] {
    std::string body =
        R"({"error":{"message":"the server is at its connection limit; retry later",)"
        R"("type":"server_error","param":null,"code":"too_many_connections"}})";
    return absl::StrCat(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nConnection: close\r\nContent-Length: ",
        body.size(), "\r\n\r\n", body);
  }();
  auto s = std::make_shared<tcp::socket>(std::move(socket));
  asio::async_write(*s, asio::buffer(kBusy), [s](beast::error_code, size_t) {
    beast::error_code ignored;
    s->shutdown(tcp::socket::shutdown_both, ignored);
    s->close(ignored);
  });
}

void HttpServer::Impl::StopAccepting() {
  if (draining_.exchange(true)) return;
  asio::post(ioc_, [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
  });
  std::vector<std::shared_ptr<ConnectionBase>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [ptr, c] : connections_) all.push_back(c);
  }
  for (auto& c : all) {
    asio::post(c->executor(), [c] { c->CloseIfIdle(); });
  }
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                              HttpHandler* handler) {
  std::unique_ptr<ServerTlsContext> tls;
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.name, ": HTTPS needs both a certificate and a key file"));
    }
    auto loaded =
        ServerTlsContext::Load(options.tls_cert_file, options.tls_key_file, options.tls_refresh);
    if (!loaded.ok()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat(options.name, ": ", loaded.status().message()));
    }
    tls = *std::move(loaded);
  }
  if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
                      limit.rlim_cur < options.max_connections + 64) {
    LogWarning(options.name, "the open-file limit (", limit.rlim_cur,
               ") is below max_connections (", options.max_connections,
               ") plus room for upstream calls: past the limit new connections wait in the "
               "backlog; raise it (ulimit -n) or lower max_connections");
  }
  auto impl = std::make_unique<Impl>(std::move(options), handler, std::move(tls));
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;
int HttpServer::port() const { return impl_->port(); }
size_t HttpServer::connections() const { return impl_->connections(); }
void HttpServer::StopAccepting() { impl_->StopAccepting(); }

}  // namespace moa::net
