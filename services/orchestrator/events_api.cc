#include "services/orchestrator/events_api.h"

#include <google/protobuf/util/json_util.h>

#include <optional>

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

// Protobuf 3.21's JSON parser takes any string for a bool ("yes" is true).
// A bool field is JSON true or false here; the first other value found is
// named ("messages[0].x"). Unknown fields are left to the parser, which
// refuses them.
std::optional<std::string> NonBoolForBool(const json::Json& value,
                                          const google::protobuf::Descriptor& type,
                                          const std::string& at) {
  if (!value.is_object()) return std::nullopt;
  for (const auto& [name, member] : value.items()) {
    const google::protobuf::FieldDescriptor* field = type.FindFieldByName(name);
    if (field == nullptr) field = type.FindFieldByCamelcaseName(name);
    if (field == nullptr) continue;
    const std::string path = at.empty() ? name : absl::StrCat(at, ".", name);
    auto check = [&](const json::Json& v, const std::string& where) -> std::optional<std::string> {
      if (field->type() == google::protobuf::FieldDescriptor::TYPE_BOOL) {
        if (!v.is_boolean() && !v.is_null()) return where;
        return std::nullopt;
      }
      if (field->message_type() != nullptr) return NonBoolForBool(v, *field->message_type(), where);
      return std::nullopt;
    };
    if (field->is_repeated() && member.is_array()) {
      for (size_t i = 0; i < member.size(); ++i) {
        if (auto bad = check(member[i], absl::StrCat(path, "[", i, "]"))) return bad;
      }
    } else if (auto bad = check(member, path)) {
      return bad;
    }
  }
  return std::nullopt;
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
    auto refuse = [&](const std::string& why) {
      *error = {
          400, absl::StrCat("the body must be a moa.v1.ChatRequest in Protobuf's JSON form: ", why),
          "invalid_request_error", "", "invalid_body"};
      return absl::InvalidArgumentError(error->message);
    };
    // Our own bounded parser first: its depth limit and UTF-8 checks hold
    // before Protobuf's parser sees the bytes.
    absl::StatusOr<json::Json> tree = json::Parse(body);
    if (!tree.ok()) return refuse(std::string(tree.status().message()));
    if (!tree->is_object()) return refuse("not a JSON object");
    if (auto bad = NonBoolForBool(*tree, *v1::ChatRequest::descriptor(), "")) {
      *error = {400, absl::StrCat(*bad, " must be true or false"), "invalid_request_error", *bad,
                "invalid_body"};
      return absl::InvalidArgumentError(error->message);
    }
    pbutil::JsonParseOptions options;
    options.ignore_unknown_fields = false;  // Nothing a client sends is dropped.
    const auto s = pbutil::JsonStringToMessage(std::string(body), &parsed.chat, options);
    if (!s.ok()) return refuse(s.ToString());
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
