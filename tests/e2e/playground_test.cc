// The playground (/ui/) in Debian's chromium, driven by puppeteer-core
// (tests/http/playground.test.mjs), on a live cluster with keys on. The
// screenshots it takes land in playground-screenshots/ beside the test;
// docs/images holds copies of them (docs/playground.md).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "tests/support/local_cluster.h"

namespace moa {
namespace {

using ::moa::testing::Process;
using ::testing::HasSubstr;

constexpr char kKey[] = "sk-moa-playground-key-1234";

TEST(PlaygroundTest, ChromiumDrivesThePlaygroundOnALiveCluster) {
  const std::string keys = absl::StrCat("/tmp/moa-playground-keys-", getpid());
  std::ofstream(keys) << kKey << "\n";
  testing::ClusterSpec spec;
  spec.models = {"a", "b", "hang", "slow", "broken", "z"};
  spec.pipelines_yaml =
      "pipelines:\n"
      "  panel:\n"
      "    layers: [[a, b, hang, slow, broken]]\n"
      "    aggregator: z\n"
      "    policy: {min_proposals: 2, straggler_grace_seconds: 0.5}\n"
      "  shuffled:\n"
      "    steps: [{propose: [a, b]}, shuffle, {aggregate: z}]\n"
      "default_pipeline: panel\n"
      "presets:\n  cheap: {max_proposers: 2, description: two proposers per layer}\n";
  // Once a and b are in (the quorum), the others get half a second: hang
  // never answers and slow writes 5 tokens a second (80 s in all), so both
  // are cut as stragglers; broken answers HTTP 500, a failure.
  spec.sim_profiles_yaml =
      "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 12}\n"
      "models:\n  hang: {faults: {hang: 1}}\n"
      "  slow: {tokens_per_second: 5, answer_tokens: 400}\n"
      "  broken: {faults: {http_500: 1}}\n";
  spec.model_yaml["a"] = "price: {input_per_million: 1, output_per_million: 2}";
  spec.orchestrator_flags = {"--http_port=0", "--api_keys_file=" + keys};
  testing::LocalCluster cluster(spec);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  const std::string shots = (std::filesystem::current_path() / "playground-screenshots").string();
  Process node({"/usr/bin/env", "node", "--test", "--test-reporter=spec",
                std::string(MOA_SOURCE_DIR) + "/tests/http/playground.test.mjs"},
               {absl::StrCat("MOA_BASE_URL=http://127.0.0.1:", cluster.orchestrator_http_port()),
                absl::StrCat("MOA_API_KEY=", kKey), "MOA_SCREENSHOT_DIR=" + shots,
                "NODE_PATH=" + std::string(MOA_SOURCE_DIR) + "/tests/http/node_modules"});
  const int code = node.Wait(absl::Seconds(240));
  const std::string out = node.Output();
  std::printf("%s\n", out.c_str());
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr(" fail 0\n"));
  for (const char* shot : {"playground-1280x800.png", "playground-phone.png"}) {
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(shots) / shot)) << shot;
  }
  std::remove(keys.c_str());
}

}  // namespace
}  // namespace moa
