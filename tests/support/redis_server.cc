#include "tests/support/redis_server.h"

#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace moa::testing {

RedisServer::RedisServer() : port_(PickFreePort()) {
  dir_ = std::filesystem::temp_directory_path() / absl::StrCat("moa-redis-", getpid(), "-", port_);
  std::filesystem::create_directories(dir_);
  Start();
}

RedisServer::~RedisServer() {
  process_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void RedisServer::Start() {
  process_ = std::make_unique<Process>(std::vector<std::string>{
      "/usr/bin/redis-server", "--port", absl::StrCat(port_), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "no", "--dir", dir_.string(), "--protected-mode", "no"});
  ready_ = WaitFor(
      [&] { return process_->Output().find("Ready to accept connections") != std::string::npos; },
      absl::Seconds(20));
}

void RedisServer::Kill() {
  process_->Signal(SIGKILL);
  process_->Wait(absl::Seconds(10));
  ready_ = false;
}

std::string RedisServer::log() const { return process_->Output(); }

}  // namespace moa::testing
