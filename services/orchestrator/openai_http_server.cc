#include "services/orchestrator/openai_http_server.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "lib/base/cancel_slot.h"
#include "lib/base/json.h"
#include "lib/base/retry_after.h"
#include "lib/wire/wire.h"
#include "services/orchestrator/openai_api.h"

namespace moa::orchestrator {

namespace {

namespace http = boost::beast::http;

std::string NewCompletionId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char kHex[] = "0123456789abcdef";
  std::string id = "chatcmpl-moa-";
  for (int i = 0; i < 24; ++i) id += kHex[rng() % 16];
  return id;
}

net::HttpResponse JsonResponse(int status, std::string body) {
  net::HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

net::HttpResponse TextResponse(int status, std::string body) {
  net::HttpResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

net::HttpResponse ErrorResponse(const openai::HttpError& e,
                                std::optional<absl::Duration> retry_after = std::nullopt) {
  // 499 (client closed) is never sent; a cancel seen by a client is a 500.
  net::HttpResponse r = JsonResponse(e.status == 499 ? 500 : e.status, openai::ErrorJson(e));
  if (retry_after) {
    r.headers.emplace_back(
        "Retry-After",
        absl::StrCat(absl::ToInt64Seconds(absl::Ceil(*retry_after, absl::Seconds(1)))));
  } else if (e.status == 429 || e.status == 503) {
    r.headers.emplace_back("Retry-After", "1");
  }
  if (e.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

// One chat completion: the MoaCall's sink, turning its events into the
// OpenAI response. The MoaCall calls it from one thread at a time; the
// exchange carries the bytes to the connection's strand in order.
class ChatCompletion final : public MoaCallSink {
 public:
  ChatCompletion(std::shared_ptr<net::HttpExchange> exchange, bool streaming, bool include_usage,
                 std::string model, absl::Time now, std::string request_id)
      : exchange_(std::move(exchange)),
        request_id_(std::move(request_id)),
        streaming_(streaming),
        include_usage_(include_usage),
        model_(std::move(model)),
        id_(NewCompletionId()),
        created_(absl::ToUnixSeconds(now)) {}

  // Starts the response head (streaming) and the call.
  void Begin(const std::shared_ptr<ChatCompletion>& self, Admission::Slot slot,
             MoaCall::Options options, Engine& engine) {
    std::weak_ptr<ChatCompletion> weak = self;
    exchange_->OnClosed([weak](bool completed) {
      if (completed) return;
      if (auto me = weak.lock()) me->call_.Cancel();
    });
    if (streaming_) {
      net::HttpResponse head;
      head.content_type = "text/event-stream";
      head.headers.emplace_back("Cache-Control", "no-cache");
      head.headers.emplace_back(kRequestIdHeader, request_id_);
      // An SSE comment: clients ignore it; used to probe a half-closed client.
      exchange_->StartStream(std::move(head), ": keep-alive\n\n");
      exchange_->Write(openai::ChunkEvent(id_, created_, model_,
                                          R"({"role":"assistant","content":""})", "null"));
    }
    // A call that finishes inside Start (backends may answer inline) has
    // closed the slot already, so it is not kept: it holds this sink.
    call_.Attach(engine.Start(std::move(slot), std::move(options), self));
  }

  void OnEvent(v1::ChatEvent event) override {
    record_.Add(event);
    if (event.has_answer_tool_calls() && streaming_) {
      exchange_->Write(openai::ChunkEvent(
          id_, created_, model_, openai::ToolCallsDeltaJson(event.answer_tool_calls()), "null"));
      return;
    }
    if (!event.has_answer_delta()) return;
    if (streaming_) {
      exchange_->Write(openai::ChunkEvent(id_, created_, model_,
                                          openai::ContentDeltaJson(event.answer_delta()), "null"));
    } else {
      answer_ += event.answer_delta();
    }
  }

  void OnFinish(absl::Status status) override {
    call_.Close();
    if (!streaming_) {
      net::HttpResponse r =
          status.ok()
              ? JsonResponse(200, openai::CompletionJson(id_, created_, model_, answer_, record_))
              : ErrorResponse(openai::ErrorFromStatus(status));
      r.headers.emplace_back(kRequestIdHeader, request_id_);
      return exchange_->Respond(std::move(r));
    }
    std::string tail;
    if (status.ok()) {
      std::string finish = record_.summary ? record_.summary->finish_reason() : "stop";
      tail = openai::ChunkEvent(id_, created_, model_, "{}", moa::json::Quote(finish));
      if (include_usage_) tail += openai::UsageChunkEvent(id_, created_, model_, record_);
      tail += "data: [DONE]\n\n";
    } else {
      // The 200 is out already: the error goes out as an event.
      tail = absl::StrCat("data: ", openai::ErrorJson(openai::ErrorFromStatus(status)), "\n\n");
    }
    exchange_->Write(std::move(tail));
    exchange_->End();
  }

 private:
  const std::shared_ptr<net::HttpExchange> exchange_;
  const std::string request_id_;
  const bool streaming_;
  const bool include_usage_;
  const std::string model_;
  const std::string id_;
  const int64_t created_;

  // Touched only by the MoaCall's events, one at a time.
  openai::CallRecord record_;
  std::string answer_;

  CancelSlot<MoaCall> call_;
};

}  // namespace

std::optional<net::HttpResponse> OpenAiHandler::Screen(const net::HttpRequestHeader& header) {
  auto target_view = header.target();
  absl::string_view target(target_view.data(), target_view.size());
  absl::string_view path = target.substr(0, target.find('?'));
  const bool get = header.method() == http::verb::get;
  if (path == "/healthz" && get) return TextResponse(200, "ok\n");
  if (path == "/readyz" && get) {
    bool ready = deps_.readiness == nullptr || deps_.readiness->ready();
    std::string reason = deps_.readiness ? deps_.readiness->reason() : "ready";
    if (deps_.engine->admission().draining()) {
      ready = false;
      reason = "draining: the orchestrator is shutting down";
    }
    return TextResponse(ready ? 200 : 503, reason + "\n");
  }
  if (path.rfind("/v1/", 0) == 0 && deps_.api_keys->enabled()) {
    auto auth = header.find(http::field::authorization);
    if (auth == header.end()) {
      return ErrorResponse({401, "missing API key: send 'Authorization: Bearer <key>'",
                            "authentication_error", "", "invalid_api_key"});
    }
    auto value = auth->value();
    if (!deps_.api_keys->CheckAuthorization(absl::string_view(value.data(), value.size()))) {
      return ErrorResponse(
          {401, "incorrect API key", "authentication_error", "", "invalid_api_key"});
    }
  }
  if (path == "/v1/models" && get) {
    json::Json data = json::Json::array();
    for (const auto& p : deps_.engine->config().pipelines) {
      data.push_back(
          {{"id", p.name}, {"object", "model"}, {"created", 0}, {"owned_by", "moa-cluster"}});
    }
    return JsonResponse(200, json::Dump(json::Json{{"object", "list"}, {"data", data}}));
  }
  if (path == "/v1/chat/completions") {
    if (header.method() != http::verb::post) {
      return ErrorResponse({405, "use POST for /v1/chat/completions", "invalid_request_error", "",
                            "method_not_allowed"});
    }
    return std::nullopt;  // Read the body; Handle answers.
  }
  auto method = header.method_string();
  return ErrorResponse(
      {404,
       absl::StrCat("no route for ", absl::string_view(method.data(), method.size()), " ", path),
       "invalid_request_error", "", "not_found"});
}

void OpenAiHandler::Handle(net::HttpRequest request, std::shared_ptr<net::HttpExchange> exchange) {
  auto header = [&](const char* name) {
    auto it = request.find(name);
    return it == request.end() ? absl::string_view()
                               : absl::string_view(it->value().data(), it->value().size());
  };
  TraceContext trace = AcceptTraceContext(header(kRequestIdHeader), header(kTraceparentHeader));
  auto refuse = [&](net::HttpResponse r) {
    r.headers.emplace_back(kRequestIdHeader, trace.request_id);
    exchange->Respond(std::move(r));
  };
  openai::HttpError error;
  auto parsed = openai::ParseChatCompletionRequest(request.body(), &error);
  if (!parsed.ok()) return refuse(ErrorResponse(error));
  auto options = deps_.engine->Plan(parsed->chat);
  if (!options.ok()) {
    openai::HttpError e = openai::ErrorFromStatus(options.status());
    if (e.status == 404) {
      e.message = absl::StrCat("The model '", parsed->chat.pipeline(),
                               "' does not exist: ", options.status().message());
    }
    return refuse(ErrorResponse(e));
  }
  auto slot = deps_.engine->Admit();
  if (!slot.ok()) return refuse(ErrorResponse(openai::ErrorFromStatus(slot.status())));
  options->trace = trace;
  options->end_user = parsed->end_user;
  if (deps_.api_keys->enabled() && deps_.limiter != nullptr) {
    // Screen let the request in, so its key is one of ours.
    const ApiKey* key = deps_.api_keys->Authenticate(header("authorization"));
    if (key == nullptr) {
      return refuse(
          ErrorResponse({401, "incorrect API key", "authentication_error", "", "invalid_api_key"}));
    }
    // Last before the start: an admitted request always reports back.
    if (absl::Status limited = deps_.limiter->Admit(*key, &*options); !limited.ok()) {
      return refuse(ErrorResponse(openai::ErrorFromStatus(limited), GetRetryAfter(limited)));
    }
  }
  auto completion = std::make_shared<ChatCompletion>(
      std::move(exchange), parsed->stream, parsed->include_usage,
      parsed->chat.pipeline().empty() ? options->pipeline.name : parsed->chat.pipeline(),
      deps_.engine->clock().Now(), trace.request_id);
  completion->Begin(completion, *std::move(slot), *std::move(options), *deps_.engine);
}

absl::StatusOr<std::unique_ptr<OpenAiHttpServer>> OpenAiHttpServer::Start(
    OpenAiHttpServerOptions options, OpenAiHttpDeps deps) {
  std::unique_ptr<OpenAiHttpServer> http(new OpenAiHttpServer());
  http->handler_ = std::make_unique<OpenAiHandler>(deps);
  auto server = net::HttpServer::Start({.name = "moa-orchestrator",
                                        .host = options.host,
                                        .port = options.port,
                                        .threads = options.threads,
                                        .max_header_bytes = options.max_header_bytes,
                                        .max_body_bytes = options.max_body_bytes,
                                        .read_timeout = options.read_timeout,
                                        .max_connections = options.max_connections,
                                        .tls_cert_file = options.tls_cert_file,
                                        .tls_key_file = options.tls_key_file,
                                        .tls_refresh = options.tls_refresh},
                                       http->handler_.get());
  if (!server.ok()) {
    return absl::Status(server.status().code(),
                        absl::StrCat("OpenAI HTTP server: ", server.status().message()));
  }
  http->server_ = *std::move(server);
  return http;
}

OpenAiHttpServer::~OpenAiHttpServer() { server_.reset(); }
int OpenAiHttpServer::port() const { return server_->port(); }
size_t OpenAiHttpServer::connections() const { return server_->connections(); }
void OpenAiHttpServer::StopAccepting() { server_->StopAccepting(); }

}  // namespace moa::orchestrator
