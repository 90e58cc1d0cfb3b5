// The orchestrator's OpenAI-compatible HTTP server: every pipeline served as
// a "model" behind POST /v1/chat/completions, over the same Engine as the
// gRPC service. The connection layer (framing, limits,
// keep-alive, drain) is lib/net's HttpServer; this file holds only routing
// and the OpenAI exchange, in OpenAiHandler, which tests drive with a fake
// HttpExchange.
//
//   POST /v1/chat/completions   streaming (SSE chunks) and non-streaming
//   POST /v1/messages           the Anthropic Messages API (anthropic_api.h)
//   POST /v1/responses          the OpenAI Responses API (responses_api.h)
//   GET  /v1/models             the pipelines as models
//   GET  /healthz               the process is up
//   GET  /readyz                ready to serve (see Readiness), 503 otherwise
//   /admin/v1/...               the admin API (admin_api.h), with a store
#ifndef MOA_SERVICES_ORCHESTRATOR_OPENAI_HTTP_SERVER_H_
#define MOA_SERVICES_ORCHESTRATOR_OPENAI_HTTP_SERVER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/net/http_server.h"
#include "services/orchestrator/admin_api.h"
#include "services/orchestrator/api_keys.h"
#include "services/orchestrator/api_surface.h"
#include "services/orchestrator/cluster_view.h"
#include "services/orchestrator/engine/engine.h"
#include "services/orchestrator/key_limits.h"
#include "services/orchestrator/readiness.h"

namespace moa::orchestrator {

struct OpenAiHttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;                                     // 0 picks a free one.
  size_t max_body_bytes = 4 << 20;                  // Larger bodies get 413.
  size_t max_header_bytes = 16 << 10;               // Larger headers get 431.
  size_t max_connections = 10000;                   // More get 503 and close.
  absl::Duration read_timeout = absl::Seconds(10);  // Headers and body of one request.
  int threads = 1;
  // HTTPS with these PEM files (re-read when they change); plaintext when empty.
  std::string tls_cert_file{};
  std::string tls_key_file{};
  absl::Duration tls_refresh = absl::Seconds(60);
};

// Everything the server uses; all must outlive it.
struct OpenAiHttpDeps {
  Engine* engine;
  const ApiKeys* api_keys;
  const Readiness* readiness;     // May be null: always ready.
  KeyLimiter* limiter = nullptr;  // May be null: keys have no limits.
  AdminApi* admin = nullptr;      // May be null: /admin/ answers that it is off.
  // Breaker states and recent latency of the models, for /v1/moa/cluster;
  // empty: unknown.
  ModelStatusSource model_status = {};
  int grpc_port = -1;  // Shown in the playground's `moa ask` line.
};

// Routing and the OpenAI exchange, on top of the connection layer.
class OpenAiHandler final : public net::HttpHandler {
 public:
  explicit OpenAiHandler(OpenAiHttpDeps deps);

  // Answers /healthz, /readyz, /v1/models, unknown routes, wrong methods and
  // missing or wrong API keys from the headers alone, before any body.
  std::optional<net::HttpResponse> Screen(const net::HttpRequestHeader& header) override;
  // POST /v1/chat/completions.
  void Handle(net::HttpRequest request, std::shared_ptr<net::HttpExchange> exchange) override;

 private:
  const ApiSurface* SurfaceFor(absl::string_view path) const;
  // The client's key as an Authorization value: that header, or "Bearer "
  // and x-api-key.
  static std::optional<std::string> PresentedKey(const net::HttpRequestHeader& header);
  // GET /v1/moa/cluster: pipelines, presets, models' health, the caller's key.
  net::HttpResponse ClusterView(const net::HttpRequestHeader& header) const;

  const OpenAiHttpDeps deps_;
  const std::vector<const ApiSurface*> surfaces_;
};

class OpenAiHttpServer {
 public:
  // Binds and starts serving. UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<OpenAiHttpServer>> Start(OpenAiHttpServerOptions options,
                                                                 OpenAiHttpDeps deps);
  // Stops at once, closing every connection.
  ~OpenAiHttpServer();

  int port() const;
  size_t connections() const;
  // Drain: no new connections, idle ones closed, every response from now on
  // closes its connection. Requests in flight are the Admission's to drain.
  void StopAccepting();

 private:
  OpenAiHttpServer() = default;
  std::unique_ptr<OpenAiHandler> handler_;
  std::unique_ptr<net::HttpServer> server_;
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_OPENAI_HTTP_SERVER_H_
