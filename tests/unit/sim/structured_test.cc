// The simulator's structured answers: which requests ask for JSON, and a
// value that conforms to the schema they give (checked with the cluster's
// own validator).
#include "tools/upstream-sim/structured.h"

#include <gtest/gtest.h>

#include "lib/schema/json_schema.h"
#include "tools/upstream-sim/profiles.h"

namespace moa::sim {
namespace {

using json = moa::json::Json;

TEST(SimStructuredTest, ARequestAsksForJsonNativelyOrInTheClustersWords) {
  const json schema = json::parse(R"({"type": "object", "required": ["city"]})");
  auto native = FindRequestedJson(
      json{{"type", "json_schema"}, {"json_schema", {{"name", "w"}, {"schema", schema}}}}, {});
  ASSERT_TRUE(native && native->schema);
  EXPECT_EQ(*native->schema, schema);
  auto words = FindRequestedJson(
      nullptr, {{"system",
                 "Be brief.\n\nAnswer with JSON only, no words before or after it and no "
                 "code fences, that conforms to this JSON Schema (named \"w\"):\n" +
                     schema.dump() + "\nWhat it is for: weather"},
                {"user", "Oslo?"}});
  ASSERT_TRUE(words && words->schema);
  EXPECT_EQ(*words->schema, schema);
  auto object = FindRequestedJson(
      nullptr, {{"system", "Answer with one JSON object and nothing else: no words."}});
  ASSERT_TRUE(object);
  EXPECT_FALSE(object->schema);
  EXPECT_FALSE(FindRequestedJson(nullptr, {{"user", "conforms to this JSON Schema"}}));
  EXPECT_FALSE(FindRequestedJson(json{{"type", "text"}}, {{"user", "hi"}}));
}

TEST(SimStructuredTest, TheValueConformsToTheSchema) {
  for (
      const char* text : {
          R"({"type": "object", "properties": {"city": {"type": "string", "minLength": 5},
               "days": {"type": "integer", "minimum": 2}, "rain": {"type": "boolean"},
               "temps": {"type": "array", "items": {"type": "number"}, "minItems": 2},
               "unit": {"enum": ["C", "F"]}, "kind": {"const": "forecast"},
               "note": {"anyOf": [{"type": "null"}, {"type": "string"}]}},
               "required": ["city", "days", "rain", "temps", "unit", "kind"],
               "additionalProperties": false})",
          R"({"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}},
               "required": ["a"]}, "minItems": 1})",
          R"({"type": ["string", "null"]})",
      }) {
    const json schema = json::parse(text);
    auto compiled = schema::JsonSchema::Compile(schema, "schema");
    ASSERT_TRUE(compiled.ok()) << compiled.status();
    const json value = ConformingValue(schema);
    EXPECT_TRUE(compiled->Validate(value).ok()) << value.dump() << " for " << text;
  }
}

TEST(SimStructuredTest, ASchemaThatWouldFanOutIsCutNotBuilt) {
  json schema = json{{"type", "integer"}};
  for (int i = 0; i < 20; ++i) {
    schema = json{{"type", "array"}, {"minItems", 16}, {"items", schema}};
  }
  const json value = ConformingValue(schema);  // 16^20 values, were it not cut.
  EXPECT_LT(value.dump().size(), 1u << 20);
}

TEST(SimStructuredTest, TheProfileFieldIsAProbability) {
  auto p = ParseProfiles("models:\n  j: {structured_answers: 0.5}\n", "test");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->For("j").structured_answers, 0.5);
  EXPECT_FALSE(p->For("other").structured_answers);
  EXPECT_FALSE(ParseProfiles("models:\n  j: {structured_answers: 2}\n", "test").ok());
}

}  // namespace
}  // namespace moa::sim
