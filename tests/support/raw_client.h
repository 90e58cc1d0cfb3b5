// A raw TCP client for tests that speak HTTP by hand, as a hostile or
// clumsy client would: partial requests, half-closes, floods.
#ifndef MOA_TESTS_SUPPORT_RAW_CLIENT_H_
#define MOA_TESTS_SUPPORT_RAW_CLIENT_H_

#include <functional>
#include <string>

#include "absl/time/time.h"

namespace moa::testing {

// A blocking client socket with timeouts.
class RawClient {
 public:
  // Connects to 127.0.0.1:port.
  explicit RawClient(int port);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  // Sends all of `bytes` (blocking); false when the connection failed.
  bool Send(const std::string& bytes);
  // Sends without blocking for up to `duration`, as much of `total` bytes of
  // filler as the peer takes; returns how many it took.
  size_t Flood(size_t total, absl::Duration duration);
  void HalfClose();

  // Reads until `done(received)` holds, the peer closes, or `timeout` passes.
  std::string ReadUntil(const std::function<bool(const std::string&)>& done,
                        absl::Duration timeout = absl::Seconds(5));
  // Everything until the peer closes or `timeout` passes.
  std::string ReadAll(absl::Duration timeout = absl::Seconds(5));
  // One whole response with a Content-Length body (or just its head).
  std::string ReadResponse(absl::Duration timeout = absl::Seconds(5));
  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
};

}  // namespace moa::testing

#endif  // MOA_TESTS_SUPPORT_RAW_CLIENT_H_
