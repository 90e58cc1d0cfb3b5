#include "lib/base/trace_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moa {
namespace {

using ::testing::MatchesRegex;

TEST(TraceContextTest, AWellFormedIdAndTraceparentAreKept) {
  TraceContext t =
      AcceptTraceContext("req-1_a.b:c", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(t.request_id, "req-1_a.b:c");
  EXPECT_EQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t.span_id, "00f067aa0ba902b7");
  EXPECT_EQ(t.Traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
}

TEST(TraceContextTest, AChildKeepsTheTraceAndTheIdWithASpanOfItsOwn) {
  TraceContext t = AcceptTraceContext("id", "");
  TraceContext c = t.Child();
  EXPECT_EQ(c.request_id, "id");
  EXPECT_EQ(c.trace_id, t.trace_id);
  EXPECT_NE(c.span_id, t.span_id);
  EXPECT_THAT(c.Traceparent(), MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-01"));
}

TEST(TraceContextTest, AnythingMalformedIsReplacedByNewIds) {
  for (const char* id : {"", "has space", "new\r\nline", "ü", std::string(129, 'a').c_str()}) {
    TraceContext t = AcceptTraceContext(id, "");
    EXPECT_THAT(t.request_id, MatchesRegex("[0-9a-f]{32}")) << id;
  }
  for (const char* parent : {"", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                             "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                             "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                             "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
                             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"}) {
    TraceContext t = AcceptTraceContext("id", parent);
    EXPECT_NE(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") << parent;
    EXPECT_THAT(t.Traceparent(), MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-01")) << parent;
    EXPECT_NE(t.trace_id, std::string(32, '0'));
  }
}

}  // namespace
}  // namespace moa
