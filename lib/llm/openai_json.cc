#include "lib/llm/openai_json.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "lib/llm/http_status.h"

namespace moa::llm {

using nlohmann::json;

std::string BuildChatCompletionBody(absl::string_view upstream_model, const ChatRequest& request) {
  json messages = json::array();
  for (const Message& m : request.messages) {
    messages.push_back({{"role", m.role}, {"content", m.content}});
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
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

absl::Status ErrorObjectToStatus(const json& error) {
  std::string message = "upstream reported an error";
  if (error.is_object()) {
    if (auto it = error.find("message"); it != error.end() && it->is_string()) {
      message = it->get<std::string>();
    }
    // Some servers put the HTTP status they would have sent in "code".
    if (auto it = error.find("code"); it != error.end() && it->is_number_integer()) {
      int code = it->get<int>();
      if (code >= 400 && code < 600) return StatusFromHttp(code, message);
    }
  } else if (error.is_string()) {
    message = error.get<std::string>();
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
  if (auto it = j.find("usage"); it != j.end() && it->is_object()) {
    Usage usage;
    usage.prompt_tokens = it->value("prompt_tokens", int64_t{0});
    usage.completion_tokens = it->value("completion_tokens", int64_t{0});
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
          return m->get<std::string>();
        }
      } else if (it->is_string()) {
        return it->get<std::string>();
      }
    }
    if (auto m = j.find("message"); m != j.end() && m->is_string()) return m->get<std::string>();
  }
  std::string text(body.substr(0, 200));
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return text.empty() ? "no error message" : text;
}

}  // namespace moa::llm
