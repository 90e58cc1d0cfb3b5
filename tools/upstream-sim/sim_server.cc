#include "tools/upstream-sim/sim_server.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/verb.hpp>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/base/json.h"
#include "lib/net/http_server.h"
#include "tools/upstream-sim/answer.h"
#include "tools/upstream-sim/sim_anthropic.h"
#include "tools/upstream-sim/sim_gemini.h"
#include "tools/upstream-sim/sim_request.h"
#include "tools/upstream-sim/structured.h"

namespace moa::sim {

namespace http = boost::beast::http;
using json = moa::json::Json;

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
  return moa::json::Dump(json{{"error",
                               {{"message", message},
                                {"type", type},
                                {"param", nullptr},
                                {"code", code.empty() ? json(nullptr) : json(code)}}}});
}

// The log of chat requests, for tests and demos to see what each model was
// asked and how each exchange ended. Bounded: the oldest entries go first.
class RequestLog {
 public:
  explicit RequestLog(size_t cap) : cap_(cap) {}

  int64_t Add(std::string model, json messages, json params, bool stream, Fault fault,
              std::string continuation, std::string answer, std::string request_id,
              std::string traceparent) {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t id = next_id_++;
    entries_.push_back({id, std::move(model), std::move(messages), std::move(params), stream,
                        UnixSeconds(), 0, "in_progress", std::string(FaultName(fault)),
                        std::move(continuation), std::move(answer), std::move(request_id),
                        std::move(traceparent)});
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
                      {"fault", e.fault},
                      {"continuation", e.continuation},
                      {"answer", e.answer},
                      {"request_id", e.request_id},
                      {"traceparent", e.traceparent}});
    }
    return moa::json::Dump(json{{"requests", std::move(list)}});
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
    return moa::json::Dump(
        json{{"requests", next_id_ - 1}, {"logged", entries_.size()}, {"by_outcome", by_outcome}});
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
    std::string continuation;  // none, prefill or instruction.
    std::string answer;        // The text planned, even if the stream was cut.
    std::string request_id;    // Headers as received (x-request-id, traceparent).
    std::string traceparent;
  };
  mutable std::mutex mu_;
  const size_t cap_;
  int64_t next_id_ = 1;
  std::deque<Entry> entries_;
};

}  // namespace

class SimServer::Impl final : public moa::net::HttpHandler {
 public:
  explicit Impl(SimOptions options)
      : options_(std::move(options)), log_(options_.max_log_entries), rng_(options_.seed) {}

  absl::Status Listen() {
    auto server = moa::net::HttpServer::Start({.name = "moa-upstream-sim",
                                               .host = options_.host,
                                               .port = options_.port,
                                               .threads = options_.threads,
                                               .max_body_bytes = 64 << 20,
                                               .read_timeout = absl::Seconds(30),
                                               .max_connections = options_.max_connections,
                                               .tls_cert_file = options_.tls_cert_file,
                                               .tls_key_file = options_.tls_key_file},
                                              this);
    if (!server.ok()) return server.status();
    server_ = *std::move(server);
    return absl::OkStatus();
  }

  // Stops serving before the members the handlers use go away.
  ~Impl() override { server_.reset(); }

  int port() const { return server_->port(); }
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

  // Uniform in [0, 1).
  double Draw() {
    std::lock_guard<std::mutex> lock(rng_mu_);
    return std::uniform_real_distribution<double>(0, 1)(rng_);
  }

  absl::Duration SampleTtft(const Profile& p) {
    std::lock_guard<std::mutex> lock(rng_mu_);
    return p.SampleTimeToFirstToken(rng_) * options_.latency_scale;
  }

  std::optional<moa::net::HttpResponse> Screen(const moa::net::HttpRequestHeader& req) override;
  void Handle(moa::net::HttpRequest req, std::shared_ptr<moa::net::HttpExchange> ex) override;

 private:
  const SimOptions options_;
  RequestLog log_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
  std::unique_ptr<moa::net::HttpServer> server_;
};

