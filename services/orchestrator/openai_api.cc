#include "services/orchestrator/openai_api.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/contract/contract.h"

namespace moa::orchestrator::openai {

using nlohmann::json;

namespace {

HttpError BadRequest(std::string message, std::string param) {
  return {400, std::move(message), "invalid_request_error", std::move(param), ""};
}

double Seconds(const google::protobuf::Duration& d) {
  return absl::ToDoubleSeconds(contract::FromProto(d));
}

}  // namespace

std::string ErrorJson(const HttpError& e) {
  return json{{"error",
               {{"message", e.message},
                {"type", e.type},
                {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}}
      .dump();
}

HttpError ErrorFromStatus(const absl::Status& status) {
  std::string message(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: {
      // Our messages start with the field: "messages[1].content must ...".
      std::string param = message.substr(0, message.find_first_of(" :"));
      if (absl::StartsWith(param, "params.")) param = param.substr(7);
      return BadRequest(message, param);
    }
    case absl::StatusCode::kNotFound:
      return {404, message, "invalid_request_error", "model", "model_not_found"};
    case absl::StatusCode::kUnauthenticated:
      return {401, message, "authentication_error", "", "invalid_api_key"};
    case absl::StatusCode::kResourceExhausted:
      return {429, message, "rate_limit_error", "", "rate_limit_exceeded"};
    case absl::StatusCode::kUnavailable:
      return {503, message, "server_error", "", "service_unavailable"};
    case absl::StatusCode::kDeadlineExceeded:
      return {504, message, "server_error", "", "timeout"};
    case absl::StatusCode::kCancelled:
      return {499, message, "server_error", "", "cancelled"};
    default:
      return {500, message, "server_error", "", ""};
  }
}

absl::StatusOr<ParsedRequest> ParseChatCompletionRequest(absl::string_view body, HttpError* error) {
  auto fail = [error](HttpError e) {
    *error = std::move(e);
    return absl::InvalidArgumentError(error->message);
  };
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return fail(BadRequest("the request body is not a JSON object", ""));
  }
  ParsedRequest out;
  if (!j.contains("model") || !j["model"].is_string()) {
    return fail(BadRequest("'model' is required and must be a string (a pipeline name)", "model"));
  }
  out.chat.set_pipeline(j["model"].get<std::string>());
  if (!j.contains("messages") || !j["messages"].is_array()) {
    return fail(BadRequest("'messages' is required and must be an array", "messages"));
  }
  const json& messages = j["messages"];
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return fail(BadRequest(absl::StrCat(where, ".role is required"), where + ".role"));
    }
    std::string role = m["role"].get<std::string>();
    v1::ChatMessage* msg = out.chat.add_messages();
    if (role == "system" || role == "developer") {
      msg->set_role(v1::ROLE_SYSTEM);
    } else if (role == "user") {
      msg->set_role(v1::ROLE_USER);
    } else if (role == "assistant") {
      msg->set_role(v1::ROLE_ASSISTANT);
    } else {
      return fail(BadRequest(absl::StrCat(where, ".role '", role,
                                          "' is not supported (system, developer, user, "
                                          "assistant)"),
                             where + ".role"));
    }
    auto c = m.find("content");
    if (c == m.end() || c->is_null()) {
      return fail(BadRequest(absl::StrCat(where, ".content is required"), where + ".content"));
    }
    if (c->is_string()) {
      msg->set_content(c->get<std::string>());
    } else if (c->is_array()) {
      std::string text;
      for (size_t k = 0; k < c->size(); ++k) {
        const json& part = (*c)[k];
        std::string type = part.is_object() ? part.value("type", "") : "";
        if (type != "text" || !part.contains("text") || !part["text"].is_string()) {
          return fail(BadRequest(
              absl::StrCat(where, ".content[", k, "]: only parts of type 'text' are supported"),
              absl::StrCat(where, ".content[", k, "].type")));
        }
        text += part["text"].get<std::string>();
      }
      msg->set_content(std::move(text));
    } else {
      return fail(BadRequest(absl::StrCat(where, ".content must be a string or a list of parts"),
                             where + ".content"));
    }
  }
  v1::SamplingParams* p = out.chat.mutable_params();
  for (absl::string_view key : {"temperature", "top_p"}) {
    const std::string k(key);
    if (!j.contains(k) || j[k].is_null()) continue;
    if (!j[k].is_number()) return fail(BadRequest(absl::StrCat("'", k, "' must be a number"), k));
    double v = j[k].get<double>();
    if (k == "temperature") {
      p->set_temperature(v);
    } else {
      p->set_top_p(v);
    }
  }
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_number_integer()) {
      return fail(BadRequest(absl::StrCat("'", key, "' must be an integer"), key));
    }
    int64_t n = j[key].get<int64_t>();
    if (n < 1 || n > (1 << 30)) {
      return fail(BadRequest(absl::StrCat("'", key, "' must be >= 1"), key));
    }
    p->set_max_tokens(static_cast<int32_t>(n));
  }
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer())
      return fail(BadRequest("'seed' must be an integer", "seed"));
    p->set_seed(j["seed"].get<int64_t>());
  }
  if (j.contains("stop") && !j["stop"].is_null()) {
    const json& stop = j["stop"];
    if (stop.is_string()) {
      p->add_stop(stop.get<std::string>());
    } else if (stop.is_array()) {
      for (const json& s : stop) {
        if (!s.is_string()) return fail(BadRequest("'stop' must be a string or strings", "stop"));
        p->add_stop(s.get<std::string>());
      }
    } else {
      return fail(BadRequest("'stop' must be a string or a list of strings", "stop"));
    }
  }
  if (j.contains("n") && !j["n"].is_null() &&
      (!j["n"].is_number_integer() || j["n"].get<int64_t>() != 1)) {
    return fail(BadRequest("only n=1 is supported: a MoA pipeline writes one answer", "n"));
  }
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) return fail(BadRequest("'stream' must be a boolean", "stream"));
    out.stream = j["stream"].get<bool>();
  }
  if (auto so = j.find("stream_options"); so != j.end() && so->is_object()) {
    out.include_usage = so->value("include_usage", false);
  }
  return out;
}

