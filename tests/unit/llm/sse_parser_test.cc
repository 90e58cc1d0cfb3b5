#include "lib/llm/sse_parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace moa::llm {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> ParseInTwo(const std::string& stream, size_t split) {
  SseParser parser;
  std::vector<std::string> data;
  auto on_event = [&](const SseEvent& e) { data.push_back(e.data); };
  EXPECT_TRUE(parser.Feed(absl::string_view(stream).substr(0, split), on_event));
  EXPECT_TRUE(parser.Feed(absl::string_view(stream).substr(split), on_event));
  return data;
}

// Every sample is fed split in two at every byte position, and byte by byte;
// the events must not depend on where the reads were cut.
void ExpectSameAtEverySplit(const std::string& stream, const std::vector<std::string>& expected) {
  for (size_t split = 0; split <= stream.size(); ++split) {
    EXPECT_EQ(ParseInTwo(stream, split), expected) << "split at byte " << split;
  }
  SseParser parser;
  std::vector<std::string> data;
  for (char c : stream) {
    parser.Feed(absl::string_view(&c, 1), [&](const SseEvent& e) { data.push_back(e.data); });
  }
  EXPECT_EQ(data, expected) << "byte by byte";
}

TEST(SseParserTest, OpenAiStreamWithLfAtEverySplit) {
  ExpectSameAtEverySplit(
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
      "data: [DONE]\n\n",
      {R"({"choices":[{"delta":{"content":"Hel"}}]})",
       R"({"choices":[{"delta":{"content":"lo"}}]})", "[DONE]"});
}

TEST(SseParserTest, CrlfLineEndingsAtEverySplit) {
  ExpectSameAtEverySplit("data: a\r\n\r\ndata: b\r\n\r\ndata: [DONE]\r\n\r\n",
                         {"a", "b", "[DONE]"});
}

TEST(SseParserTest, BareCrLineEndingsAtEverySplit) {
  ExpectSameAtEverySplit("data: a\r\rdata: b\r\r", {"a", "b"});
}

TEST(SseParserTest, CommentLinesAreIgnoredAtEverySplit) {
  ExpectSameAtEverySplit(": keep-alive\n\n: OPENROUTER PROCESSING\n\ndata: x\n\n", {"x"});
}

TEST(SseParserTest, MultiLineDataIsJoinedWithNewlinesAtEverySplit) {
  ExpectSameAtEverySplit("data: line one\ndata: line two\ndata:line three\n\n",
                         {"line one\nline two\nline three"});
}

TEST(SseParserTest, ErrorObjectAfterTokensAtEverySplit) {
  ExpectSameAtEverySplit(
      "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
      "event: error\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n",
      {R"({"choices":[{"delta":{"content":"a"}}]})", R"({"error":{"message":"overloaded"}})"});
}

TEST(SseParserTest, EventFieldIsReported) {
  SseParser parser;
  std::vector<std::string> types;
  parser.Feed("event: error\ndata: {}\n\ndata: {}\n\n",
              [&](const SseEvent& e) { types.push_back(e.event); });
  EXPECT_THAT(types, ElementsAre("error", ""));
}

TEST(SseParserTest, BlankLinesWithoutDataDispatchNothing) {
  ExpectSameAtEverySplit("\n\n\nid: 7\nretry: 100\n\n", {});
}

TEST(SseParserTest, IncompleteEventIsHeldUntilItsBlankLine) {
  SseParser parser;
  std::vector<std::string> data;
  auto on_event = [&](const SseEvent& e) { data.push_back(e.data); };
  parser.Feed("data: partial", on_event);
  parser.Feed("\n", on_event);
  EXPECT_TRUE(data.empty());
  parser.Feed("\n", on_event);
  EXPECT_THAT(data, ElementsAre("partial"));
}

TEST(SseParserTest, OverLongLineIsReportedAsMalformed) {
  SseParser parser;
  std::string huge(SseParser::kMaxLineBytes + 1, 'x');
  EXPECT_FALSE(parser.Feed(huge, [](const SseEvent&) {}));
}

TEST(SseParserTest, ResetForgetsPartialInput) {
  SseParser parser;
  std::vector<std::string> data;
  auto on_event = [&](const SseEvent& e) { data.push_back(e.data); };
  parser.Feed("data: stale", on_event);
  parser.Reset();
  parser.Feed("data: fresh\n\n", on_event);
  EXPECT_THAT(data, ElementsAre("fresh"));
}

TEST(SseParserTest, AnEventOfEndlessDataLinesIsRefusedNotBuffered) {
  SseParser parser;
  int events = 0;
  std::string line = "data: " + std::string(64 << 10, 'x') + "\n";
  bool ok = true;
  for (int i = 0; i < 200 && ok; ++i) {  // 12.5 MiB of one event.
    ok = parser.Feed(line, [&](const SseEvent&) { ++events; });
  }
  EXPECT_FALSE(ok);
  EXPECT_EQ(events, 0);
}

}  // namespace
}  // namespace moa::llm