namespace {

// A request header's value (at most 256 bytes), empty when absent.
std::string HeaderValue(const moa::net::HttpRequestHeader& req, const char* name) {
  auto it = req.find(name);
  if (it == req.end()) return "";
  return std::string(it->value().substr(0, 256));
}

// The model of a Gemini path /v1beta/models/{model}:streamGenerateContent
// or :generateContent.
std::optional<absl::string_view> GeminiModel(absl::string_view path) {
  constexpr absl::string_view kPrefix = "/v1beta/models/";
  if (!absl::StartsWith(path, kPrefix)) return std::nullopt;
  absl::string_view rest = path.substr(kPrefix.size());
  for (absl::string_view method : {":streamGenerateContent", ":generateContent"}) {
    if (absl::EndsWith(rest, method)) {
      absl::string_view model = rest.substr(0, rest.size() - method.size());
      if (model.empty() || model.find('/') != absl::string_view::npos) return std::nullopt;
      return model;
    }
  }
  return std::nullopt;
}

moa::net::HttpResponse Reply(int status, std::string body,
                             std::string content_type = "application/json") {
  moa::net::HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

// One chat completion being answered. Every member runs on the
// connection's strand: timers are bound to it and the exchange posts to it.
// Tokens follow one timeline fixed at the start (token k is due at
// ttft + k * interval), so timer lag never accumulates and a streamed answer
// ends when the same non-streamed one would.
class ChatStream : public std::enable_shared_from_this<ChatStream> {
 public:
  ChatStream(SimServer::Impl& sim, std::shared_ptr<moa::net::HttpExchange> exchange)
      : sim_(sim), exchange_(std::move(exchange)), timer_(exchange_->executor()) {}

  void Start(ChatRequestInfo info) {
    api_ = info.api;
    model_ = info.model;  // A copy: PlanAnswer reads info.model.
    stream_ = info.stream;
    include_usage_ = info.include_usage;
    const Profile& profile = sim_.options().profiles.For(model_);
    int length = profile.answer_tokens;
    finish_reason_ = "stop";
    if (info.max_tokens && *info.max_tokens < length) {
      length = static_cast<int>(*info.max_tokens);
      finish_reason_ = "length";
    }
    std::string fixed =
        QuestionInShare(info.messages, profile.answer_text_share) ? profile.answer_text : "";
    if (profile.structured_answers) {
      if (auto wanted = FindRequestedJson(info.response_format, info.messages)) {
        fixed = sim_.Draw() < *profile.structured_answers
                    ? moa::json::Dump(wanted->schema ? ConformingValue(*wanted->schema)
                                                     : json::object())
                    : std::string("Sure! Here is what you asked for.");
      }
    }
    PlannedAnswer answer =
        PlanAnswer(info, length, fixed, profile.tool_calls ? &profile.tool_arguments : nullptr);
    if (!answer.tool_call.empty()) {
      tool_call_ = answer.tool_call;
      finish_reason_ = "tool_calls";
    }
    const bool continues = answer.continuation != Continuation::Kind::kNone;
    fault_ = continues && profile.faults.spare_continuations ? Fault::kNone
                                                             : sim_.DrawFault(profile.faults);
    log_id_ = sim_.log().Add(model_, std::move(info.messages_json), std::move(info.params), stream_,
                             fault_, ContinuationName(answer.continuation),
                             absl::StrJoin(answer.tokens, ""), info.request_id, info.traceparent);
    tokens_ = std::move(answer.tokens);
    prompt_tokens_ = answer.prompt_tokens;
    reasoning_tokens_ = info.wants_reasoning ? profile.reasoning_tokens : 0;
    facts_ = {log_id_,
              model_,
              prompt_tokens_,
              tool_call_,
              ToolCallId(),
              reasoning_tokens_,
              info.include_thoughts};
    interval_ = absl::Seconds(sim_.options().latency_scale / profile.tokens_per_second);
    start_ = absl::Now();
    first_token_at_ = start_ + sim_.SampleTtft(profile);
    created_ = absl::ToUnixSeconds(start_);

    auto self = shared_from_this();
    exchange_->OnClosed([self](bool completed) { self->OnClosed(completed); });
    switch (fault_) {
      case Fault::kHttp500:
        sim_.log().Finish(log_id_, "injected_error");
        return exchange_->Respond(ServerError());
      case Fault::kHttp429: {
        sim_.log().Finish(log_id_, "injected_error");
        moa::net::HttpResponse r = RateLimited();
        r.headers.emplace_back("Retry-After", absl::StrCat(profile.faults.retry_after_seconds));
        return exchange_->Respond(std::move(r));
      }
      case Fault::kHang:
        return;  // Never answers; ends when the client gives up.
      default:
        break;
    }
    if (!stream_) return WaitUntil(DueTime(tokens_.size()), [self] { self->AnswerWhole(); });
    moa::net::HttpResponse head;
    head.content_type = "text/event-stream";
    head.headers.emplace_back("Cache-Control", "no-cache");
    exchange_->StartStream(std::move(head), ": keep-alive\n\n");
    WaitUntil(first_token_at_, [self] { self->StreamDue(); });
  }

 private:
  // The injected server error in the request's API: Anthropic's is a 529
  // overloaded_error (its busy signal), Gemini's a 500 INTERNAL.
  moa::net::HttpResponse ServerError() const {
    switch (api_) {
      case SimApi::kAnthropic:
        return Reply(529, anthropic::ErrorBody("overloaded_error", "Overloaded (simulated)."));
      case SimApi::kGemini:
        return Reply(500, gemini::ErrorBody(500, "INTERNAL", "The simulator injected an error."));
      case SimApi::kOpenAi:
        break;
    }
    return Reply(500, ErrorBody("The simulator injected a server error.", "server_error", ""));
  }

  moa::net::HttpResponse RateLimited() const {
    switch (api_) {
      case SimApi::kAnthropic:
        return Reply(429,
                     anthropic::ErrorBody("rate_limit_error", "Rate limit reached (simulated)."));
      case SimApi::kGemini:
        return Reply(429,
                     gemini::ErrorBody(429, "RESOURCE_EXHAUSTED", "Quota exceeded (simulated)."));
      case SimApi::kOpenAi:
        break;
    }
    return Reply(429, ErrorBody("Rate limit reached (simulated).", "rate_limit_error",
                                "rate_limit_exceeded"));
  }

  // When token k (0-based) is due; DueTime(n) is when the last one is.
  absl::Time DueTime(size_t k) const {
    return first_token_at_ + interval_ * static_cast<double>(k == 0 ? 0 : k - 1);
  }

  template <typename F>
  void WaitUntil(absl::Time when, F then) {
    timer_.expires_at(
        std::chrono::steady_clock::now() +
        absl::ToChronoNanoseconds(std::max(absl::ZeroDuration(), when - absl::Now())));
    timer_.async_wait([self = shared_from_this(), then](boost::system::error_code ec) {
      if (ec || self->done_) return;
      then();
    });
  }

  void OnClosed(bool completed) {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    sim_.log().Finish(log_id_, !completed                    ? "client_closed"
                               : fault_ == Fault::kMalformed ? "injected_error"
                                                             : "completed");
  }

  void AnswerWhole() {
    if (fault_ == Fault::kReset) return Reset();
    std::string text;
    for (const std::string& t : tokens_) text += t;
    std::string out;
    const int completion = static_cast<int>(tokens_.size());
    if (fault_ == Fault::kMalformed) {
      out = "{\"id\": \"chatcmpl-sim\", \"choices\": [";
    } else if (api_ == SimApi::kAnthropic) {
      out = anthropic::Whole(facts_, text, finish_reason_, completion);
    } else if (api_ == SimApi::kGemini) {
      out = gemini::Whole(facts_, text, finish_reason_, completion);
    } else {
      json message = {{"role", "assistant"}, {"content", text}};
      if (!tool_call_.empty()) {
        message["content"] = nullptr;
        message["tool_calls"] = {{{"id", ToolCallId()},
                                  {"type", "function"},
                                  {"function", {{"name", tool_call_}, {"arguments", text}}}}};
      }
      out = moa::json::Dump(json{
          {"id", absl::StrCat("chatcmpl-sim-", log_id_)},
          {"object", "chat.completion"},
          {"created", created_},
          {"model", model_},
          {"choices",
           {{{"index", 0}, {"message", std::move(message)}, {"finish_reason", finish_reason_}}}},
          {"usage", UsageJson()}});
    }
    exchange_->Respond(Reply(200, std::move(out)));
  }

  // A reasoning model's thinking is inside completion_tokens and said apart.
  json UsageJson() const {
    int completion = static_cast<int>(tokens_.size()) + reasoning_tokens_;
    json usage = {{"prompt_tokens", prompt_tokens_},
                  {"completion_tokens", completion},
                  {"total_tokens", prompt_tokens_ + completion}};
    if (reasoning_tokens_ > 0) {
      usage["completion_tokens_details"] = {{"reasoning_tokens", reasoning_tokens_}};
    }
    return usage;
  }

  std::string ChunkEvent(absl::string_view delta_json, absl::string_view finish_reason_json) const {
    return absl::StrCat("data: {\"id\":\"chatcmpl-sim-", log_id_,
                        "\",\"object\":\"chat.completion.chunk\",\"created\":", created_,
                        ",\"model\":", moa::json::Quote(model_),
                        ",\"choices\":[{\"index\":0,\"delta\":", delta_json,
                        ",\"finish_reason\":", finish_reason_json, "}]}\n\n");
  }

  // Sends every token that is due, then waits for the next tick (at least
  // 20 ms apart, so fast profiles do not cost a timer per token).
  void StreamDue() {
    const size_t half = tokens_.size() / 2;
    std::string out;
    if (next_token_ == 0 && !started_) {
      started_ = true;
      if (api_ == SimApi::kOpenAi)
        out += ChunkEvent(R"({"role":"assistant","content":""})", "null");
      if (api_ == SimApi::kAnthropic) out += anthropic::StreamStart(facts_);
      if (api_ == SimApi::kGemini) out += gemini::StreamStart(facts_);
    }
    const absl::Time now = absl::Now();
    while (next_token_ < tokens_.size() && DueTime(next_token_ + 1) <= now) {
      if (fault_ == Fault::kReset && next_token_ >= half && next_token_ > 0) break;
      out += TokenEvent(next_token_);
      ++next_token_;
      if (fault_ == Fault::kMalformed && next_token_ == half) {
        out += "data: {\"choices\": [{\"delta\": {\"content\": \"trunc\n\n";
      }
    }
    if (fault_ == Fault::kReset && next_token_ >= half && next_token_ > 0) {
      exchange_->Write(std::move(out));
      return Reset();
    }
    const bool last = next_token_ >= tokens_.size();
    if (last && api_ != SimApi::kOpenAi) {
      out += EndEvents();
    } else if (last) {
      out += ChunkEvent("{}", moa::json::Quote(finish_reason_));
      if (include_usage_) {
        out += absl::StrCat("data: {\"id\":\"chatcmpl-sim-", log_id_,
                            "\",\"object\":\"chat.completion.chunk\",\"created\":", created_,
                            ",\"model\":", moa::json::Quote(model_),
                            ",\"choices\":[],\"usage\":", moa::json::Dump(UsageJson()), "}\n\n");
      }
      out += "data: [DONE]\n\n";
    }
    exchange_->Write(std::move(out));
    if (last) return exchange_->End();
    absl::Time next = std::max(DueTime(next_token_ + 1), now + absl::Milliseconds(20));
    WaitUntil(next, [self = shared_from_this()] { self->StreamDue(); });
  }

  std::string ToolCallId() const {
    return absl::StrCat(api_ == SimApi::kAnthropic ? "toolu_sim_" : "call_sim_", log_id_);
  }

  // Token k in the request's API.
  std::string TokenEvent(size_t k) const {
    switch (api_) {
      case SimApi::kAnthropic:
        return anthropic::StreamToken(facts_, tokens_[k]);
      case SimApi::kGemini:
        return gemini::StreamToken(facts_, tokens_[k]);
      case SimApi::kOpenAi:
        break;
    }
    return ChunkEvent(moa::json::Dump(DeltaJson(k)), "null");
  }

  // The end of an Anthropic or Gemini stream (usage is always in it).
  std::string EndEvents() const {
    const int completion = static_cast<int>(tokens_.size());
    if (api_ == SimApi::kAnthropic) return anthropic::StreamEnd(facts_, finish_reason_, completion);
    std::string text;
    for (const std::string& t : tokens_) text += t;
    return gemini::StreamEnd(facts_, text, finish_reason_, completion);
  }

  // Token k of the answer as a delta: text, or a piece of the tool call's
  // arguments (the first piece names the call).
  json DeltaJson(size_t k) const {
    if (tool_call_.empty()) return {{"content", tokens_[k]}};
    json call = {{"index", 0}, {"function", {{"arguments", tokens_[k]}}}};
    if (k == 0) {
      call["id"] = ToolCallId();
      call["type"] = "function";
      call["function"]["name"] = tool_call_;
    }
    return {{"tool_calls", json::array({std::move(call)})}};
  }

  // Resets the connection (RST, not FIN), as a crashed upstream would.
  void Reset() {
    sim_.log().Finish(log_id_, "injected_error");
    done_ = true;
    exchange_->Abort();
  }

  SimServer::Impl& sim_;
  const std::shared_ptr<moa::net::HttpExchange> exchange_;
  boost::asio::steady_timer timer_;
  int64_t log_id_ = 0;
  SimApi api_ = SimApi::kOpenAi;
  AnswerFacts facts_;
  bool started_ = false;
  std::string model_;
  bool stream_ = false;
  bool include_usage_ = false;
  Fault fault_ = Fault::kNone;
  std::vector<std::string> tokens_;
  std::string tool_call_;  // Set: the answer calls this tool.
  size_t next_token_ = 0;
  int prompt_tokens_ = 0;
  int reasoning_tokens_ = 0;
  std::string finish_reason_;
  absl::Duration interval_;
  absl::Time start_;
  absl::Time first_token_at_;
  int64_t created_ = 0;
  bool done_ = false;
};

}  // namespace

std::optional<moa::net::HttpResponse> SimServer::Impl::Screen(
    const moa::net::HttpRequestHeader& req) {
  auto target_view = req.target();
  absl::string_view target(target_view.data(), target_view.size());
  absl::string_view path = target.substr(0, target.find('?'));
  const auto method = req.method();
  if (method == http::verb::get && path == "/healthz") return Reply(200, "ok\n", "text/plain");
  if (method == http::verb::get && path == "/v1/models") {
    json data = json::array();
    for (const auto& [name, profile] : options_.profiles.models) {
      data.push_back(
          {{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "moa-upstream-sim"}});
    }
    return Reply(200, moa::json::Dump(json{{"object", "list"}, {"data", data}}));
  }
  if (method == http::verb::get && path == "/sim/stats") return Reply(200, log_.StatsJson());
  if (path == "/sim/requests") {
    if (method == http::verb::delete_) {
      log_.Clear();
      return Reply(200, "{}");
    }
    int64_t since = 0;
    if (size_t p = target.find("since="); p != absl::string_view::npos) {
      (void)absl::SimpleAtoi(target.substr(p + 6), &since);
    }
    return Reply(200, log_.Json(since));
  }
  if (method == http::verb::post && path == "/v1/messages") {
    // Anthropic: the key in x-api-key, and every call names the API version.
    if (!options_.api_key.empty() && HeaderValue(req, "x-api-key") != options_.api_key) {
      return Reply(401, anthropic::ErrorBody("authentication_error", "invalid x-api-key"));
    }
    if (HeaderValue(req, "anthropic-version").empty()) {
      return Reply(400, anthropic::ErrorBody("invalid_request_error",
                                             "anthropic-version: header is required"));
    }
    return std::nullopt;
  }
  if (method == http::verb::post && GeminiModel(path)) {
    // Gemini: the key in x-goog-api-key (or ?key=); a stream only as SSE.
    const bool key_ok =
        HeaderValue(req, "x-goog-api-key") == options_.api_key ||
        target.find(absl::StrCat("key=", options_.api_key)) != absl::string_view::npos;
    if (!options_.api_key.empty() && !key_ok) {
      return Reply(400, gemini::ErrorBody(400, "INVALID_ARGUMENT",
                                          "API key not valid. Please pass a valid API key."));
    }
    if (absl::EndsWith(path, ":streamGenerateContent") &&
        target.find("alt=sse") == absl::string_view::npos) {
      return Reply(400, gemini::ErrorBody(400, "INVALID_ARGUMENT",
                                          "this simulator streams only as server-sent events "
                                          "(alt=sse)"));
    }
    return std::nullopt;
  }
  // Azure OpenAI: a deployment's path, an api-version, the key in api-key.
  const bool azure =
      absl::StartsWith(path, "/openai/deployments/") && absl::EndsWith(path, "/chat/completions");
  if (method == http::verb::post && azure &&
      target.find("api-version=") == absl::string_view::npos) {
    return Reply(
        400, ErrorBody("api-version is required", "invalid_request_error", "missing_api_version"));
  }
  if (method == http::verb::post && (path == "/v1/chat/completions" || azure)) {
    if (!options_.api_key.empty()) {
      auto auth = req.find(azure ? "api-key" : "authorization");
      std::string expected = azure ? options_.api_key : absl::StrCat("Bearer ", options_.api_key);
      if (auth == req.end() ||
          absl::string_view(auth->value().data(), auth->value().size()) != expected) {
        return Reply(401, ErrorBody("Incorrect API key provided.", "invalid_request_error",
                                    "invalid_api_key"));
      }
    }
    return std::nullopt;
  }
  return Reply(
      404, ErrorBody(absl::StrCat("no route for ", path), "invalid_request_error", "not_found"));
}

void SimServer::Impl::Handle(moa::net::HttpRequest req,
                             std::shared_ptr<moa::net::HttpExchange> exchange) {
  auto path_view = req.target();
  absl::string_view path(path_view.data(), path_view.size());
  path = path.substr(0, path.find('?'));
  absl::StatusOr<ChatRequestInfo> info;
  if (path == "/v1/messages") {
    info = anthropic::Parse(req.body());
    if (!info.ok()) {
      return exchange->Respond(
          Reply(400, anthropic::ErrorBody("invalid_request_error", info.status().message())));
    }
  } else if (std::optional<absl::string_view> model = GeminiModel(path)) {
    info = gemini::Parse(req.body(), *model, absl::EndsWith(path, ":streamGenerateContent"));
    if (!info.ok()) {
      return exchange->Respond(
          Reply(400, gemini::ErrorBody(400, "INVALID_ARGUMENT", info.status().message())));
    }
  } else {
    info = ParseChat(req.body());
    if (!info.ok()) {
      return exchange->Respond(
          Reply(400, ErrorBody(info.status().message(), "invalid_request_error", "")));
    }
  }
  auto header = [&](const char* name) {
    auto it = req.find(name);
    if (it == req.end()) return std::string();
    return std::string(it->value().substr(0, 256));
  };
  // Azure names the model by its deployment in the path; the body's model
  // (if any) is not what answers.
  auto target_view = req.target();
  absl::string_view target(target_view.data(), target_view.size());
  if (absl::StartsWith(target, "/openai/deployments/")) {
    absl::string_view rest = target.substr(std::string_view("/openai/deployments/").size());
    info->model = std::string(rest.substr(0, rest.find('/')));
  }
  info->request_id = header("x-request-id");
  info->traceparent = header("traceparent");
  std::make_shared<ChatStream>(*this, std::move(exchange))->Start(*std::move(info));
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
