// The orchestrator's OpenAI-compatible HTTP server against a live cluster:
// the official `openai` npm client (tests/http, run with Node.js) and the
// curl examples of docs/http-api.md, run exactly as written.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/local_cluster.h"

namespace moa {
namespace {

using ::moa::testing::Process;
using ::testing::HasSubstr;

constexpr char kKey[] = "sk-moa-test-key-1234";

testing::ClusterSpec Spec(const std::string& keys_file, int http_port) {
  testing::ClusterSpec spec;
  spec.models = {"a", "b", "z", "slow1", "slow2", "jz", "prose", "tz", "sj"};
  // json: its aggregator answers JSON (in a code fence, as models do);
  // prose: its aggregator never does (structured outputs).
  spec.pipelines_yaml =
      "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\n"
      "  slow: {layers: [[slow1, slow2]], aggregator: z}\n"
      "  json: {layers: [[a, b]], aggregator: jz}\n"
      "  prose: {layers: [[a, b]], aggregator: prose}\n"
      "  agent: {layers: [[a, b]], aggregator: tz}\n"
      "  schema: {layers: [[a, b]], aggregator: sj}\ndefault_pipeline: moa\n";
  spec.sim_profiles_yaml =
      "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 12}\n"
      "models:\n  z: {tool_calls: true, tool_arguments: '{\"city\": \"Oslo\"}'}\n  slow1: "
      "{tokens_per_second: 20, answer_tokens: 400}\n"
      "  slow2: {tokens_per_second: 20, answer_tokens: 400}\n"
      "  jz: {answer_text: \"```json\\n{\\\"city\\\": \\\"Oslo\\\", \\\"days\\\": 3}\\n```\"}\n"
      "  prose: {answer_text: \"It will rain in Oslo.\"}\n"
      // agent: its aggregator calls the first tool it is given, then, once
      // the result is in, answers.
      "  tz: {tool_calls: true, tool_arguments: '{\"city\": \"Oslo\"}',\n"
      "       answer_text: \"It is 12 C in Oslo.\"}\n"
      // schema: its aggregator answers a value of the schema it is asked for.
      "  sj: {structured_answers: 1}\n";
  // Images: a and tz read them, b and z do not.
  spec.model_yaml["a"] = "capabilities: [vision]";
  spec.model_yaml["tz"] = "capabilities: [vision]";
  spec.orchestrator_flags = {absl::StrCat("--http_port=", http_port),
                             "--api_keys_file=" + keys_file};
  return spec;
}

std::string WriteKeysFile() {
  std::string path = "/tmp/moa-http-test-keys-" + std::to_string(getpid());
  std::ofstream(path) << "# client keys\n" << kKey << "\nsk-second-key\n";
  return path;
}

// The answer the gRPC service gives to "Hello" on pipeline moa.
std::string GrpcAnswer(testing::LocalCluster& cluster) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
  v1::ChatRequest req;
  req.set_pipeline("moa");
  auto* m = req.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content("Hello");
  auto reader = cluster.stub().Chat(&ctx, req);
  std::string answer;
  v1::ChatEvent e;
  while (reader->Read(&e)) answer += e.answer_delta();
  EXPECT_TRUE(reader->Finish().ok());
  return answer;
}

// Runs one of tests/http's node test files against a live cluster.
void RunClientTests(const std::string& file, const std::string& base_path) {
  std::string keys = WriteKeysFile();
  testing::LocalCluster cluster(Spec(keys, 0));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  int http_port = cluster.orchestrator_http_port();
  ASSERT_GT(http_port, 0);
  std::string expected = GrpcAnswer(cluster);
  ASSERT_THAT(expected, HasSubstr("[z synthesis of 2 responses"));
  Process node({"/usr/bin/env", "node", "--test", "--test-reporter=spec",
                std::string(MOA_SOURCE_DIR) + "/tests/http/" + file},
               {absl::StrCat("MOA_BASE_URL=http://127.0.0.1:", http_port, base_path),
                absl::StrCat("MOA_API_KEY=", kKey),
                absl::StrCat("MOA_SIM_URL=http://127.0.0.1:", cluster.sim_port()),
                "MOA_EXPECTED=" + expected,
                "NODE_PATH=" + std::string(MOA_SOURCE_DIR) + "/tests/http/node_modules"});
  int code = node.Wait(absl::Seconds(120));
  std::string out = node.Output();
  std::printf("%s\n", out.c_str());
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr(" fail 0\n"));
  std::remove(keys.c_str());
}

TEST(OpenAiHttpTest, OfficialOpenAiClientAgainstALiveCluster) {
  RunClientTests("openai_sdk.test.mjs", "/v1");
}

// The chat-completions door with the Vercel AI SDK, as apps built on it
// use a model (tool loops, typed objects, streamed text).
TEST(OpenAiHttpTest, VercelAiSdkAgainstALiveCluster) { RunClientTests("ai_sdk.test.mjs", "/v1"); }

// The Anthropic Messages door with Anthropic's own client (its base URL is
// the server's root: it posts to /v1/messages, with x-api-key).
TEST(OpenAiHttpTest, OfficialAnthropicClientAgainstALiveCluster) {
  RunClientTests("anthropic_sdk.test.mjs", "");
}

