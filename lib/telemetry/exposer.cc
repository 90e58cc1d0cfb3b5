#include "lib/telemetry/exposer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <exception>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

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
    return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(exposer), host, bound));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
}

MetricsServer::~MetricsServer() {
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    exposer_.reset();
    stopped = true;
  });
  // Civetweb's listener notices the stop flag only when its poll returns:
  // a connection wakes it. Bounded: civetweb gives up polling after 2 s.
  std::string target = host_ == "0.0.0.0" || host_.empty() ? "127.0.0.1" : host_;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  bool can_wake = inet_pton(AF_INET, target.c_str(), &addr.sin_addr) == 1;
  for (int i = 0; i < 150 && !stopped; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    if (!can_wake || stopped) continue;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    (void)connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    close(fd);
  }
  stopper.join();
}

}  // namespace moa::telemetry
