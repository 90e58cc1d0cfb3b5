#include "lib/base/json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace moa::json {
namespace {

using ::testing::HasSubstr;

TEST(JsonTest, ParseRefusesNestingDeeperThanTheLimit) {
  std::string deep(100000, '[');
  auto parsed = Parse(deep);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("deeper than 64"));
  EXPECT_TRUE(Parse(std::string(64, '[') + std::string(64, ']')).ok());
  EXPECT_FALSE(Parse(std::string(65, '[') + std::string(65, ']')).ok());
}

TEST(JsonTest, BracketsInsideStringsDoNotCountAsNesting) {
  std::string text = "{\"a\": \"" + std::string(500, '[') + "\\\"" + "\"}";
  auto parsed = Parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)["a"].get<std::string>().size(), 501u);
}

TEST(JsonTest, MalformedTextIsAnErrorNotAnException) {
  for (const char* bad : {"", "{", "{\"a\":}", "nul", "\"\xff\"", "[1,]"}) {
    EXPECT_FALSE(Parse(bad).ok()) << bad;
  }
}

TEST(JsonTest, TypedMembersNameTheFieldOnAWrongType) {
  Json j = Json::parse(
      R"({"s": 1, "b": "yes", "i": 1.5, "n": "3", "big": 18446744073709551615, "neg": -4,
          "null": null, "ok": "x"})");
  EXPECT_THAT(OptionalString(j, "s", "p.s").status().message(), HasSubstr("p.s must be a string"));
  EXPECT_THAT(OptionalBool(j, "b", "p.b").status().message(), HasSubstr("p.b must be a boolean"));
  EXPECT_FALSE(OptionalInt(j, "i", "i").ok());
  EXPECT_FALSE(OptionalInt(j, "n", "n").ok());
  EXPECT_FALSE(OptionalInt(j, "big", "big").ok());  // Over int64.
  EXPECT_FALSE(OptionalInt(j, "neg", "neg").ok());  // Under the default minimum 0.
  EXPECT_EQ(*OptionalInt(j, "neg", "neg", -10).value(), -4);
  EXPECT_FALSE(OptionalNumber(j, "n", "n").ok());
  EXPECT_EQ(*OptionalNumber(j, "i", "i").value(), 1.5);
  // Absent and null are "not given".
  EXPECT_FALSE(OptionalString(j, "missing", "m").value().has_value());
  EXPECT_FALSE(OptionalInt(j, "null", "null").value().has_value());
  EXPECT_EQ(*OptionalString(j, "ok", "ok").value(), "x");
  // A non-object has no members.
  EXPECT_EQ(Member(Json::array(), "a"), nullptr);
  EXPECT_FALSE(OptionalString(Json(5), "a", "a").value().has_value());
}

TEST(JsonTest, DumpReplacesInvalidUtf8InsteadOfThrowing) {
  Json j = {{"text", std::string("ok \xff\xfe end")}};
  std::string out = Dump(j);
  EXPECT_THAT(out, HasSubstr("ok \xEF\xBF\xBD"));
  EXPECT_EQ(Quote("a\"b\xc3"), "\"a\\\"b\xEF\xBF\xBD\"");
}

}  // namespace
}  // namespace moa::json
