// Any bytes a client could send, through lib/net's connection layer on a
// real loopback socket: framing, limits, screening, keep-alive, pipelining.
// The client half-closes and reads until the server closes (or 2 s pass).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "lib/net/http_server.h"

namespace {

// Screens like the OpenAI door (credentials from headers, routes, methods)
// and answers a body by echoing its size, streamed or whole.
class Handler : public moa::net::HttpHandler {
 public:
  std::optional<moa::net::HttpResponse> Screen(const moa::net::HttpRequestHeader& h) override {
    if (h.target() == "/healthz") return moa::net::HttpResponse{200, "text/plain", "ok\n", {}};
    if (h.find("authorization") == h.end()) {
      return moa::net::HttpResponse{401, "application/json", "{}", {{"WWW-Authenticate", "x"}}};
    }
    return std::nullopt;
  }
  void Handle(moa::net::HttpRequest request,
              std::shared_ptr<moa::net::HttpExchange> exchange) override {
    if (request.target() == "/stream") {
      exchange->StartStream({200, "text/event-stream", "", {}}, ": ka\n\n");
      exchange->Write(absl::StrCat("data: ", request.body().size(), "\n\n"));
      exchange->End();
    } else {
      exchange->Respond({200, "text/plain", absl::StrCat(request.body().size()), {}});
    }
  }
};

int Port() {
  static Handler handler;
  static std::unique_ptr<moa::net::HttpServer> server = [] {
    auto s = moa::net::HttpServer::Start({.name = "fuzz",
                                          .max_header_bytes = 2048,
                                          .max_body_bytes = 4096,
                                          .read_timeout = absl::Milliseconds(500)},
                                         &handler);
    if (!s.ok()) std::abort();
    return *std::move(s);
  }();
  return server->port();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(Port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Closing with a reset leaves no TIME_WAIT behind: thousands of runs a
  // second would otherwise use up the ephemeral ports.
  linger no_linger{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &no_linger, sizeof(no_linger));
  // At thousands of connections a second the kernel now and then refuses
  // one (a reused port meeting a TIME_WAIT): retry. A server that stops
  // accepting for a whole second is a finding.
  int attempts = 0;
  while (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (++attempts == 100) {
      std::fprintf(stderr, "the server stopped accepting connections: %s\n", std::strerror(errno));
      std::abort();
    }
    close(fd);
    usleep(10000);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &no_linger, sizeof(no_linger));
  }
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  char buf[8192];
  for (int waited = 0; waited < 2000;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) {
      waited += 50;
      continue;
    }
    if (recv(fd, buf, sizeof(buf), 0) <= 0) break;
  }
  close(fd);
  return 0;
}
