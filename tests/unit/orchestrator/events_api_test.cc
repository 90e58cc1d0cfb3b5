// The event-stream door (/v1/moa/chat) and the playground's static files:
// a ChatRequest in Protobuf's JSON form, every ChatEvent as an SSE event,
// nothing a client sends dropped; the pages served with their policy.
#include "services/orchestrator/events_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "services/orchestrator/playground.h"

namespace moa::orchestrator {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using json = nlohmann::json;

TEST(EventsApiTest, ReadsAChatRequestInProtobufsJsonForm) {
  HttpError e;
  auto parsed = events::EventsSurface().Parse(
      R"({"pipeline": "moa", "preset": "budget", "stream_proposals": true,
          "messages": [{"role": "ROLE_USER", "content": "Hi"}],
          "stepSeed": "42", "policy": {"min_proposals": 2, "straggler_grace": "0.5s"}})",
      &e);
  ASSERT_TRUE(parsed.ok()) << e.message;
  EXPECT_TRUE(parsed->stream);
  EXPECT_EQ(parsed->chat.pipeline(), "moa");
  EXPECT_EQ(parsed->chat.preset(), "budget");
  EXPECT_TRUE(parsed->chat.stream_proposals());
  ASSERT_EQ(parsed->chat.messages_size(), 1);
  EXPECT_EQ(parsed->chat.messages(0).role(), v1::ROLE_USER);
  EXPECT_EQ(parsed->chat.step_seed(), 42u);
  EXPECT_EQ(parsed->chat.policy().min_proposals(), 2);
  EXPECT_EQ(parsed->chat.policy().straggler_grace().nanos(), 500000000);
}

TEST(EventsApiTest, RefusesUnknownFieldsWrongValuesAndNonJsonByName) {
  for (auto [body, says] : std::vector<std::pair<const char*, const char*>>{
           {R"({"messages": [], "temperature": 1})", "temperature"},
           {R"({"messages": [{"role": "ROLE_NOPE", "content": "x"}]})", "ROLE_NOPE"},
           {R"({"stream_proposals": "yes"})", "stream_proposals must be true or false"},
           {R"({"tools": {"parallel_tool_calls": "no"}})", "tools.parallel_tool_calls"},
           {R"({"tools": {"tools": [{"name": "f", "strict": "1"}]}})", "tools.tools[0].strict"},
           {"[1]", "not a JSON object"},
           {std::string(200, '[').c_str(), "moa.v1.ChatRequest"},
           {"not json", "moa.v1.ChatRequest"},
           {"", "moa.v1.ChatRequest"}}) {
    HttpError e;
    auto parsed = events::EventsSurface().Parse(body, &e);
    EXPECT_FALSE(parsed.ok()) << body;
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_THAT(e.message, HasSubstr(says)) << body;
    json error = json::parse(events::EventsSurface().ErrorJson(e));
    EXPECT_EQ(error["error"]["code"], "invalid_body");
  }
}

TEST(EventsApiTest, EveryEventIsAnSseEventNamedByItsCaseWithItsTime) {
  ParsedRequest request;
  request.stream = true;
  auto writer = events::EventsSurface().NewWriter(request, "moa", 0);
  EXPECT_EQ(writer->Head(), "");
  v1::ChatEvent delta;
  delta.mutable_proposal_delta()->mutable_ref()->set_layer(1);
  delta.mutable_proposal_delta()->mutable_ref()->set_model("a");
  delta.mutable_proposal_delta()->set_text("line one\nline \"two\"");
  const std::string sse = writer->Event(delta);
  ASSERT_THAT(sse, StartsWith("event: proposal_delta\ndata: {"));
  ASSERT_EQ(sse.substr(sse.size() - 2), "\n\n");
  // One data line: the text's newline is escaped in the JSON.
  const std::string data = sse.substr(sse.find("data: ") + 6, sse.size() - sse.find("data: ") - 8);
  EXPECT_EQ(data.find('\n'), std::string::npos);
  json j = json::parse(data);
  EXPECT_TRUE(j["at_ms"].is_number_integer());
  EXPECT_EQ(j["proposal_delta"]["ref"]["model"], "a");
  EXPECT_EQ(j["proposal_delta"]["text"], "line one\nline \"two\"");

  v1::ChatEvent summary;
  summary.mutable_summary()->set_saved_tokens(7);
  summary.mutable_summary()->mutable_total()->set_seconds(2);
  j = json::parse(events::SseEvent(summary, absl::Milliseconds(1500)).substr(21));
  EXPECT_EQ(j["at_ms"], 1500);
  EXPECT_EQ(j["summary"]["saved_tokens"], "7");  // Protobuf's JSON form of int64.
  EXPECT_EQ(j["summary"]["total"], "2s");

  EXPECT_THAT(writer->Tail(absl::OkStatus()), StartsWith("event: done\ndata: {\"at_ms\":"));
  const std::string failed = writer->Tail(absl::UnavailableError("model z: down"));
  ASSERT_THAT(failed, StartsWith("event: error\ndata: "));
  j = json::parse(failed.substr(failed.find("data: ") + 6));
  EXPECT_EQ(j["error"]["message"], "model z: down");
  EXPECT_TRUE(j["at_ms"].is_number_integer());
}

TEST(PlaygroundTest, ServesItsFilesWithAPolicyThatAllowsOnlyThisOrigin) {
  net::HttpResponse index = playground::Serve("/ui/", true);
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(index.body, HasSubstr("<script src=\"app.js\""));
  auto header = [](const net::HttpResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return std::string();
  };
  EXPECT_THAT(header(index, "Content-Security-Policy"), StartsWith("default-src 'none';"));
  EXPECT_EQ(header(index, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(playground::Serve("/ui/index.html", true).body, index.body);
  EXPECT_EQ(playground::Serve("/ui/app.js", true).content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(playground::Serve("/ui/style.css", true).content_type, "text/css; charset=utf-8");
  // No asset is fetched from elsewhere: no absolute URL in any file.
  for (size_t i = 0; i < playground::kEmbeddedFileCount; ++i) {
    const auto& f = playground::kEmbeddedFiles[i];
    EXPECT_EQ(f.data.find("http://"), std::string_view::npos) << f.name;
    EXPECT_EQ(f.data.find("https://"), std::string_view::npos) << f.name;
  }
  net::HttpResponse bare = playground::Serve("/ui", true);
  EXPECT_EQ(bare.status, 308);
  EXPECT_EQ(header(bare, "Location"), "/ui/");
  EXPECT_EQ(playground::Serve("/ui/../etc/passwd", true).status, 404);
  EXPECT_EQ(playground::Serve("/ui/missing.js", true).status, 404);
  EXPECT_EQ(playground::Serve("/ui/", false).status, 405);
  EXPECT_TRUE(playground::Owns("/ui"));
  EXPECT_TRUE(playground::Owns("/ui/x"));
  EXPECT_FALSE(playground::Owns("/uix"));
}

}  // namespace
}  // namespace moa::orchestrator