void CallRecord::Add(const v1::ChatEvent& event) {
  if (event.has_accepted()) pipeline = event.accepted().pipeline();
  if (event.has_proposal_done()) {
    const auto& d = event.proposal_done();
    proposals.push_back({d.ref().layer(), d.ref().model(), "ok", "", d.completion()});
  }
  if (event.has_proposal_failed()) {
    const auto& f = event.proposal_failed();
    proposals.push_back({f.ref().layer(), f.ref().model(),
                         absl::StatusCodeToString(static_cast<absl::StatusCode>(f.status().code())),
                         f.status().message(), v1::Completion()});
  }
  if (event.has_summary()) summary = event.summary();
}

std::string UsageJson(const CallRecord& record) {
  int64_t prompt = 0, completion = 0;
  if (record.summary) {
    for (const auto& u : record.summary->usage()) {
      prompt += u.usage().prompt_tokens();
      completion += u.usage().completion_tokens();
    }
  }
  return json{{"prompt_tokens", prompt},
              {"completion_tokens", completion},
              {"total_tokens", prompt + completion}}
      .dump();
}

std::string MoaExtensionJson(const CallRecord& record) {
  json moa = {{"pipeline", record.pipeline}};
  json usage = json::array();
  json layers = json::array();
  if (record.summary) {
    for (const auto& u : record.summary->usage()) {
      usage.push_back({{"model", u.model()},
                       {"prompt_tokens", u.usage().prompt_tokens()},
                       {"completion_tokens", u.usage().completion_tokens()}});
    }
    for (const auto& d : record.summary->layer_durations()) layers.push_back(Seconds(d));
    moa["time_to_first_token"] = Seconds(record.summary->time_to_first_token());
    moa["total"] = Seconds(record.summary->total());
    const v1::Completion& a = record.summary->answer();
    moa["answer"] = {{"model", a.model()},
                     {"time_to_first_token", Seconds(a.time_to_first_token())},
                     {"duration", Seconds(a.duration())},
                     {"prompt_tokens", a.usage().prompt_tokens()},
                     {"completion_tokens", a.usage().completion_tokens()}};
  }
  json proposals = json::array();
  for (const auto& p : record.proposals) {
    json item = {{"layer", p.layer}, {"model", p.model}, {"outcome", p.outcome}};
    if (p.outcome == "ok") {
      item["time_to_first_token"] = Seconds(p.completion.time_to_first_token());
      item["duration"] = Seconds(p.completion.duration());
      item["prompt_tokens"] = p.completion.usage().prompt_tokens();
      item["completion_tokens"] = p.completion.usage().completion_tokens();
    } else {
      item["error"] = p.error;
    }
    proposals.push_back(std::move(item));
  }
  moa["usage"] = std::move(usage);
  moa["layer_durations"] = std::move(layers);
  moa["proposals"] = std::move(proposals);
  return moa.dump();
}

std::string CompletionJson(const std::string& id, int64_t created, const std::string& model,
                           const std::string& answer, const CallRecord& record) {
  std::string finish = record.summary ? record.summary->finish_reason() : "stop";
  json out = {{"id", id},
              {"object", "chat.completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array({{{"index", 0},
                                        {"message", {{"role", "assistant"}, {"content", answer}}},
                                        {"logprobs", nullptr},
                                        {"finish_reason", finish}}})},
              {"usage", json::parse(UsageJson(record))},
              {"moa", json::parse(MoaExtensionJson(record))}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ChunkEvent(const std::string& id, int64_t created, const std::string& model,
                       absl::string_view delta_json, absl::string_view finish_reason_json) {
  return absl::StrCat("data: {\"id\":", json(id).dump(),
                      ",\"object\":\"chat.completion.chunk\",\"created\":", created,
                      ",\"model\":", json(model).dump(),
                      ",\"choices\":[{\"index\":0,\"delta\":", delta_json,
                      ",\"logprobs\":null,\"finish_reason\":", finish_reason_json, "}]}\n\n");
}

std::string UsageChunkEvent(const std::string& id, int64_t created, const std::string& model,
                            const CallRecord& record) {
  return absl::StrCat("data: {\"id\":", json(id).dump(),
                      ",\"object\":\"chat.completion.chunk\",\"created\":", created,
                      ",\"model\":", json(model).dump(),
                      ",\"choices\":[],\"usage\":", UsageJson(record),
                      ",\"moa\":", MoaExtensionJson(record), "}\n\n");
}

std::string ContentDeltaJson(absl::string_view text) {
  return json{{"content", std::string(text)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace moa::orchestrator::openai
