// The orchestrator's OpenAI-compatible HTTP door: every pipeline served as a
// "model" behind POST /v1/chat/completions, over the same MoaCall as the
// gRPC door. Asynchronous (Boost.Asio/Beast): no thread per connection.
//
//   POST /v1/chat/completions   streaming (SSE chunks) and non-streaming
//   GET  /v1/models             the pipelines as models
//   GET  /healthz               the process is up
//   GET  /readyz                config loaded and, for every layer of the
//                               default pipeline, a proposer is reachable
#ifndef MOA_SERVICES_ORCHESTRATOR_HTTP_DOOR_H_
#define MOA_SERVICES_ORCHESTRATOR_HTTP_DOOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/config/cluster_config.h"
#include "lib/telemetry/orchestrator_metrics.h"
#include "services/orchestrator/api_keys.h"
#include "services/orchestrator/moa_call.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/readiness.h"

namespace moa::orchestrator {

struct HttpDoorOptions {
  std::string host = "0.0.0.0";
  int port = 0;                                        // 0 picks a free one.
  size_t max_body_bytes = 4 << 20;                     // Larger bodies get 413.
  absl::Duration read_timeout = absl::Seconds(10);     // Headers and body of one request.
  absl::Duration request_timeout = absl::Minutes(10);  // Deadline of each MoA request.
  int threads = 1;
};

// Everything the door uses; all must outlive it.
struct HttpDoorDeps {
  const config::ClusterConfig* config;
  MoaBackends backends;
  telemetry::OrchestratorMetrics* metrics;
  Admission* admission;
  const ApiKeys* api_keys;
  const Readiness* readiness;
};

class HttpDoor {
 public:
  // Binds and starts serving. UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpDoor>> Start(HttpDoorOptions options,
                                                         HttpDoorDeps deps);
  // Stops at once (Drain first for a graceful stop).
  ~HttpDoor();

  int port() const;

  // Stops accepting connections and waits up to `grace` for requests in
  // flight to finish; the rest are cancelled.
  void Drain(absl::Duration grace);

  class Impl;

 private:
  explicit HttpDoor(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_HTTP_DOOR_H_
