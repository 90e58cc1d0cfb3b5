#include "lib/base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

void WriteAll(absl::string_view bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(STDERR_FILENO, bytes.data() + off, bytes.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

// The writer thread of async logging and its bounded queue. Never
// destroyed: lines may still come from other threads while the process
// exits.
class AsyncWriter {
 public:
  static AsyncWriter& Get() {
    static AsyncWriter* writer = new AsyncWriter();
    return *writer;
  }

  void Start(size_t max_bytes) {
    absl::MutexLock lock(&mu_);
    if (running_) return;
    running_ = true;
    stop_ = false;
    max_bytes_ = max_bytes;
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    std::thread thread;
    {
      absl::MutexLock lock(&mu_);
      if (!running_) return;
      stop_ = true;
      thread.swap(thread_);
    }
    thread.join();  // It writes out the queue before it ends.
    absl::MutexLock lock(&mu_);
    running_ = false;
  }

  // False when async logging is off: the caller writes the line itself.
  bool Enqueue(std::string line) {
    absl::MutexLock lock(&mu_);
    if (!running_ || stop_) return false;
    if (bytes_ + line.size() > max_bytes_) {
      ++dropped_;
      ++dropped_total_;
      return true;
    }
    bytes_ += line.size();
    queue_.push_back(std::move(line));
    return true;
  }

  uint64_t dropped_total() {
    absl::MutexLock lock(&mu_);
    return dropped_total_;
  }

 private:
  void Run() {
    while (true) {
      std::deque<std::string> lines;
      uint64_t dropped;
      bool stop;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](AsyncWriter* w) { return w->stop_ || !w->queue_.empty() || w->dropped_ > 0; },
            this));
        lines.swap(queue_);
        bytes_ = 0;
        dropped = std::exchange(dropped_, 0);
        stop = stop_;
      }
      // Written outside the lock: loggers only ever wait for the queue.
      std::string batch;
      for (const std::string& line : lines) {
        if (batch.size() + line.size() > (64 << 10)) {
          WriteAll(batch);
          batch.clear();
        }
        batch += line;
      }
      WriteAll(batch);
      if (dropped > 0) {
        WriteAll(absl::StrCat(
            absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
            " W log: ", dropped, " lines dropped: stderr was not read as fast as lines came\n"));
      }
      if (stop) {
        absl::MutexLock lock(&mu_);
        if (queue_.empty() && dropped_ == 0) return;
      }
    }
  }

  absl::Mutex mu_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t max_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_total_ ABSL_GUARDED_BY(mu_) = 0;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

void StartAsyncLogging(size_t max_queued_bytes) {
  static std::once_flag at_exit;
  std::call_once(at_exit, [] { std::atexit(StopAsyncLogging); });
  AsyncWriter::Get().Start(max_queued_bytes);
}

void StopAsyncLogging() { AsyncWriter::Get().Stop(); }

uint64_t DroppedLogLines() { return AsyncWriter::Get().dropped_total(); }

void SetMinLogLevel(LogLevel level) { MinLevel().store(static_cast<int>(level)); }

void SetLogFormat(LogFormat format) { Format().store(static_cast<int>(format)); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= MinLevel().load(); }

namespace {

// A field's value as text logs show it: bare when it is one plain word,
// else quoted with escapes, so a value from a peer (a client's `user`) can
// neither forge a line nor a field.
std::string TextValue(absl::string_view value) {
  bool plain = !value.empty();
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '\\' || c == '=') plain = false;
  }
  if (plain) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A message as text logs show it: control bytes (a newline in an upstream's
// error body) escaped, so one call of LogLine is one line.
std::string TextMessage(absl::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (char c : message) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

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
    line = absl::StrCat(time, " ", std::string(1, LevelLetter(level)), " ", component, ": ",
                        TextMessage(message));
    for (const auto& [key, value] : fields) {
      absl::StrAppend(&line, " ", key, "=", TextValue(value));
    }
    line += "\n";
  }
  if (AsyncWriter::Get().Enqueue(line)) return;
  // One write(2) per line keeps lines from different threads whole.
  WriteAll(line);
}

}  // namespace moa
