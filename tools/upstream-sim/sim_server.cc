#include "tools/upstream-sim/sim_server.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/net/listen.h"
#include "tools/upstream-sim/answer.h"

namespace moa::sim {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using nlohmann::json;

namespace {

double UnixSeconds() { return static_cast<double>(absl::ToUnixMicros(absl::Now())) / 1e6; }

enum class Fault { kNone, kHttp500, kHttp429, kHang, kReset, kMalformed };

absl::string_view FaultName(Fault f) {
  switch (f) {
    case Fault::kNone:
      return "none";
    case Fault::kHttp500:
      return "http_500";
    case Fault::kHttp429:
      return "http_429";
    case Fault::kHang:
      return "hang";
    case Fault::kReset:
      return "reset";
    case Fault::kMalformed:
      return "malformed";
  }
  return "none";
}

std::string ErrorBody(absl::string_view message, absl::string_view type, absl::string_view code) {
  return json{{"error",
               {{"message", message},
                {"type", type},
                {"param", nullptr},
                {"code", code.empty() ? json(nullptr) : json(code)}}}}
      .dump();
}

// The log of chat requests, for tests and demos to see what each model was
// asked and how each exchange ended. Bounded: the oldest entries go first.
class RequestLog {
 public:
  explicit RequestLog(size_t cap) : cap_(cap) {}

  int64_t Add(std::string model, json messages, json params, bool stream, Fault fault) {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t id = next_id_++;
    entries_.push_back({id, std::move(model), std::move(messages), std::move(params), stream,
                        UnixSeconds(), 0, "in_progress", std::string(FaultName(fault))});
    while (entries_.size() > cap_) entries_.pop_front();
    return id;
  }

  // The first outcome sticks: a stream that completed is not "closed" later.
  void Finish(int64_t id, absl::string_view outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    if (entries_.empty() || id < entries_.front().id) return;
    Entry& e = entries_[static_cast<size_t>(id - entries_.front().id)];
    if (e.outcome != "in_progress") return;
    e.outcome = std::string(outcome);
    e.ended = UnixSeconds();
  }

  std::string Json(int64_t since) const {
    std::lock_guard<std::mutex> lock(mu_);
    json list = json::array();
    for (const Entry& e : entries_) {
      if (e.id <= since) continue;
      list.push_back({{"id", e.id},
                      {"model", e.model},
                      {"messages", e.messages},
                      {"params", e.params},
                      {"stream", e.stream},
                      {"started_at", e.started},
                      {"ended_at", e.ended > 0 ? json(e.ended) : json(nullptr)},
                      {"outcome", e.outcome},
                      {"fault", e.fault}});
    }
    return json{{"requests", std::move(list)}}.dump();
  }

  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.clear();
  }

  // Counts by outcome, cheap enough to poll under load.
  std::string StatsJson() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, int64_t> by_outcome;
    for (const Entry& e : entries_) ++by_outcome[e.outcome];
    return json{{"requests", next_id_ - 1}, {"logged", entries_.size()}, {"by_outcome", by_outcome}}
        .dump();
  }

 private:
  struct Entry {
    int64_t id;
    std::string model;
    json messages;
    json params;
    bool stream;
    double started;
    double ended;
    std::string outcome;
    std::string fault;
  };
  mutable std::mutex mu_;
  const size_t cap_;
  int64_t next_id_ = 1;
  std::deque<Entry> entries_;
};

}  // namespace

class SimServer::Impl {
 public:
  explicit Impl(SimOptions options)
      : options_(std::move(options)),
        log_(options_.max_log_entries),
        acceptor_(ioc_),
        rng_(options_.seed) {}

  ~Impl() {
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }

  absl::Status Listen() {
    if (absl::Status s = moa::net::Listen(acceptor_, options_.host, options_.port); !s.ok()) {
      return s;
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
    return absl::OkStatus();
  }

  int port() const { return port_; }
  const SimOptions& options() const { return options_; }
  RequestLog& log() { return log_; }

  Fault DrawFault(const FaultRates& r) {
    std::lock_guard<std::mutex> lock(rng_mu_);
    double x = std::uniform_real_distribution<double>(0, 1)(rng_);
    if ((x -= r.http_500) < 0) return Fault::kHttp500;
    if ((x -= r.http_429) < 0) return Fault::kHttp429;
    if ((x -= r.hang) < 0) return Fault::kHang;
    if ((x -= r.reset) < 0) return Fault::kReset;
    if ((x -= r.malformed) < 0) return Fault::kMalformed;
    return Fault::kNone;
  }

  absl::Duration SampleTtft(const Profile& p) {
    std::lock_guard<std::mutex> lock(rng_mu_);
    return p.SampleTimeToFirstToken(rng_) * options_.latency_scale;
  }

 private:
  void Accept();

  const SimOptions options_;
  RequestLog log_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  int port_ = 0;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

namespace {

// One client connection. All its handlers run on its strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, SimServer::Impl& sim)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), sim_(sim) {}

  void Start() { DoRead(); }

 private:
  using Response = http::response<http::string_body>;

  void DoRead() {
    parser_.emplace();
    parser_->body_limit(16 << 20);
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      Send(Reply(http::status::payload_too_large,
                 ErrorBody("request body too large", "invalid_request_error", "")));
      return;
    }
    if (ec) return Close();
    http::request<http::string_body> req = parser_->release();
    keep_alive_ = req.keep_alive();
    Route(req);
  }

  Response Reply(http::status status, std::string body,
                 absl::string_view content_type = "application/json") {
    Response res{status, 11};
    res.set(http::field::server, "moa-upstream-sim");
    res.set(http::field::content_type, std::string(content_type));
    res.keep_alive(keep_alive_);
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
  }

  void Send(Response res) {
    auto sp = std::make_shared<Response>(std::move(res));
    http::async_write(socket_, *sp, [self = shared_from_this(), sp](beast::error_code ec, size_t) {
      if (ec || !self->keep_alive_) return self->Close();
      self->DoRead();
    });
  }

  void Close() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  void Route(const http::request<http::string_body>& req) {
    absl::string_view target(req.target().data(), req.target().size());
    absl::string_view path = target.substr(0, target.find('?'));
    if (req.method() == http::verb::get && path == "/healthz") {
      return Send(Reply(http::status::ok, "ok\n", "text/plain"));
    }
    if (req.method() == http::verb::get && path == "/v1/models") return Send(Models());
    if (req.method() == http::verb::get && path == "/sim/stats") {
      return Send(Reply(http::status::ok, sim_.log().StatsJson()));
    }
    if (path == "/sim/requests") {
      if (req.method() == http::verb::delete_) {
        sim_.log().Clear();
        return Send(Reply(http::status::ok, "{}"));
      }
      int64_t since = 0;
      if (size_t p = target.find("since="); p != absl::string_view::npos) {
        (void)absl::SimpleAtoi(target.substr(p + 6), &since);
      }
      return Send(Reply(http::status::ok, sim_.log().Json(since)));
    }
    if (req.method() == http::verb::post && path == "/v1/chat/completions") return Chat(req);
    Send(Reply(http::status::not_found, ErrorBody(absl::StrCat("no route for ", target),
                                                  "invalid_request_error", "not_found")));
  }

  Response Models() {
    json data = json::array();
    for (const auto& [name, profile] : sim_.options().profiles.models) {
      data.push_back(
          {{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "moa-upstream-sim"}});
    }
    return Reply(http::status::ok, json{{"object", "list"}, {"data", data}}.dump());
  }

  void Chat(const http::request<http::string_body>& req) {
    const std::string& key = sim_.options().api_key;
    if (!key.empty()) {
      auto auth = req.find(http::field::authorization);
      if (auth == req.end() || auth->value() != absl::StrCat("Bearer ", key)) {
        return Send(Reply(
            http::status::unauthorized,
            ErrorBody("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")));
      }
    }
    json body = json::parse(req.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return Send(Reply(http::status::bad_request, ErrorBody("request body is not a JSON object",
                                                             "invalid_request_error", "")));
    }
    if (!body.contains("model") || !body["model"].is_string()) {
      return Send(Reply(http::status::bad_request,
                        ErrorBody("'model' is required", "invalid_request_error", "")));
    }
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
      return Send(Reply(http::status::bad_request, ErrorBody("'messages' must be a non-empty array",
                                                             "invalid_request_error", "")));
    }
    std::vector<SimMessage> messages;
    for (const json& m : body["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
        return Send(Reply(http::status::bad_request, ErrorBody("each message needs a string 'role'",
                                                               "invalid_request_error", "")));
      }
      SimMessage sm{m["role"].get<std::string>(), ""};
      if (auto c = m.find("content"); c != m.end()) {
        if (c->is_string()) {
          sm.content = c->get<std::string>();
        } else if (c->is_array()) {
          for (const json& part : *c) {
            if (part.is_object() && part.value("type", "") == "text") {
              sm.content += part.value("text", "");
            }
          }
        }
      }
      messages.push_back(std::move(sm));
    }
    // A keep-alive connection carries one request after another: start afresh.
    done_ = false;
    model_ = body["model"].get<std::string>();
    stream_ = body.value("stream", false);
    include_usage_ = stream_ && body.contains("stream_options") &&
                     body["stream_options"].is_object() &&
                     body["stream_options"].value("include_usage", false);
    const Profile& profile = sim_.options().profiles.For(model_);
    int length = profile.answer_tokens;
    finish_reason_ = "stop";
    for (const char* field : {"max_tokens", "max_completion_tokens"}) {
      if (body.contains(field) && body[field].is_number_integer()) {
        int max_tokens = body[field].get<int>();
        if (max_tokens < 1) {
          return Send(Reply(
              http::status::bad_request,
              ErrorBody(absl::StrCat("'", field, "' must be >= 1"), "invalid_request_error", "")));
        }
        if (max_tokens < length) {
          length = max_tokens;
          finish_reason_ = "length";
        }
      }
    }
    fault_ = sim_.DrawFault(profile.faults);
    json params = json::object();  // Sampling parameters as received, for tests to check.
    for (const char* key :
         {"temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop"}) {
      if (body.contains(key)) params[key] = body[key];
    }
    log_id_ = sim_.log().Add(model_, body["messages"], std::move(params), stream_, fault_);
    tokens_ = AnswerTokens(model_, messages, length);
    next_token_ = 0;
    prompt_tokens_ = PromptTokens(messages);
    double scale = sim_.options().latency_scale;
    token_interval_ = absl::Seconds(scale / profile.tokens_per_second);
    ttft_ = sim_.SampleTtft(profile);

    switch (fault_) {
      case Fault::kHttp500:
        sim_.log().Finish(log_id_, "injected_error");
        return Send(Reply(http::status::internal_server_error,
                          ErrorBody("The simulator injected a server error.", "server_error", "")));
      case Fault::kHttp429: {
        sim_.log().Finish(log_id_, "injected_error");
        Response res = Reply(http::status::too_many_requests,
                             ErrorBody("Rate limit reached (simulated).", "rate_limit_error",
                                       "rate_limit_exceeded"));
        res.set(http::field::retry_after, absl::StrCat(profile.faults.retry_after_seconds));
        return Send(std::move(res));
      }
      case Fault::kHang:
        WatchForClose();  // Never answers; ends when the client gives up.
        return;
      default:
        break;
    }
    if (!stream_) return NonStreaming();
    StartStream();
  }

