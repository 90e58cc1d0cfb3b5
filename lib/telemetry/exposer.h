// Serves one Registry on GET /metrics.
#ifndef MOA_LIB_TELEMETRY_EXPOSER_H_
#define MOA_LIB_TELEMETRY_EXPOSER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace moa::telemetry {

class MetricsServer {
 public:
  // Listens on host:port (port 0 picks a free one). UNAVAILABLE when the port
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& host, int port, std::shared_ptr<prometheus::Registry> registry);

  int port() const { return port_; }

  // Stops at once (civetweb alone would take up to 2 s: its listener polls
  // with that timeout before it sees the stop).
  ~MetricsServer();

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, std::string host, int port)
      : exposer_(std::move(exposer)), host_(std::move(host)), port_(port) {}
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string host_;
  int port_;
};

}  // namespace moa::telemetry

#endif  // MOA_LIB_TELEMETRY_EXPOSER_H_
