#include "services/orchestrator/openai_http_server.h"

#include "absl/strings/str_cat.h"
#include "lib/base/cancel_slot.h"
#include "lib/base/json.h"
#include "lib/base/retry_after.h"
#include "lib/wire/wire.h"
#include "services/orchestrator/anthropic_api.h"
#include "services/orchestrator/events_api.h"
#include "services/orchestrator/openai_api.h"
#include "services/orchestrator/playground.h"
#include "services/orchestrator/responses_api.h"

namespace moa::orchestrator {

namespace {

namespace http = boost::beast::http;

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

net::HttpResponse ErrorResponse(const ApiSurface& surface, const HttpError& e,
                                std::optional<absl::Duration> retry_after = std::nullopt) {
  // 499 (client closed) is never sent; a cancel seen by a client is a 500.
  net::HttpResponse r = JsonResponse(e.status == 499 ? 500 : e.status, surface.ErrorJson(e));
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

// One request's call on one surface: the MoaCall's sink, turning its
// events into the surface's response. The MoaCall calls it from one thread
// at a time; the exchange carries the bytes to the connection's strand in
// order.
class SurfaceCall final : public MoaCallSink {
 public:
  SurfaceCall(std::shared_ptr<net::HttpExchange> exchange, const ApiSurface& surface,
              std::unique_ptr<ResponseWriter> writer, bool streaming, std::string request_id)
      : exchange_(std::move(exchange)),
        surface_(surface),
        writer_(std::move(writer)),
        request_id_(std::move(request_id)),
        streaming_(streaming) {}

  // Starts the response head (streaming) and the call.
  void Begin(const std::shared_ptr<SurfaceCall>& self, Admission::Slot slot,
             MoaCall::Options options, Engine& engine) {
    std::weak_ptr<SurfaceCall> weak = self;
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
      exchange_->Write(writer_->Head());
    }
    // A call that finishes inside Start (backends may answer inline) has
    // closed the slot already, so it is not kept: it holds this sink.
    call_.Attach(engine.Start(std::move(slot), std::move(options), self));
  }

  void OnEvent(v1::ChatEvent event) override {
    std::string bytes = writer_->Event(event);
    if (streaming_ && !bytes.empty()) exchange_->Write(std::move(bytes));
  }

  void OnFinish(absl::Status status) override {
    call_.Close();
    if (!streaming_) {
      net::HttpResponse r;
      if (status.ok()) {
        absl::StatusOr<std::string> body = writer_->Body();
        r = body.ok() ? JsonResponse(200, *std::move(body))
                      : ErrorResponse(surface_, ErrorFromStatus(body.status()));
      } else {
        r = ErrorResponse(surface_, ErrorFromStatus(status));
      }
      r.headers.emplace_back(kRequestIdHeader, request_id_);
      return exchange_->Respond(std::move(r));
    }
    exchange_->Write(writer_->Tail(status));
    exchange_->End();
  }

 private:
  const std::shared_ptr<net::HttpExchange> exchange_;
  const ApiSurface& surface_;
  // Touched only by the MoaCall's events, one at a time.
  const std::unique_ptr<ResponseWriter> writer_;
  const std::string request_id_;
  const bool streaming_;
  CancelSlot<RunningCall> call_;
};

}  // namespace

OpenAiHandler::OpenAiHandler(OpenAiHttpDeps deps)
    : deps_(deps),
      surfaces_({&openai::ChatCompletionsSurface(), &anthropic::MessagesSurface(),
                 &responses::ResponsesSurface(), &events::EventsSurface()}) {}

const ApiSurface* OpenAiHandler::SurfaceFor(absl::string_view path) const {
  for (const ApiSurface* s : surfaces_) {
    if (s->path() == path) return s;
  }
  return nullptr;
}

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
  if (AdminApi::Owns(path)) {
    return deps_.admin != nullptr ? deps_.admin->Screen(header) : AdminApi::Off();
  }
  // The pages are public; what they show comes from /v1/, behind the keys.
  if (playground::Owns(path)) return playground::Serve(path, get);
  const ApiSurface* surface = SurfaceFor(path);
  const ApiSurface& errors = surface != nullptr ? *surface : openai::ChatCompletionsSurface();
  if (path.rfind("/v1/", 0) == 0 && deps_.api_keys->enabled()) {
    std::optional<std::string> presented = PresentedKey(header);
    if (!presented) {
      return ErrorResponse(errors, {401,
                                    "missing API key: send 'Authorization: Bearer <key>' (or "
                                    "'x-api-key: <key>')",
                                    "authentication_error", "", "invalid_api_key"});
    }
    if (!deps_.api_keys->CheckAuthorization(*presented)) {
      return ErrorResponse(
          errors, {401, "incorrect API key", "authentication_error", "", "invalid_api_key"});
    }
  }
  if (path == "/v1/models" && get) {
    json::Json data = json::Json::array();
    for (const auto& p : deps_.engine->config().pipelines) {
      data.push_back(
          {{"id", p.name}, {"object", "model"}, {"created", 0}, {"owned_by", "moa-cluster"}});
    }
    for (const auto& r : deps_.engine->config().routes) {
      data.push_back(
          {{"id", r.name}, {"object", "model"}, {"created", 0}, {"owned_by", "moa-cluster"}});
    }
    return JsonResponse(200, json::Dump(json::Json{{"object", "list"}, {"data", data}}));
  }
  if (path == "/v1/moa/cluster" && get) return ClusterView(header);
  if (surface != nullptr) {
    if (header.method() != http::verb::post) {
      return ErrorResponse(errors, {405, absl::StrCat("use POST for ", path),
                                    "invalid_request_error", "", "method_not_allowed"});
    }
    return std::nullopt;  // Read the body; Handle answers.
  }
  auto method = header.method_string();
  return ErrorResponse(
      errors,
      {404,
       absl::StrCat("no route for ", absl::string_view(method.data(), method.size()), " ", path),
       "invalid_request_error", "", "not_found"});
}

