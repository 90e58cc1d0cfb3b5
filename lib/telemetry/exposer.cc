#include "lib/telemetry/exposer.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace moa::telemetry {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& host, int port, std::shared_ptr<prometheus::Registry> registry) {
  std::string address = absl::StrCat(host, ":", port);
  try {
    // One civetweb worker is plenty for a scrape every few seconds.
    auto exposer = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
    exposer->RegisterCollectable(registry);
    std::vector<int> ports = exposer->GetListeningPorts();
    int bound = ports.empty() ? port : ports.front();
    return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(exposer), bound));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
}

}  // namespace moa::telemetry
