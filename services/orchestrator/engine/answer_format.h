// A structured final answer (OpenAI's response_format): how the models are
// asked for it, and how the final answer is checked. JSON only; the answer
// is checked whole, so MoaCall holds it until it is (docs/http-api.md, "Structured
// outputs").
#ifndef MOA_SERVICES_ORCHESTRATOR_ENGINE_ANSWER_FORMAT_H_
#define MOA_SERVICES_ORCHESTRATOR_ENGINE_ANSWER_FORMAT_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/schema/json_schema.h"
#include "moa/v1/orchestrator.pb.h"

namespace moa::orchestrator {

class AnswerFormat {
 public:
  // Null for TEXT (nothing to ask or check); INVALID_ARGUMENT naming
  // response_format's field for a schema that is not JSON or not one we check.
  static absl::StatusOr<std::shared_ptr<const AnswerFormat>> FromProto(
      const v1::ResponseFormat& format);

  // Said to every model of the pipeline, in words.
  const std::string& instruction() const { return instruction_; }

  // The answer as the client gets it: the JSON text (one surrounding
  // Markdown code fence dropped, since models add them), or INVALID_ARGUMENT
  // saying what is wrong, in words a model can act on.
  absl::StatusOr<std::string> Check(absl::string_view answer) const;

 private:
  AnswerFormat() = default;
  std::optional<schema::JsonSchema> schema_;  // Unset: any JSON object.
  std::string instruction_;
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ENGINE_ANSWER_FORMAT_H_
