// moa-upstream-sim: an OpenAI-compatible chat-completions simulator for
// demos, tests and load tests. Asynchronous (Boost.Asio/Beast): every
// connection and stream is a few objects on the io_context, no thread each.
//
//   POST   /v1/chat/completions   streaming (SSE, include_usage) and not
//   GET    /v1/models             the models that have profiles
//   GET    /healthz               "ok"
//   GET    /sim/requests[?since=ID]  JSON log of chat requests received
//   GET    /sim/stats             request counts by outcome
//   DELETE /sim/requests          clears the log
#ifndef MOA_TOOLS_UPSTREAM_SIM_SIM_SERVER_H_
#define MOA_TOOLS_UPSTREAM_SIM_SIM_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tools/upstream-sim/profiles.h"

namespace moa::sim {

struct SimOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0 picks a free port.
  Profiles profiles;
  double latency_scale = 1.0;  // Multiplies every delay; 0 = as fast as possible.
  uint64_t seed = 1;
  int threads = 1;
  // When non-empty, requests must carry "Authorization: Bearer <api_key>".
  std::string api_key;
  size_t max_log_entries = 50000;
  size_t max_connections = 16000;  // More get 503 and are closed.
  // HTTPS with these PEM files (an upstream behind TLS); plaintext when empty.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class SimServer {
 public:
  // Binds and starts serving on `options.threads` threads.
  static absl::StatusOr<std::unique_ptr<SimServer>> Start(SimOptions options);
  // Stops serving and joins the threads.
  ~SimServer();

  int port() const;
  // The request log as JSON text, entries with id > since.
  std::string RequestLogJson(int64_t since = 0) const;

  class Impl;

 private:
  explicit SimServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moa::sim

#endif  // MOA_TOOLS_UPSTREAM_SIM_SIM_SERVER_H_
