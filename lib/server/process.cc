#include "lib/server/process.h"

#include <signal.h>
#include <sys/resource.h>

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "lib/base/log.h"

ABSL_FLAG(std::string, log_format, "text",
          "Log lines as text or json (one object per line, with request_id on lines about a "
          "request).");

namespace moa::server {
namespace {
sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}
}  // namespace

void PrepareProcess() {
  const std::string format = absl::GetFlag(FLAGS_log_format);
  if (format == "json") {
    SetLogFormat(LogFormat::kJson);
  } else if (format != "text") {
    LogError("moa", "--log_format must be text or json, not '", format, "'");
    std::exit(2);
  }
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Debian's Abseil is built with Mutex deadlock detection on: every lock
  // then updates a global lock-order graph (GraphCycles showed in profiles
  // of the data path). Tests keep it; the services do not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Last: the writer thread inherits the blocked signals.
  StartAsyncLogging();
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace moa::server
