#include "lib/llm/openai_json.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "lib/base/json.h"
#include "lib/base/redact.h"
#include "lib/llm/http_status.h"

namespace moa::llm {

using moa::json::Json;
using json = moa::json::Json;

std::string BuildChatCompletionBody(absl::string_view upstream_model, const ChatRequest& request) {
  json messages = json::array();
  for (const Message& m : request.messages) {
    messages.push_back({{"role", RoleName(m.role)}, {"content", m.content}});
  }
  json body = {{"model", upstream_model},
               {"messages", std::move(messages)},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  const SamplingParams& p = request.params;
  if (p.temperature) body["temperature"] = *p.temperature;
  if (p.max_tokens) body["max_tokens"] = *p.max_tokens;
  if (p.top_p) body["top_p"] = *p.top_p;
  if (p.seed) body["seed"] = *p.seed;
  if (!p.stop.empty()) body["stop"] = p.stop;
  if (request.continue_final_message) {
    body["continue_final_message"] = true;
    body["add_generation_prompt"] = false;
  }
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

absl::Status ErrorObjectToStatus(const json& error) {
  std::string message = "upstream reported an error";
  if (error.is_object()) {
    if (auto it = error.find("message"); it != error.end() && it->is_string()) {
      message = SanitizePeerText(it->get_ref<const std::string&>());
    }
    // Some servers put the HTTP status they would have sent in "code".
    if (auto code = moa::json::OptionalInt(error, "code", "code", 400, 599); code.ok() && *code) {
      return StatusFromHttp(static_cast<int>(**code), message);
    }
  } else if (error.is_string()) {
    message = SanitizePeerText(error.get_ref<const std::string&>());
  }
  return absl::UnavailableError(absl::StrCat("upstream error mid-stream: ", message));
}

}  // namespace

absl::StatusOr<StreamChunk> ParseStreamChunk(absl::string_view data) {
  json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError("upstream sent a malformed stream event (not a JSON object)");
  }
  StreamChunk chunk;
  if (auto it = j.find("error"); it != j.end() && !it->is_null()) {
    chunk.error = ErrorObjectToStatus(*it);
    return chunk;
  }
  if (auto it = j.find("choices"); it != j.end() && it->is_array() && !it->empty()) {
    const json& choice = (*it)[0];
    if (!choice.is_object()) {
      return absl::InternalError(
          "upstream sent a malformed stream event (choice is not an object)");
    }
    if (auto d = choice.find("delta"); d != choice.end() && d->is_object()) {
      if (auto c = d->find("content"); c != d->end() && c->is_string()) {
        chunk.delta = c->get<std::string>();
      }
    }
    if (auto f = choice.find("finish_reason"); f != choice.end() && f->is_string()) {
      chunk.finish_reason = f->get<std::string>();
    }
  }
  if (const json* u = moa::json::Member(j, "usage"); u != nullptr) {
    // Usage is optional, but one that is there must be well-formed: a wrong
    // type is the upstream's protocol error, named, never an exception.
    if (!u->is_object()) {
      return absl::InternalError("upstream sent a malformed stream event: usage is not an object");
    }
    constexpr int64_t kMaxTokens = int64_t{1} << 40;
    auto prompt = moa::json::OptionalInt(*u, "prompt_tokens", "usage.prompt_tokens", 0, kMaxTokens);
    auto completion =
        moa::json::OptionalInt(*u, "completion_tokens", "usage.completion_tokens", 0, kMaxTokens);
    for (const auto* field : {&prompt, &completion}) {
      if (!field->ok()) {
        return absl::InternalError(
            absl::StrCat("upstream sent a malformed stream event: ", field->status().message()));
      }
    }
    Usage usage;
    usage.prompt_tokens = prompt->value_or(0);
    usage.completion_tokens = completion->value_or(0);
    chunk.usage = usage;
  }
  return chunk;
}

std::string ErrorMessageFromBody(absl::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded() && j.is_object()) {
    if (auto it = j.find("error"); it != j.end()) {
      if (it->is_object()) {
        if (auto m = it->find("message"); m != it->end() && m->is_string()) {
          return SanitizePeerText(m->get_ref<const std::string&>());
        }
      } else if (it->is_string()) {
        return SanitizePeerText(it->get_ref<const std::string&>());
      }
    }
    if (auto m = j.find("message"); m != j.end() && m->is_string()) {
      return SanitizePeerText(m->get_ref<const std::string&>());
    }
  }
  std::string text = SanitizePeerText(body, "", 200);
  return text.empty() ? "no error message" : text;
}

}  // namespace moa::llm