  // While a response is pending, a read on the socket tells us the moment
  // the client closes the connection (EOF or reset).
  void WatchForClose() {
    watching_ = true;
    socket_.async_read_some(
        net::buffer(watch_buf_),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnWatch(ec, n); });
  }

  void OnWatch(beast::error_code ec, size_t n) {
    if (!ec) {  // The next request, sent as soon as this response ended: keep its bytes.
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
    if (done_) return;
    done_ = true;
    timer_.cancel();
    sim_.log().Finish(log_id_, "client_closed");
    Close();
  }

  // Ends a pending response's watch, then reads the next request.
  void ResumeReading() {
    if (!keep_alive_) {
      Close();
      return;
    }
    if (watching_) {
      resume_after_watch_ = true;
      beast::error_code ignored;
      socket_.cancel(ignored);
    } else {
      DoRead();
    }
  }

  void NonStreaming() {
    WatchForClose();
    timer_.expires_after(
        absl::ToChronoNanoseconds(ttft_ + token_interval_ * static_cast<double>(tokens_.size())));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->done_) return;
      self->done_ = true;
      if (self->fault_ == Fault::kReset) return self->Reset();
      std::string text;
      for (const std::string& t : self->tokens_) text += t;
      std::string out;
      if (self->fault_ == Fault::kMalformed) {
        out = "{\"id\": \"chatcmpl-sim\", \"choices\": [";
      } else {
        out = json{{"id", absl::StrCat("chatcmpl-sim-", self->log_id_)},
                   {"object", "chat.completion"},
                   {"created", absl::ToUnixSeconds(absl::Now())},
                   {"model", self->model_},
                   {"choices",
                    {{{"index", 0},
                      {"message", {{"role", "assistant"}, {"content", text}}},
                      {"finish_reason", self->finish_reason_}}}},
                   {"usage", self->UsageJson()}}
                  .dump();
      }
      self->sim_.log().Finish(self->log_id_,
                              self->fault_ == Fault::kNone ? "completed" : "injected_error");
      auto sp = std::make_shared<Response>(self->Reply(http::status::ok, std::move(out)));
      http::async_write(self->socket_, *sp, [self, sp](beast::error_code ec, size_t) {
        if (ec) return self->Close();
        self->ResumeReading();
      });
    });
  }

  json UsageJson() const {
    int completion = static_cast<int>(tokens_.size());
    return {{"prompt_tokens", prompt_tokens_},
            {"completion_tokens", completion},
            {"total_tokens", prompt_tokens_ + completion}};
  }

  std::string ChunkEvent(absl::string_view delta_json, absl::string_view finish_reason_json) {
    return absl::StrCat("data: {\"id\":\"chatcmpl-sim-", log_id_,
                        "\",\"object\":\"chat.completion.chunk\",\"created\":", created_,
                        ",\"model\":", json(model_).dump(),
                        ",\"choices\":[{\"index\":0,\"delta\":", delta_json,
                        ",\"finish_reason\":", finish_reason_json, "}]}\n\n");
  }

  void StartStream() {
    created_ = absl::ToUnixSeconds(absl::Now());
    header_.emplace(http::status::ok, 11);
    header_->set(http::field::server, "moa-upstream-sim");
    header_->set(http::field::content_type, "text/event-stream");
    header_->set(http::field::cache_control, "no-cache");
    header_->keep_alive(keep_alive_);
    header_->chunked(true);
    serializer_.emplace(*header_);
    http::async_write_header(socket_, *serializer_,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               if (ec) return self->OnWriteError();
                               self->WatchForClose();
                               self->Wait(self->ttft_);
                             });
  }

  void Wait(absl::Duration d) {
    timer_.expires_after(absl::ToChronoNanoseconds(d));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->done_) return;
      self->StreamNext();
    });
  }

  // Writes the next batch of tokens. With a latency scale of 0 the whole
  // answer goes in one write; otherwise one tick of at least 20 ms at a time,
  // so fast profiles do not cost a timer per token.
  void StreamNext() {
    size_t half = tokens_.size() / 2;
    if (fault_ == Fault::kReset && next_token_ >= half && next_token_ > 0) {
      done_ = true;
      return Reset();
    }
    std::string out;
    if (next_token_ == 0) out += ChunkEvent(R"({"role":"assistant","content":""})", "null");
    size_t batch = tokens_.size();
    absl::Duration tick = absl::ZeroDuration();
    if (token_interval_ > absl::ZeroDuration()) {
      tick = std::max(token_interval_, absl::Milliseconds(20));
      batch = static_cast<size_t>(std::max(1.0, std::floor(tick / token_interval_)));
    }
    if (fault_ == Fault::kReset || fault_ == Fault::kMalformed) {
      if (next_token_ < half) batch = std::min(batch, half - next_token_);
    }
    size_t end = std::min(tokens_.size(), next_token_ + batch);
    for (; next_token_ < end; ++next_token_) {
      out += ChunkEvent(json{{"content", tokens_[next_token_]}}.dump(), "null");
      if (fault_ == Fault::kMalformed && next_token_ + 1 == half) {
        out += "data: {\"choices\": [{\"delta\": {\"content\": \"trunc\n\n";
      }
    }
    bool last = next_token_ >= tokens_.size() && fault_ != Fault::kReset;
    if (last) {
      out += ChunkEvent("{}", json(finish_reason_).dump());
      if (include_usage_) {
        out += absl::StrCat("data: {\"id\":\"chatcmpl-sim-", log_id_,
                            "\",\"object\":\"chat.completion.chunk\",\"created\":", created_,
                            ",\"model\":", json(model_).dump(),
                            ",\"choices\":[],\"usage\":", UsageJson().dump(), "}\n\n");
      }
      out += "data: [DONE]\n\n";
    }
    auto data = std::make_shared<std::string>(std::move(out));
    net::async_write(socket_, http::make_chunk(net::buffer(*data)),
                     [self = shared_from_this(), data, last, tick](beast::error_code ec, size_t) {
                       if (ec) return self->OnWriteError();
                       if (self->done_) return;
                       if (!last) return self->Wait(tick);
                       self->FinishStream();
                     });
  }

  void FinishStream() {
    auto data = std::make_shared<http::chunk_last<http::chunk_crlf>>(http::make_chunk_last());
    net::async_write(
        socket_, *data, [self = shared_from_this(), data](beast::error_code ec, size_t) {
          if (ec) return self->OnWriteError();
          if (self->done_) return;
          self->done_ = true;
          self->sim_.log().Finish(
              self->log_id_, self->fault_ == Fault::kMalformed ? "injected_error" : "completed");
          self->ResumeReading();
        });
  }

  void OnWriteError() {
    if (done_) return;
    done_ = true;
    sim_.log().Finish(log_id_, "client_closed");
    Close();
  }

  // Resets the connection (RST, not FIN), as a crashed upstream would.
  void Reset() {
    sim_.log().Finish(log_id_, "injected_error");
    beast::error_code ignored;
    socket_.set_option(net::socket_base::linger(true, 0), ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  net::steady_timer timer_;
  SimServer::Impl& sim_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;

  // The chat request being answered.
  int64_t log_id_ = 0;
  std::string model_;
  bool stream_ = false;
  bool include_usage_ = false;
  Fault fault_ = Fault::kNone;
  std::vector<std::string> tokens_;
  size_t next_token_ = 0;
  int prompt_tokens_ = 0;
  std::string finish_reason_;
  absl::Duration ttft_;
  absl::Duration token_interval_;
  int64_t created_ = 0;
  bool done_ = false;
  std::optional<http::response<http::empty_body>> header_;
  std::optional<http::response_serializer<http::empty_body>> serializer_;

  bool watching_ = false;
  bool resume_after_watch_ = false;
  std::array<char, 1024> watch_buf_;
};

}  // namespace

void SimServer::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(std::move(socket), *this)->Start();
    }
    if (acceptor_.is_open()) Accept();
  });
}

absl::StatusOr<std::unique_ptr<SimServer>> SimServer::Start(SimOptions options) {
  if (options.latency_scale < 0) {
    return absl::InvalidArgumentError("--latency_scale must be >= 0");
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  return std::unique_ptr<SimServer>(new SimServer(std::move(impl)));
}

SimServer::SimServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SimServer::~SimServer() = default;
int SimServer::port() const { return impl_->port(); }
std::string SimServer::RequestLogJson(int64_t since) const { return impl_->log().Json(since); }

}  // namespace moa::sim
