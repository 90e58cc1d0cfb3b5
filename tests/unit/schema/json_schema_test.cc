// The JSON Schema checks: the draft-07 cases of the JSON Schema Test Suite
// (Debian's json-schema-test-suite), and schemas and answers a hostile peer
// would send.
#include "lib/schema/json_schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moa::schema {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr char kSuite[] = "/usr/share/json-schema-test-suite/tests/draft7";

Json Load(const std::filesystem::path& file) {
  std::ifstream in(file);
  return Json::parse(in);
}

// Every group of every draft-07 file: its schema compiles and each case
// validates as the suite says, or the schema is refused by name for one of
// the documented reasons. Nothing else.
TEST(JsonSchemaTest, TheDraft07SuiteIsPassedOrRefusedByName) {
  ASSERT_TRUE(std::filesystem::is_directory(kSuite)) << "install json-schema-test-suite";
  int passed = 0, refused_groups = 0, groups = 0;
  std::vector<std::string> wrong;
  std::set<std::string> refusal_kinds;
  for (const auto& entry : std::filesystem::directory_iterator(kSuite)) {
    if (entry.path().extension() != ".json") continue;  // optional/ is left out.
    const std::string file = entry.path().filename().string();
    for (const Json& group : Load(entry.path())) {
      ++groups;
      auto schema = JsonSchema::Compile(group["schema"], "schema");
      if (!schema.ok()) {
        ++refused_groups;
        const std::string m(schema.status().message());
        // The documented refusals only.
        const bool known = absl::StrContains(m, "'pattern' is not supported") ||
                           absl::StrContains(m, "'patternProperties' is not supported") ||
                           absl::StrContains(m, "'format' is not supported") ||
                           absl::StrContains(m, "would be fetched") ||
                           absl::StrContains(m, "'$id' is supported only at the root") ||
                           absl::StrContains(m, "leads back to itself");
        EXPECT_TRUE(known) << file << ": " << group["description"] << ": " << m;
        std::printf("  refused: %s: %s: %s\n", file.c_str(),
                    group["description"].get<std::string>().c_str(), m.c_str());
        refusal_kinds.insert(m.substr(m.find(": ") + 2, 30));
        continue;
      }
      for (const Json& c : group["tests"]) {
        const bool valid = schema->Validate(c["data"]).ok();
        if (valid == c["valid"].get<bool>()) {
          ++passed;
        } else {
          wrong.push_back(absl::StrCat(file, ": ", group["description"].get<std::string>(), " / ",
                                       c["description"].get<std::string>()));
        }
      }
    }
  }
  std::printf("draft-07: %d cases passed, %zu wrong; %d of %d schemas refused by name\n", passed,
              wrong.size(), refused_groups, groups);
  for (const std::string& w : wrong) std::printf("  wrong: %s\n", w.c_str());
  EXPECT_GE(passed, 355);
  EXPECT_THAT(wrong, ::testing::IsEmpty());
}

// A violation names where in the value it is and what is wrong, at most
// kMaxErrors of them.
TEST(JsonSchemaTest, AViolationNamesWhereAndWhat) {
  auto schema = JsonSchema::Compile(Json::parse(R"({"type": "object", "required": ["city"],
      "properties": {"city": {"type": "string"}, "days": {"type": "integer", "maximum": 7}},
      "additionalProperties": false})"),
                                    "response_format.json_schema.schema");
  ASSERT_TRUE(schema.ok()) << schema.status();
  EXPECT_TRUE(schema->Validate(Json::parse(R"({"city": "Oslo", "days": 3})")).ok());
  absl::Status bad = schema->Validate(Json::parse(R"({"city": 3, "days": 9, "x": 1})"));
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("does not conform to the schema"));
  EXPECT_THAT(std::string(bad.message()), HasSubstr("[city]"));
  EXPECT_THAT(std::string(bad.message()), HasSubstr("[days]"));
}

