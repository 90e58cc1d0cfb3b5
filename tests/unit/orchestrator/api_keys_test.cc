#include "services/orchestrator/api_keys.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

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

TEST(ApiKeysTest, ConstantTimeEqualsComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace moa::orchestrator
