#include "services/orchestrator/events_api.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/base/json.h"
#include "services/orchestrator/openai_api.h"

namespace moa::orchestrator::events {
namespace {

namespace pbutil = google::protobuf::util;

int64_t Ms(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// `{"at_ms":N,` + the rest of a JSON object's text.
std::string WithTime(const std::string& object, absl::Duration at) {
  if (object.size() < 2 || object.front() != '{') return absl::StrCat("{\"at_ms\":", Ms(at), "}");
  if (object == "{}") return absl::StrCat("{\"at_ms\":", Ms(at), "}");
  return absl::StrCat("{\"at_ms\":", Ms(at), ",", object.substr(1));
}

std::string EventJson(const v1::ChatEvent& event) {
  pbutil::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string text;
  // Printing a message we built cannot fail except on invalid UTF-8 in a
  // string, which the engine never produces; an empty object then.
  if (!pbutil::MessageToJsonString(event, &text, options).ok()) text = "{}";
  return text;
}

std::string EventName(const v1::ChatEvent& event) {
  const auto* field = v1::ChatEvent::descriptor()->FindFieldByNumber(event.event_case());
  return field != nullptr ? field->name() : "unknown";
}

class Writer final : public ResponseWriter {
 public:
  explicit Writer(bool stream) : stream_(stream), start_(absl::Now()) {}

  std::string Head() override { return ""; }

  std::string Event(const v1::ChatEvent& event) override {
    const absl::Duration at = absl::Now() - start_;
    if (!stream_) {
      json::Json one = json::Json::object();
      if (auto parsed = json::Parse(WithTime(EventJson(event), at)); parsed.ok()) one = *parsed;
      events_.push_back(std::move(one));
      return "";
    }
    return SseEvent(event, at);
  }

  std::string Tail(const absl::Status& status) override {
    const absl::Duration at = absl::Now() - start_;
    if (status.ok()) return absl::StrCat("event: done\ndata: ", WithTime("{}", at), "\n\n");
    const std::string error = openai::ErrorJson(ErrorFromStatus(status));
    return absl::StrCat("event: error\ndata: ", WithTime(error, at), "\n\n");
  }

  absl::StatusOr<std::string> Body() override {
    return json::Dump(json::Json{{"events", std::move(events_)}});
  }

 private:
  const bool stream_;
  const absl::Time start_;
  json::Json events_ = json::Json::array();
};

class Events final : public ApiSurface {
 public:
  absl::string_view path() const override { return kPath; }

  absl::StatusOr<ParsedRequest> Parse(absl::string_view body, HttpError* error) const override {
    ParsedRequest parsed;
    pbutil::JsonParseOptions options;
    options.ignore_unknown_fields = false;  // Nothing a client sends is dropped.
    const auto s = pbutil::JsonStringToMessage(std::string(body), &parsed.chat, options);
    if (!s.ok()) {
      *error = {400,
                absl::StrCat("the body must be a moa.v1.ChatRequest in Protobuf's JSON form: ",
                             s.ToString()),
                "invalid_request_error", "", "invalid_body"};
      return absl::InvalidArgumentError(error->message);
    }
    parsed.stream = true;
    return parsed;
  }

  std::string ErrorJson(const HttpError& error) const override { return openai::ErrorJson(error); }

  std::unique_ptr<ResponseWriter> NewWriter(const ParsedRequest& request, std::string model,
                                            int64_t created) const override {
    return std::make_unique<Writer>(request.stream);
  }
};

}  // namespace

std::string SseEvent(const v1::ChatEvent& event, absl::Duration at) {
  return absl::StrCat("event: ", EventName(event), "\ndata: ", WithTime(EventJson(event), at),
                      "\n\n");
}

const ApiSurface& EventsSurface() {
  static const Events surface;
  return surface;
}

}  // namespace moa::orchestrator::events
