#include "services/orchestrator/engine/answer_format.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/base/json.h"

namespace moa::orchestrator {
namespace {

// The text inside one ``` fence around the whole answer (with or without a
// language tag), else the answer as it is.
absl::string_view WithoutFence(absl::string_view answer) {
  absl::string_view a = absl::StripAsciiWhitespace(answer);
  if (!absl::StartsWith(a, "```") || !absl::EndsWith(a, "```") || a.size() < 6) return a;
  a.remove_suffix(3);
  a.remove_prefix(3);
  const size_t line_end = a.find('\n');
  if (line_end == absl::string_view::npos) return answer;
  const absl::string_view tag = a.substr(0, line_end);
  for (char c : tag) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-' && c != ' ') return answer;
  }
  return absl::StripAsciiWhitespace(a.substr(line_end + 1));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const AnswerFormat>> AnswerFormat::FromProto(
    const v1::ResponseFormat& format) {
  if (format.type() == v1::ResponseFormat::TEXT) return nullptr;
  std::shared_ptr<AnswerFormat> out(new AnswerFormat());
  if (format.type() == v1::ResponseFormat::JSON_OBJECT) {
    out->instruction_ =
        "Answer with one JSON object and nothing else: no words before or after it and no "
        "code fences.";
    return out;
  }
  if (format.type() != v1::ResponseFormat::JSON_SCHEMA) {
    return absl::InvalidArgumentError(
        absl::StrCat("response_format.type ", format.type(), " is not one this server knows"));
  }
  constexpr char kPath[] = "response_format.json_schema.schema";
  auto schema_json = json::Parse(format.schema_json());
  if (!schema_json.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kPath, " is not JSON: ", schema_json.status().message()));
  }
  auto schema = schema::JsonSchema::Compile(*schema_json, kPath);
  if (!schema.ok()) return schema.status();
  out->schema_ = *std::move(schema);
  out->instruction_ = absl::StrCat(
      "Answer with JSON only, no words before or after it and no code fences, that conforms to "
      "this JSON Schema",
      format.name().empty() ? "" : absl::StrCat(" (named \"", format.name(), "\")"), ":\n",
      json::Dump(*schema_json),
      format.description().empty() ? "" : absl::StrCat("\nWhat it is for: ", format.description()));
  return out;
}

absl::StatusOr<std::string> AnswerFormat::Check(absl::string_view answer) const {
  const absl::string_view text = WithoutFence(answer);
  auto value = json::Parse(text);
  if (!value.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the answer is not JSON: ", value.status().message()));
  }
  if (!schema_) {
    if (!value->is_object()) return absl::InvalidArgumentError("the answer is not a JSON object");
    return std::string(text);
  }
  if (absl::Status s = schema_->Validate(*value); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the answer ", s.message()));
  }
  return std::string(text);
}

}  // namespace moa::orchestrator
