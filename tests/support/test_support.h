// Helpers for tests that run real servers on loopback.
#ifndef MOA_TESTS_SUPPORT_TEST_SUPPORT_H_
#define MOA_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace moa::testing {

struct HttpResult {
  long status = 0;  // 0 when the request failed at the transport.
  std::string body;
  std::string headers;  // The response's header lines as received.
  std::string error;    // Why the transport failed, when it did.
};

// Blocking HTTP request to a loopback server (tests only). An https:// URL
// is checked against `ca_file` (PEM).
HttpResult HttpGet(const std::string& url);
HttpResult HttpRequest(const std::string& method, const std::string& url,
                       const std::string& body = "", const std::vector<std::string>& headers = {},
                       const std::string& ca_file = "");

// A throw-away CA `name` in `dir` (made by the openssl command) and a
// certificate it signs for 127.0.0.1/localhost, good for servers and
// clients: name.crt (the CA), name-leaf.crt and name-leaf.key. False when
// openssl failed.
bool MakeThrowawayCa(const std::string& dir, const std::string& name);
// Installs CA `name`'s material in `dir` as tls.key, tls.crt and ca.crt,
// each file replaced whole (a rename), key first and CA last.
void InstallTlsFiles(const std::string& dir, const std::string& name);

// Percent-encodes a string for a URL query.
std::string UrlEscape(const std::string& text);

// Polls `condition` every 10 ms until it is true or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);

// A port that was free a moment ago (for processes that cannot report one).
int PickFreePort();

// "" when nothing listens on the TCP port, else who does, e.g.
// "moa-orchestrator (pid 123)" (from `ss`), for a test that needs the port.
std::string PortHolder(int port);

// Path of a built binary, from the MOA_BIN_DIR compile definition.
std::string BinaryPath(const std::string& relative);

// A child process with stdout and stderr captured to a file.
// `moa keys add NAME ARGS...` into `file` (the CLI, as an operator runs
// it): the secret it printed, or "" (with a test failure) when it failed.
std::string AddKeyWithCli(const std::string& file, const std::string& name,
                          std::vector<std::string> args = {});

class Process {
 public:
  // `stdin_path`, when set, is the child's standard input.
  Process(std::vector<std::string> argv, std::vector<std::string> env = {},
          const std::string& stdin_path = "");
  ~Process();  // SIGKILLs the process if it still runs.
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Sends a signal.
  void Signal(int sig);
  // Waits up to `timeout` for the exit; returns the exit code, or -1 on
  // timeout, or 128+signal when killed by a signal.
  int Wait(absl::Duration timeout);
  // Everything the process wrote so far.
  std::string Output() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool exited_ = false;
  int exit_code_ = -1;
};

}  // namespace moa::testing

#endif  // MOA_TESTS_SUPPORT_TEST_SUPPORT_H_
