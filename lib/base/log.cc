#include "lib/base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/base/json.h"

namespace moa {
namespace {

LogLevel LevelFromEnv() {
  const char* env = std::getenv("MOA_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  absl::string_view v(env);
  if (v == "debug") return LogLevel::kDebug;
  if (v == "warning") return LogLevel::kWarning;
  if (v == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& Format() {
  static std::atomic<int> format{static_cast<int>(LogFormat::kText)};
  return format;
}

std::atomic<int>& MinLevel() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}

char LevelLetter(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return 'D';
    case LogLevel::kInfo:
      return 'I';
    case LogLevel::kWarning:
      return 'W';
    case LogLevel::kError:
      return 'E';
  }
  return '?';
}

}  // namespace

void SetMinLogLevel(LogLevel level) { MinLevel().store(static_cast<int>(level)); }

void SetLogFormat(LogFormat format) { Format().store(static_cast<int>(format)); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= MinLevel().load(); }

void LogLine(LogLevel level, absl::string_view component, absl::string_view message,
             const LogFields& fields) {
  const std::string time =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::string line;
  if (static_cast<LogFormat>(Format().load()) == LogFormat::kJson) {
    static constexpr const char* kLevels[] = {"debug", "info", "warning", "error"};
    json::Json j = {{"time", time},
                    {"level", kLevels[static_cast<int>(level)]},
                    {"component", std::string(component)},
                    {"message", std::string(message)}};
    for (const auto& [key, value] : fields) j[key] = value;
    line = json::Dump(j) + "\n";  // Invalid UTF-8 becomes U+FFFD: never throws.
  } else {
    line =
        absl::StrCat(time, " ", std::string(1, LevelLetter(level)), " ", component, ": ", message);
    for (const auto& [key, value] : fields) absl::StrAppend(&line, " ", key, "=", value);
    line += "\n";
  }
  // One write(2) per line keeps lines from different threads whole.
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

}  // namespace moa