net::HttpResponse OpenAiHandler::ClusterView(const net::HttpRequestHeader& header) const {
  ClusterViewInput in;
  in.config = &deps_.engine->config();
  in.grpc_port = deps_.grpc_port;
  in.keys_enabled = deps_.api_keys->enabled();
  in.admin_api = deps_.admin != nullptr;
  if (deps_.model_status) in.models = deps_.model_status();
  // Screen checked the key; the caller sees its own limits and spend only.
  std::shared_ptr<const ApiKey> key;
  if (in.keys_enabled) {
    std::optional<std::string> presented = PresentedKey(header);
    if (presented) key = deps_.api_keys->Authenticate(*presented);
  }
  if (key != nullptr) {
    in.caller = key.get();
    if (deps_.limiter != nullptr) in.caller_usage = deps_.limiter->Local(*key);
  }
  return JsonResponse(200, json::Dump(ClusterViewJson(in)));
}

std::optional<std::string> OpenAiHandler::PresentedKey(const net::HttpRequestHeader& header) {
  if (auto auth = header.find(http::field::authorization); auth != header.end()) {
    return std::string(auth->value().data(), auth->value().size());
  }
  // Anthropic's clients send the key alone in x-api-key.
  if (auto key = header.find("x-api-key"); key != header.end()) {
    return absl::StrCat("Bearer ", absl::string_view(key->value().data(), key->value().size()));
  }
  return std::nullopt;
}

void OpenAiHandler::Handle(net::HttpRequest request, std::shared_ptr<net::HttpExchange> exchange) {
  auto header = [&](const char* name) {
    auto it = request.find(name);
    return it == request.end() ? absl::string_view()
                               : absl::string_view(it->value().data(), it->value().size());
  };
  TraceContext trace = AcceptTraceContext(header(kRequestIdHeader), header(kTraceparentHeader));
  auto target_view = request.target();
  absl::string_view target(target_view.data(), target_view.size());
  if (AdminApi::Owns(target.substr(0, target.find('?')))) {
    // Screened: only with an admin API. Its store calls are bounded by the
    // store's timeout, so answering here holds this I/O thread briefly.
    net::HttpResponse r = deps_.admin->Handle(request);
    r.headers.emplace_back(kRequestIdHeader, trace.request_id);
    return exchange->Respond(std::move(r));
  }
  // Screen let only a surface's path through.
  const ApiSurface& surface = *SurfaceFor(target.substr(0, target.find('?')));
  auto refuse = [&](net::HttpResponse r) {
    r.headers.emplace_back(kRequestIdHeader, trace.request_id);
    exchange->Respond(std::move(r));
  };
  HttpError error;
  auto parsed = surface.Parse(request.body(), &error);
  if (!parsed.ok()) return refuse(ErrorResponse(surface, error));
  // The key is known before the plan: a route's rules may look at it.
  std::shared_ptr<const ApiKey> key;
  if (deps_.api_keys->enabled() && deps_.limiter != nullptr) {
    // Screen let the request in, so its key is one of ours.
    std::optional<std::string> presented = PresentedKey(request.base());
    key = presented ? deps_.api_keys->Authenticate(*presented) : nullptr;
    if (key == nullptr) {
      return refuse(ErrorResponse(
          surface, {401, "incorrect API key", "authentication_error", "", "invalid_api_key"}));
    }
  }
  auto options = deps_.engine->Plan(parsed->chat, absl::InfiniteFuture(),
                                    key ? Caller{key->name, key->limits.preset} : Caller{});
  if (!options.ok()) {
    HttpError e = ErrorFromStatus(options.status());
    if (e.status == 404) {
      e.message = absl::StrCat("The model '", parsed->chat.pipeline(),
                               "' does not exist: ", options.status().message());
    }
    return refuse(ErrorResponse(surface, e));
  }
  auto slot = deps_.engine->Admit();
  if (!slot.ok()) return refuse(ErrorResponse(surface, ErrorFromStatus(slot.status())));
  options->trace = trace;
  options->end_user = parsed->end_user;
  if (key != nullptr) {
    // Last before the start: an admitted request always reports back.
    if (absl::Status limited = deps_.limiter->Admit(*key, &*options); !limited.ok()) {
      return refuse(ErrorResponse(surface, ErrorFromStatus(limited), GetRetryAfter(limited)));
    }
  }
  const std::string model =
      parsed->chat.pipeline().empty() ? options->pipeline.name : parsed->chat.pipeline();
  auto call = std::make_shared<SurfaceCall>(
      std::move(exchange), surface,
      surface.NewWriter(*parsed, model, absl::ToUnixSeconds(deps_.engine->clock().Now())),
      parsed->stream, trace.request_id);
  call->Begin(call, *std::move(slot), *std::move(options), *deps_.engine);
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
