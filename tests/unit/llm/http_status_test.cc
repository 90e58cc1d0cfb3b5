#include "lib/llm/http_status.h"

#include <gtest/gtest.h>

namespace moa::llm {
namespace {

TEST(HttpStatusTest, MapsUpstreamCodesAsDocumented) {
  EXPECT_EQ(StatusFromHttp(400, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromHttp(401, "x").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(StatusFromHttp(403, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromHttp(404, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusFromHttp(408, "x").code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(StatusFromHttp(429, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(StatusFromHttp(500, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromHttp(503, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromHttp(500, "boom").message(), "HTTP 500: boom");
}

}  // namespace
}  // namespace moa::llm
