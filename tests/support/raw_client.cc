#include "tests/support/raw_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/time/clock.h"

namespace moa::testing {

RawClient::RawClient(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

RawClient::~RawClient() {
  if (fd_ >= 0) close(fd_);
}

bool RawClient::Send(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

size_t RawClient::Flood(size_t total, absl::Duration duration) {
  std::string filler(1 << 20, 'j');
  size_t pushed = 0;
  absl::Time end = absl::Now() + duration;
  while (pushed < total && absl::Now() < end) {
    size_t chunk = std::min(filler.size(), total - pushed);
    ssize_t n = send(fd_, filler.data(), chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      pushed += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd_, POLLOUT, 0};
      poll(&p, 1, 10);
    } else {
      break;
    }
  }
  return pushed;
}

void RawClient::HalfClose() { shutdown(fd_, SHUT_WR); }

std::string RawClient::ReadUntil(const std::function<bool(const std::string&)>& done,
                                 absl::Duration timeout) {
  std::string out;
  absl::Time end = absl::Now() + timeout;
  while (!done(out) && absl::Now() < end) {
    pollfd p{fd_, POLLIN, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(end - absl::Now()));
    if (poll(&p, 1, std::max(ms, 1)) <= 0) continue;
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      closed_ = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string RawClient::ReadAll(absl::Duration timeout) {
  return ReadUntil([](const std::string&) { return false; }, timeout);
}

std::string RawClient::ReadResponse(absl::Duration timeout) {
  return ReadUntil(
      [](const std::string& s) {
        size_t head = s.find("\r\n\r\n");
        if (head == std::string::npos) return false;
        size_t cl = s.find("Content-Length: ");
        if (cl == std::string::npos || cl > head) return true;
        size_t len = std::stoul(s.substr(cl + 16));
        return s.size() >= head + 4 + len;
      },
      timeout);
}

}  // namespace moa::testing
