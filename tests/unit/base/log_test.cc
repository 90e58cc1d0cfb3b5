#include "lib/base/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <future>
#include <string>
#include <thread>

#include "lib/base/json.h"

namespace moa {
namespace {

// What LogLine writes to stderr while `f` runs.
template <typename F>
std::string Captured(F f) {
  std::fflush(stderr);
  int pipefd[2];
  EXPECT_EQ(pipe(pipefd), 0);
  int saved = dup(STDERR_FILENO);
  dup2(pipefd[1], STDERR_FILENO);
  f();
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(pipefd[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) out.append(buf, n);
  close(pipefd[0]);
  return out;
}

TEST(LogTest, TextLinesCarryTheirFieldsAsKeyValue) {
  SetLogFormat(LogFormat::kText);
  std::string out = Captured([] {
    LogFor(LogLevel::kWarning, "svc", {{"request_id", "r1"}}, "it ", 2, " failed");
  });
  EXPECT_THAT(out, ::testing::MatchesRegex(".* W svc: it 2 failed request_id=r1\n"));
}

// A field's value may come from a peer (a client's `user`): in text logs it
// is quoted and escaped, so it can forge neither a line nor a field.
TEST(LogTest, TextFieldValuesThatAreNotOneWordAreQuotedAndEscaped) {
  SetLogFormat(LogFormat::kText);
  std::string out = Captured([] {
    LogFor(LogLevel::kInfo, "svc",
           {{"end_user", "eve\n2026-12-03T00:00:00Z E svc: forged key=\"x\""}, {"empty", ""}},
           "request answered");
  });
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_THAT(out, ::testing::HasSubstr(
                       R"(end_user="eve\x0a2026-12-03T00:00:00Z E svc: forged key=\"x\"")"));
  EXPECT_THAT(out, ::testing::HasSubstr(R"( empty="")"));
}

// A message may carry a peer's bytes (an upstream's error body): a newline
// in it must not start a line of its own in text logs.
TEST(LogTest, TextMessagesWithControlBytesStayOneLine) {
  SetLogFormat(LogFormat::kText);
  std::string out = Captured([] {
    LogFor(LogLevel::kWarning, "svc", {{"request_id", "r1"}},
           "request failed: HTTP 500: oops\r\n2026-12-03T00:00:00Z E svc: forged");
  });
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_THAT(out, ::testing::HasSubstr(
                       "oops\\x0d\\x0a2026-12-03T00:00:00Z E svc: forged request_id=r1\n"));
}

TEST(LogTest, JsonLinesAreOneObjectEachEvenWithOddBytes) {
  SetLogFormat(LogFormat::kJson);
  std::string out = Captured([] {
    LogFor(LogLevel::kInfo, "svc", {{"request_id", "r1"}}, "bad \xff bytes \"q\"\nnext");
  });
  SetLogFormat(LogFormat::kText);
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  auto j = json::Json::parse(out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["component"], "svc");
  EXPECT_EQ(j["request_id"], "r1");
  EXPECT_THAT(j["message"].get<std::string>(), ::testing::HasSubstr("\"q\"\nnext"));
}

// A reader of stderr that stops reading (a full pipe) must not stall the
// threads that log: with async logging they queue (bounded) or drop, and
// the writer says how many it dropped once the reader is back.
TEST(LogTest, AsyncLoggingNeverWaitsForAStuckReaderAndCountsWhatItDrops) {
  SetLogFormat(LogFormat::kText);
  std::fflush(stderr);
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const int saved = dup(STDERR_FILENO);
  dup2(pipefd[1], STDERR_FILENO);
  StartAsyncLogging(/*max_queued_bytes=*/16 << 10);
  // 2 MB of lines into a 64 KiB pipe nobody reads: written at once, each
  // call would block for good after the first 64 KiB.
  auto logging = std::async(std::launch::async, [] {
    for (int i = 0; i < 20000; ++i) LogInfo("svc", "line ", i, " ", std::string(80, 'x'));
  });
  const bool returned = logging.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  std::string out;
  std::thread reader([&] {
    char buf[1 << 16];
    for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) out.append(buf, n);
  });
  EXPECT_TRUE(returned) << "a logging thread waited for the stuck reader";
  logging.wait();
  EXPECT_GT(DroppedLogLines(), 0u);
  StopAsyncLogging();                // Writes out the queue and the count of dropped lines.
  LogInfo("svc", "after the stop");  // Written at once again.
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(pipefd[1]);
  reader.join();
  close(pipefd[0]);
  EXPECT_THAT(out, ::testing::HasSubstr("line 0 "));
  EXPECT_THAT(out, ::testing::ContainsRegex("W log: [0-9]+ lines dropped"));
  EXPECT_THAT(out, ::testing::EndsWith("I svc: after the stop\n"));
  // Every line arrived whole.
  size_t start = 0, lines = 0;
  for (size_t end; (end = out.find('\n', start)) != std::string::npos; start = end + 1) {
    const std::string line = out.substr(start, end - start);
    ASSERT_THAT(line, ::testing::MatchesRegex("20[0-9-]+T[0-9:.]+Z [IW] (svc|log): .*")) << line;
    ++lines;
  }
  EXPECT_EQ(start, out.size());
  EXPECT_LT(lines, 20002u) << "some lines were dropped, not queued without bound";
}

}  // namespace
}  // namespace moa
