#include "services/orchestrator/api_keys.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "lib/base/sha256.h"
#include "tools/moa/keys.h"

namespace moa::orchestrator {
namespace {

TEST(ApiKeysTest, BearerKeysAreCheckedAndLoadedFromFileAndList) {
  std::string path = "/tmp/moa-keys-test-" + std::to_string(getpid());
  std::ofstream(path) << "# comment\n\nsk-file-1\n  sk-file-2  \n";
  auto keys = ApiKeys::Load(path, "sk-env-1, sk-env-2");
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->enabled());
  EXPECT_EQ(keys->size(), 4u);
  EXPECT_TRUE(keys->CheckAuthorization("Bearer sk-file-2"));
  EXPECT_TRUE(keys->CheckAuthorization("bearer sk-env-1"));
  EXPECT_FALSE(keys->CheckAuthorization("Bearer sk-file"));
  EXPECT_FALSE(keys->CheckAuthorization("Bearer sk-file-22"));
  EXPECT_FALSE(keys->CheckAuthorization("sk-file-1"));
  EXPECT_FALSE(keys->CheckAuthorization("Bearer "));
  EXPECT_FALSE(keys->CheckAuthorization("Bearer # comment"));
  std::remove(path.c_str());
  EXPECT_EQ(ApiKeys::Load(path, "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(ApiKeys::Load("", "").value().enabled());
}

TEST(ApiKeysTest, NamedKeysAreStoredAsHashesWithTheirLimits) {
  std::string path = "/tmp/moa-named-keys-test-" + std::to_string(getpid());
  std::ofstream(path) << "keys:\n"
                         "  team-a:\n"
                         "    sha256: "
                      << Sha256Hex("sk-secret-a")
                      << "\n"
                         "    requests_per_minute: 60\n"
                         "    tokens_per_minute: 1000\n"
                         "    concurrent_requests: 2\n"
                         "    pipelines: [moa]\n"
                         "    budget_dollars_per_day: 1.5\n"
                         "    preset: budget\n"
                         "  team-b:\n"
                         "    sha256: "
                      << Sha256Hex("sk-secret-b") << "\n";
  auto keys = ApiKeys::Load(path, "sk-plain");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 3u);
  std::shared_ptr<const ApiKey> a = keys->Authenticate("Bearer sk-secret-a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->name, "team-a");
  EXPECT_EQ(a->limits.requests_per_minute, 60);
  EXPECT_EQ(a->limits.tokens_per_minute, 1000);
  EXPECT_EQ(a->limits.concurrent_requests, 2);
  EXPECT_EQ(a->limits.pipelines, std::vector<std::string>({"moa"}));
  EXPECT_EQ(a->limits.budget_dollars_per_day, 1.5);
  EXPECT_EQ(a->limits.preset, "budget");
  EXPECT_EQ(keys->Authenticate("Bearer sk-secret-b")->name, "team-b");
  EXPECT_EQ(keys->Authenticate("Bearer " + Sha256Hex("sk-secret-a")), nullptr)
      << "the hash is not the key";
  std::shared_ptr<const ApiKey> plain = keys->Authenticate("Bearer sk-plain");
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->name, "key-" + Sha256Hex("sk-plain").substr(0, 8));
  std::remove(path.c_str());
}

TEST(ApiKeysTest, AMalformedKeysFileNamesTheFieldAndNeverEchoesAHash) {
  std::string path = "/tmp/moa-bad-keys-test-" + std::to_string(getpid());
  const std::string hash = Sha256Hex("x");
  const std::pair<std::string, std::string> cases[] = {
      {"keys:\n  a: {sha256: abc}\n", "keys.a.sha256"},
      {"keys:\n  a: {sha256: " + hash + ", rpm: 3}\n", "unknown field 'rpm'"},
      {"keys:\n  a: {sha256: " + hash + ", requests_per_minute: 0}\n",
       "keys.a.requests_per_minute"},
      {"keys:\n  a: {sha256: " + hash + ", budget_dollars_per_day: -1}\n",
       "keys.a.budget_dollars_per_day"},
      {"keys:\n  a: {sha256: " + hash + "}\n  b: {sha256: " + hash + "}\n", "listed twice"},
      {"keys:\n  'a b': {sha256: " + hash + "}\n", "a key's name"},
      {"keys:\n  a: {sha256: " + hash + ", pipelines: moa}\n", "keys.a.pipelines"},
      {"keys:\n  ? [a, b]\n  : {sha256: " + hash + "}\n", "malformed keys file"},
      {"keys:\n  a: {? {x: 1} : 2, sha256: " + hash + "}\n", "malformed keys file"},
  };
  for (const auto& [text, expected] : cases) {
    std::ofstream(path) << text;
    auto keys = ApiKeys::Load(path, "");
    ASSERT_FALSE(keys.ok()) << text;
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(keys.status().message().find(expected), absl::string_view::npos)
        << keys.status() << " for " << text;
    EXPECT_EQ(keys.status().message().find(hash), absl::string_view::npos);
  }
  std::remove(path.c_str());
}

// Keys are found by their digest: among 100,000 keys each secret finds its
// own, a wrong one none, and a repeated hash names the later entry.
TEST(ApiKeysTest, OneHundredThousandKeysAreFoundByTheirDigest) {
  std::vector<ApiKey> list;
  for (int i = 0; i < 100000; ++i) {
    list.push_back({absl::StrCat("k", i), Sha256Hex(absl::StrCat("secret-", i)), {}});
  }
  list.push_back({"again", Sha256Hex("secret-7"), {}});
  ApiKeys keys(std::move(list));
  for (int i : {0, 1, 50000, 99999}) {
    std::shared_ptr<const ApiKey> key = keys.Authenticate(absl::StrCat("Bearer secret-", i));
    ASSERT_NE(key, nullptr) << i;
    EXPECT_EQ(key->name, absl::StrCat("k", i));
  }
  EXPECT_EQ(keys.Authenticate("Bearer secret-7")->name, "again");
  EXPECT_EQ(keys.Authenticate("Bearer secret-100000"), nullptr);
  EXPECT_EQ(keys.Authenticate("secret-1"), nullptr);
  EXPECT_EQ(keys.Authenticate(""), nullptr);
}

// What `moa keys add` writes, the orchestrator loads: from no file, the
// overlays' shipped keys.yaml, an empty block map and an empty flow map.
TEST(ApiKeysTest, KeysAddedByTheCliLoadInTheOrchestrator) {
  const std::string path = "/tmp/moa-cli-keys-test-" + std::to_string(getpid());
  const std::string shipped =
      std::string(MOA_SOURCE_DIR) + "/deploy/k8s/overlays/simulator/keys.yaml";
  std::ifstream shipped_in(shipped);
  std::stringstream shipped_text;
  shipped_text << shipped_in.rdbuf();
  ASSERT_FALSE(shipped_text.str().empty()) << shipped;
  for (const std::string& start : {std::string("(none)"), shipped_text.str(),
                                   std::string("# mine\nkeys:\n"), std::string("keys: {}\n")}) {
    std::remove(path.c_str());
    if (start != "(none)") std::ofstream(path) << start;
    auto empty = ApiKeys::Load(path, "");
    if (start != "(none)") {
      ASSERT_TRUE(empty.ok()) << start << empty.status();
      EXPECT_FALSE(empty->enabled()) << start;
    }
    cli::NewKey team_a, team_b;
    team_a.name = "team-a";
    team_a.requests_per_minute = 60;
    team_b.name = "team-b";
    auto a = cli::AddKey(path, team_a);
    auto b = cli::AddKey(path, team_b);
    ASSERT_TRUE(a.ok() && b.ok()) << start << a.status() << b.status();
    auto keys = ApiKeys::Load(path, "");
    ASSERT_TRUE(keys.ok()) << start << keys.status();
    EXPECT_EQ(keys->size(), 2u) << start;
    std::shared_ptr<const ApiKey> found = keys->Authenticate("Bearer " + *a);
    ASSERT_NE(found, nullptr) << start;
    EXPECT_EQ(found->name, "team-a");
    EXPECT_EQ(found->limits.requests_per_minute, 60);
    EXPECT_NE(keys->Authenticate("Bearer " + *b), nullptr) << start;
  }
  // A flow-style map that already has keys is not rewritten.
  const std::string flow = "keys: {old: {sha256: " + std::string(64, '0') + "}}\n";
  std::ofstream(path, std::ios::trunc) << flow;
  cli::NewKey added;
  added.name = "new";
  EXPECT_EQ(cli::AddKey(path, added).status().code(), absl::StatusCode::kInvalidArgument);
  std::ifstream after(path);
  std::stringstream after_text;
  after_text << after.rdbuf();
  EXPECT_EQ(after_text.str(), flow);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace moa::orchestrator
