// Minimal structured logging to stderr: one line per event, safe from any
// thread. Never pass secrets (API keys, Authorization headers) to it.
#ifndef MOA_LIB_BASE_LOG_H_
#define MOA_LIB_BASE_LOG_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace moa {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below this level are dropped. Default kInfo; MOA_LOG_LEVEL=debug|info|warning|error
// in the environment overrides it at start-up.
void SetMinLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// Text (the default): "2026-01-01T00:00:00.123Z I component: message
// key=value...". JSON: one object per line, {"time", "level", "component",
// "message", then each field}, for Loki, Elasticsearch and the like.
enum class LogFormat { kText, kJson };
void SetLogFormat(LogFormat format);

// Named values of a line, e.g. {{"request_id", id}}.
using LogFields = std::vector<std::pair<std::string, std::string>>;

// Writes one line atomically: at once with one write(2), or, once
// StartAsyncLogging was called, through the writer thread.
void LogLine(LogLevel level, absl::string_view component, absl::string_view message,
             const LogFields& fields = {});

// From now on lines queue (at most `max_queued_bytes`) for a writer thread,
// so a thread that logs never waits for stderr: a slow or stuck reader of
// the services' logs (a full pipe, a stalled collector) must not stall a
// gRPC callback or the curl event loop. When the queue is full, lines are
// dropped and counted, and the writer says how many once it catches up.
// The queue is written out at exit (atexit). Idempotent; for services,
// called by PrepareProcess before any other thread starts.
void StartAsyncLogging(size_t max_queued_bytes = 4 << 20);
// Writes out what is queued and goes back to writing at once. Idempotent.
void StopAsyncLogging();
// Lines dropped by a full queue since the process started.
uint64_t DroppedLogLines();

template <typename... Args>
void LogInfo(absl::string_view component, const Args&... args) {
  if (LogEnabled(LogLevel::kInfo)) LogLine(LogLevel::kInfo, component, absl::StrCat(args...));
}
template <typename... Args>
void LogWarning(absl::string_view component, const Args&... args) {
  if (LogEnabled(LogLevel::kWarning)) LogLine(LogLevel::kWarning, component, absl::StrCat(args...));
}
template <typename... Args>
void LogError(absl::string_view component, const Args&... args) {
  if (LogEnabled(LogLevel::kError)) LogLine(LogLevel::kError, component, absl::StrCat(args...));
}
// A line about one request: its fields (request_id first) go with it.
template <typename... Args>
void LogFor(LogLevel level, absl::string_view component, const LogFields& fields,
            const Args&... args) {
  if (LogEnabled(level)) LogLine(level, component, absl::StrCat(args...), fields);
}
template <typename... Args>
void LogDebug(absl::string_view component, const Args&... args) {
  if (LogEnabled(LogLevel::kDebug)) LogLine(LogLevel::kDebug, component, absl::StrCat(args...));
}

}  // namespace moa

#endif  // MOA_LIB_BASE_LOG_H_
