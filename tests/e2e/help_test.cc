// Every binary explains itself: --help lists its own flags with defaults,
// `moa help` lists the commands and `moa COMMAND --help` a command's flags,
// and every flag the README names exists in some binary.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string RunBinary(std::vector<std::string> argv) {
  argv[0] = BinaryPath(argv[0]);
  Process p(argv);
  p.Wait(absl::Seconds(10));
  return p.Output();
}

TEST(HelpTest, EveryServiceListsItsOwnFlagsWithDefaults) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"services/proposer/moa-proposer",
       {"--model", "--upstream_url", "--continuation", "--breaker_min_calls", "default: 10"}},
      {"services/aggregator/moa-aggregator", {"--config", "--synthesis_prompt_file"}},
      {"services/orchestrator/moa-orchestrator",
       {"--request_timeout", "--hedge_budget", "--breaker_cooldown", "--http_port"}},
      {"tools/upstream-sim/moa-upstream-sim", {"--profiles", "--latency_scale"}},
  };
  for (const auto& [binary, flags] : cases) {
    std::string help = RunBinary({binary, "--help"});
    EXPECT_THAT(help, Not(HasSubstr("No flags matched"))) << binary;
    for (const std::string& f : flags) EXPECT_THAT(help, HasSubstr(f)) << binary << ": " << f;
    EXPECT_THAT(help,
                ::testing::AnyOf(HasSubstr("Flags from services/"), HasSubstr("Flags from tools/")))
        << binary;
  }
}

TEST(HelpTest, TheCliListsItsCommandsAndEachCommandsFlags) {
  std::string overview = RunBinary({"tools/moa/moa", "help"});
  for (const char* command : {"ask", "chat", "batch", "pipelines", "endpoints", "health"}) {
    EXPECT_THAT(overview, HasSubstr(absl::StrCat("  ", command, " "))) << command;
  }
  std::string ask = RunBinary({"tools/moa/moa", "ask", "--help"});
  EXPECT_THAT(ask, HasSubstr("usage: moa ask"));
  EXPECT_THAT(ask, HasSubstr("--pipeline (default: \"\")"));
  EXPECT_THAT(ask, Not(HasSubstr("--format"))) << "batch's flags are not ask's";
  std::string batch = RunBinary({"tools/moa/moa", "help", "batch"});
  EXPECT_THAT(batch, HasSubstr("--format (default: alpaca_eval)"));
  EXPECT_THAT(RunBinary({"tools/moa/moa", "--help"}), HasSubstr("--orchestrator"));
}

TEST(HelpTest, EveryFlagTheReadmeNamesExists) {
  std::string known;
  for (const char* binary :
       {"services/proposer/moa-proposer", "services/aggregator/moa-aggregator",
        "services/orchestrator/moa-orchestrator", "tools/upstream-sim/moa-upstream-sim",
        "tools/moa/moa",
        // The Performance section names benchmark flags too.
        "bench/proposer_bench", "bench/moa_bench", "bench/resilience_bench",
        "bench/reference_bench", "bench/instructions_bench", "bench/parse_bench",
        "bench/staircase_bench", "bench/limits_bench", "bench/presets_bench"}) {
    known += RunBinary({binary, "--helpfull"});
  }
  std::ifstream in(std::string(MOA_SOURCE_DIR) + "/README.md");
  std::stringstream readme;
  readme << in.rdbuf();
  // Flags of other programs the README shows in commands.
  // (podman, debootstrap, ctest, curl, valgrind, callgrind_annotate/_control,
  // scripts/install-deps,
  // scripts/container-base-images).
  const std::set<std::string> others = {
      "--build",    "--fail-with-body", "--test-dir",  "--help",
      "--helpfull", "--helpshort",      "--network",   "--output-on-failure",
      "--variant",  "--force",          "--tool",      "--inclusive",
      "--zero",     "--cacert",         "--from-file", "--from-literal"};  // curl, kubectl
  const std::string text = readme.str();
  std::regex flag("--[a-z][a-z_0-9-]*");
  int checked = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), flag); it != std::sregex_iterator();
       ++it) {
    const std::string name = it->str();
    if (others.count(name)) continue;
    ++checked;
    EXPECT_THAT(known, HasSubstr(name + " "))
        << "the README names " << name << ", which no binary has";
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
}  // namespace moa::testing