// The simulator's Anthropic and Gemini dialects with those vendors' own
// clients (so what the proposers are tested against is what the vendors
// send).
TEST(OpenAiHttpTest, VendorClientsReadTheSimulatorsAnthropicAndGeminiDialects) {
  RunClientTests("sim_dialects.test.mjs", "");
}

TEST(OpenAiHttpTest, GrpcChatNeedsTheKeyToo) {
  std::string keys = WriteKeysFile();
  testing::LocalCluster cluster(Spec(keys, 0));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  for (const char* auth : {"", "Bearer sk-nope"}) {
    grpc::ClientContext ctx;
    if (*auth) ctx.AddMetadata("authorization", auth);
    v1::ChatRequest req;
    auto* m = req.add_messages();
    m->set_role(v1::ROLE_USER);
    m->set_content("Hello");
    auto reader = cluster.stub().Chat(&ctx, req);
    v1::ChatEvent e;
    while (reader->Read(&e)) {
    }
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << auth;
    EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr("sk-nope")));
  }
  EXPECT_TRUE(cluster.SimRequests().empty());
  std::remove(keys.c_str());
}

TEST(OpenAiHttpTest, SigtermCancelsHttpRequestsStillRunningAfterTheGraceAndExitsZero) {
  std::string keys = WriteKeysFile();
  testing::ClusterSpec spec = Spec(keys, 0);
  spec.orchestrator_flags.push_back("--drain_grace=1s");
  testing::LocalCluster cluster(spec);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  int port = cluster.orchestrator_http_port();
  testing::HttpResult result;
  std::thread client([&] {
    result = testing::HttpRequest(
        "POST", absl::StrCat("http://127.0.0.1:", port, "/v1/chat/completions"),
        R"({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "x"}]})",
        {absl::StrCat("Authorization: Bearer ", kKey), "Content-Type: application/json"});
  });
  ASSERT_TRUE(moa::testing::WaitFor(
      [&] {
        int open = 0;
        for (const auto& r : cluster.SimRequests()) open += r["outcome"] == "in_progress";
        return open == 2;
      },
      absl::Seconds(5)));
  absl::Time signalled = absl::Now();
  cluster.orchestrator_process().Signal(SIGTERM);
  EXPECT_EQ(cluster.orchestrator_process().Wait(absl::Seconds(10)), 0)
      << cluster.orchestrator_process().Output();
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(5)) << "grace 1 s, then the cancel";
  client.join();
  EXPECT_EQ(result.status, 200) << "the stream had started";
  EXPECT_THAT(result.body, HasSubstr("\"error\"")) << "the cancel reached the client as an event";
  EXPECT_TRUE(moa::testing::WaitFor(
      [&] {
        for (const auto& r : cluster.SimRequests()) {
          if (r["outcome"] != "client_closed") return false;
        }
        return true;
      },
      absl::Seconds(2)))
      << cluster.SimRequests().dump();
  std::remove(keys.c_str());
}

// Every ```sh block between the curl-examples markers of docs/http-api.md.
std::vector<std::string> ReadmeCurlExamples() {
  std::ifstream in(std::string(MOA_SOURCE_DIR) + "/docs/http-api.md");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  size_t begin = text.find("<!-- curl-examples:begin -->");
  size_t end = text.find("<!-- curl-examples:end -->");
  std::vector<std::string> blocks;
  if (begin == std::string::npos || end == std::string::npos) return blocks;
  std::string section = text.substr(begin, end - begin);
  std::regex block("```sh\n([\\s\\S]*?)```");
  for (auto it = std::sregex_iterator(section.begin(), section.end(), block);
       it != std::sregex_iterator(); ++it) {
    blocks.push_back((*it)[1]);
  }
  return blocks;
}

TEST(OpenAiHttpTest, ReadmeCurlExamplesRunAsWritten) {
  std::vector<std::string> blocks = ReadmeCurlExamples();
  ASSERT_GE(blocks.size(), 3u) << "docs/http-api.md has the curl examples between the markers";
  std::string keys = WriteKeysFile();
  // The examples talk to localhost:8080, the default HTTP port.
  ASSERT_EQ(testing::PortHolder(8080), "") << "port 8080 is needed by this test";
  testing::LocalCluster cluster(Spec(keys, 8080));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  for (const std::string& block : blocks) {
    std::string script = "/tmp/moa-readme-example-" + std::to_string(getpid()) + ".sh";
    std::ofstream(script) << "set -euo pipefail\n" << block;
    Process p({"/bin/bash", script}, {absl::StrCat("MOA_API_KEY=", kKey)});
    int code = p.Wait(absl::Seconds(30));
    std::string out = p.Output();
    EXPECT_EQ(code, 0) << block << "\n---\n" << out;
    // An error object (a Response's "error": null is none).
    EXPECT_THAT(out, ::testing::Not(::testing::ContainsRegex("\"error\": ?\\{")))
        << block << "\n---\n"
        << out;
    std::remove(script.c_str());
  }
  std::remove(keys.c_str());
}

}  // namespace
}  // namespace moa
