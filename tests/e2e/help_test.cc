// Every binary explains itself: --help lists its own flags with defaults,
// `moa help` lists the commands and `moa COMMAND --help` a command's flags,
// and every flag the README names exists in some binary.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "lib/config/cluster_config.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// README.md and every page of docs/, one after the other.
std::string Documentation() {
  std::vector<std::filesystem::path> pages = {std::filesystem::path(MOA_SOURCE_DIR) / "README.md"};
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(MOA_SOURCE_DIR) / "docs")) {
    if (entry.path().extension() == ".md") pages.push_back(entry.path());
  }
  std::string text;
  for (const auto& page : pages) {
    std::ifstream in(page);
    std::stringstream ss;
    ss << in.rdbuf();
    text += ss.str() + "\n";
  }
  return text;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A --help listing as (flag, default) pairs: "--name (help); default: X;",
// wrapped over lines.
std::vector<std::pair<std::string, std::string>> FlagsOf(const std::string& help) {
  std::vector<std::pair<std::string, std::string>> flags;
  std::string entry;
  auto flush = [&] {
    std::smatch m;
    static const std::regex kEntry("^--([a-z_0-9]+) \\(.*\\); default: (.*);$");
    if (!entry.empty() && std::regex_match(entry, m, kEntry)) flags.emplace_back(m[1], m[2]);
    entry.clear();
  };
  std::istringstream lines(help);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("    --", 0) == 0) {
      flush();
      entry = line.substr(4);
    } else if (line.rfind("      ", 0) == 0 && !entry.empty()) {
      entry += " " + line.substr(6);
    } else {
      flush();
    }
  }
  flush();
  return flags;
}

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

TEST(HelpTest, EveryFlagTheDocumentationNamesExists) {
  std::string known;
  for (const char* binary :
       {"services/proposer/moa-proposer", "services/aggregator/moa-aggregator",
        "services/orchestrator/moa-orchestrator", "tools/upstream-sim/moa-upstream-sim",
        "tools/moa/moa",
        // docs/benchmarks.md names benchmark flags too.
        "bench/proposer_bench", "bench/moa_bench", "bench/resilience_bench",
        "bench/reference_bench", "bench/instructions_bench", "bench/parse_bench",
        "bench/staircase_bench", "bench/limits_bench", "bench/presets_bench"}) {
    known += RunBinary({binary, "--helpfull"});
  }
  const std::string text = Documentation();
  // Flags of other programs the documentation shows in commands.
  // (podman, debootstrap, ctest, curl, valgrind, callgrind_annotate/_control,
  // scripts/install-deps,
  // scripts/container-base-images).
  const std::set<std::string> others = {
      "--build",    "--fail-with-body", "--test-dir",  "--help",
      "--helpfull", "--helpshort",      "--network",   "--output-on-failure",
      "--variant",  "--force",          "--tool",      "--inclusive",
      "--zero",     "--cacert",         "--from-file", "--from-literal"};  // curl, kubectl
  std::regex flag("--[a-z][a-z_0-9-]*");
  int checked = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), flag); it != std::sregex_iterator();
       ++it) {
    const std::string name = it->str();
    if (others.count(name)) continue;
    ++checked;
    EXPECT_NE(known.find(name + " "), std::string::npos)
        << "the documentation names " << name << ", which no binary has";
  }
  EXPECT_GT(checked, 50);
}

// docs/configuration.md's reference has a row for every flag of every
// binary (with the default --help prints), every key the config parser
// takes, and every environment variable the code reads: a new one without
// its line fails here.
TEST(ConfigReferenceTest, EveryFlagKeyAndVariableHasARow) {
  const std::string doc =
      ReadFile(std::filesystem::path(MOA_SOURCE_DIR) / "docs" / "configuration.md");
  auto section = [&](const std::string& heading) {
    const size_t start = doc.find("\n### " + heading + "\n");
    if (start == std::string::npos) return std::string();
    const size_t end = doc.find("\n### ", start + 1);
    return doc.substr(start, end == std::string::npos ? std::string::npos : end - start);
  };
  int flags = 0;
  for (const auto& [name, binary] : std::vector<std::pair<std::string, std::string>>{
           {"moa-orchestrator", "services/orchestrator/moa-orchestrator"},
           {"moa-proposer", "services/proposer/moa-proposer"},
           {"moa-aggregator", "services/aggregator/moa-aggregator"},
           {"moa-upstream-sim", "tools/upstream-sim/moa-upstream-sim"},
           {"moa", "tools/moa/moa"}}) {
    const std::string rows = section(name);
    EXPECT_FALSE(rows.empty()) << "docs/configuration.md has no section '### " << name << "'";
    for (const auto& [flag, value] : FlagsOf(RunBinary({binary, "--help"}))) {
      ++flags;
      EXPECT_THAT(rows, HasSubstr("| `--" + flag + "` | `" + value + "` |"))
          << name << " --" << flag << " (default " << value
          << ") has no row in docs/configuration.md";
    }
  }
  EXPECT_GT(flags, 80);
  const std::string keys = section("Config keys");
  int config_keys = 0;
  for (const auto& [where, names] : config::ConfigKeys()) {
    for (const std::string& key : names) {
      ++config_keys;
      const std::string path = where.empty() ? key : where + "." + key;
      EXPECT_THAT(keys, HasSubstr("| `" + path + "` |"))
          << "config key " << path << " has no row in docs/configuration.md";
    }
  }
  EXPECT_GT(config_keys, 100);
  // Every getenv("NAME") of the shipped code.
  const std::string env = section("Environment variables");
  std::regex getenv_call("getenv\\(\"([A-Z_0-9]+)\"\\)");
  int variables = 0;
  for (const char* dir : {"services", "lib", "tools"}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(
             std::filesystem::path(MOA_SOURCE_DIR) / dir)) {
      if (entry.path().extension() != ".cc" && entry.path().extension() != ".h") continue;
      const std::string code = ReadFile(entry.path());
      for (auto it = std::sregex_iterator(code.begin(), code.end(), getenv_call);
           it != std::sregex_iterator(); ++it) {
        ++variables;
        EXPECT_THAT(env, HasSubstr("| `" + (*it)[1].str() + "`"))
            << entry.path() << " reads " << (*it)[1]
            << ", which has no row in docs/configuration.md";
      }
    }
  }
  EXPECT_GE(variables, 5);
}

}  // namespace
}  // namespace moa::testing
