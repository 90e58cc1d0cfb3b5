#include "lib/base/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

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

}  // namespace
}  // namespace moa