// What a hostile client could put in a schema: each refused by name at
// compile time, none reaching valijson.
TEST(JsonSchemaTest, SchemasAHostileClientSendsAreRefusedByName) {
  struct Case {
    const char* schema;
    const char* why;
  };
  const Case cases[] = {
      {R"({"type": "string", "pattern": "^(a+)+$"})", "'pattern' is not supported"},
      {R"({"properties": {"d": {"type": "string", "format": "date-time"}}})",
       "'format' is not supported"},
      {R"({"patternProperties": {"^x": {}}})", "'patternProperties' is not supported"},
      {R"({"$ref": "http://169.254.169.254/latest/meta-data"})", "would be fetched"},
      {R"({"$ref": "#"})", "leads back to itself"},
      {R"({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"allOf": [{"$ref":
          "#/definitions/a"}]}}, "$ref": "#/definitions/a"})",
       "leads back to itself"},
      {R"({"not": {"$ref": "#"}})", "leads back to itself"},
      {R"({"$ref": "#/definitions/missing"})", "points at nothing"},
      // A $ref target is read as a schema wherever it sits.
      {R"({"enum": [{"pattern": "(a*)*$"}], "items": {"$ref": "#/enum/0"}})",
       "'pattern' is not supported"},
      {R"({"properties": {"a": 3}})", "must be an object or a boolean"},
      {R"({"allOf": {"type": "string"}})", "'allOf' must be an array"},
      {R"({"items": {"$id": "http://x/y", "$ref": "#"}})", "'$id' is supported only at the root"},
  };
  for (const Case& c : cases) {
    auto schema = JsonSchema::Compile(Json::parse(c.schema), "s");
    ASSERT_FALSE(schema.ok()) << c.schema;
    EXPECT_EQ(schema.status().code(), absl::StatusCode::kInvalidArgument) << c.schema;
    EXPECT_EQ(schema.status().message()[0], 's') << c.schema;
    EXPECT_THAT(std::string(schema.status().message()), HasSubstr(c.why)) << c.schema;
  }
  // A chain of 10,000 references: refused at its depth bound, no stack overflow.
  Json chain = {{"$ref", "#/definitions/d0"}};
  for (int i = 0; i < 10000; ++i) {
    chain["definitions"][absl::StrCat("d", i)] = {{"$ref", absl::StrCat("#/definitions/d", i + 1)}};
  }
  chain["definitions"]["d10000"] = {{"type", "integer"}};
  auto deep = JsonSchema::Compile(chain, "s");
  ASSERT_FALSE(deep.ok());
  EXPECT_THAT(std::string(deep.status().message()), HasSubstr("too deeply"));
}

// A chain of two-way anyOfs through shared definitions: tiny as text, 2^60
// checks of one value as written. Refused at compile time by its fan-out;
// a schema with a modest fan-out still compiles.
TEST(JsonSchemaTest, ASchemaThatFansOutExponentiallyOverOneValueIsRefused) {
  Json bomb = {{"$ref", "#/definitions/d0"}};
  for (int i = 0; i < 60; ++i) {
    const std::string next = absl::StrCat("#/definitions/d", i + 1);
    bomb["definitions"][absl::StrCat("d", i)] = {
        {"anyOf", Json::array({{{"$ref", next}}, {{"$ref", next}}})}};
  }
  bomb["definitions"]["d60"] = {{"type", "integer"}};
  auto refused = JsonSchema::Compile(bomb, "s");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("over 256 subschemas"));
  auto modest = JsonSchema::Compile(Json::parse(R"({"anyOf": [{"type": "string"},
      {"allOf": [{"type": "object"}, {"required": ["a"]}]}, {"not": {"type": "null"}}]})"),
                                    "s");
  EXPECT_TRUE(modest.ok()) << modest.status();
}

// A recursive schema is fine when each step reads part of the value.
TEST(JsonSchemaTest, ARecursiveSchemaThatReadsTheValueValidatesATree) {
  auto tree = JsonSchema::Compile(Json::parse(R"({"type": "object", "required": ["name"],
      "properties": {"name": {"type": "string"}, "children": {"type": "array", "items":
      {"$ref": "#"}}}})"),
                                  "s");
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_TRUE(tree->Validate(Json::parse(
                                 R"({"name": "a", "children": [{"name": "b", "children": [
                                     {"name": "c"}]}]})"))
                  .ok());
  absl::Status bad =
      tree->Validate(Json::parse(R"({"name": "a", "children": [{"children": []}]})"));
  EXPECT_THAT(std::string(bad.message()), HasSubstr("[children][0]"));
}

// uniqueItems compares every pair: past 2,000 items the answer is refused
// rather than compared (a 1 MiB answer holds 500,000 small items).
TEST(JsonSchemaTest, UniqueItemsOverALongArrayIsRefusedNotCompared) {
  auto schema = JsonSchema::Compile(Json::parse(R"({"type": "array", "uniqueItems": true})"), "s");
  ASSERT_TRUE(schema.ok());
  std::vector<int> distinct(2000);
  for (int i = 0; i < 2000; ++i) distinct[static_cast<size_t>(i)] = i;
  EXPECT_TRUE(schema->Validate(Json(distinct)).ok());
  EXPECT_FALSE(schema->Validate(Json::parse("[1, 1]")).ok());
  absl::Status big = schema->Validate(Json(std::vector<int>(500000, 0)));
  EXPECT_THAT(std::string(big.message()), HasSubstr("over 2000 items"));
  // Without uniqueItems a long array is checked as usual.
  auto plain = JsonSchema::Compile(Json::parse(R"({"type": "array", "items": {"type":
      "integer"}})"),
                                   "s");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->Validate(Json(std::vector<int>(500000, 0))).ok());
}

}  // namespace
}  // namespace moa::schema
