// A redis-server of the test's own: a free loopback port, its own data
// directory, nothing persisted. Killed when the object goes.
#ifndef MOA_TESTS_SUPPORT_REDIS_SERVER_H_
#define MOA_TESTS_SUPPORT_REDIS_SERVER_H_

#include <filesystem>
#include <memory>
#include <string>

#include "tests/support/test_support.h"

namespace moa::testing {

class RedisServer {
 public:
  RedisServer();  // Starts it; ready() says whether it serves.
  ~RedisServer();

  // Starts it again on the same port (after Kill).
  void Start();
  // SIGKILL, as a crashed store.
  void Kill();
  bool ready() const { return ready_; }
  int port() const { return port_; }
  std::string log() const;

 private:
  const int port_;
  std::filesystem::path dir_;
  std::unique_ptr<Process> process_;
  bool ready_ = false;
};

}  // namespace moa::testing

#endif  // MOA_TESTS_SUPPORT_REDIS_SERVER_H_
