// Process-wide set-up every service binary does first.
#ifndef MOA_LIB_SERVER_PROCESS_H_
#define MOA_LIB_SERVER_PROCESS_H_

namespace moa::server {

// Raises the open-file limit to the hard limit (thousands of streams need
// thousands of sockets), ignores SIGPIPE, blocks SIGTERM and SIGINT in every
// thread so WaitForTerminationSignal can take them, turns off Abseil's
// Mutex deadlock detection, applies --log_format (text or json; exits 2 on
// another value), and starts async logging (lib/base/log.h: a stuck reader
// of stderr never stalls a serving thread). Call after parsing flags, before
// starting any thread.
void PrepareProcess();

// Blocks until SIGTERM or SIGINT arrives; returns the signal number.
int WaitForTerminationSignal();

}  // namespace moa::server

#endif  // MOA_LIB_SERVER_PROCESS_H_
