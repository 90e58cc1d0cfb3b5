#include "services/orchestrator/admin_api.h"

#include <openssl/crypto.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/base/sha256.h"

namespace moa::orchestrator {
namespace {

namespace http = boost::beast::http;
constexpr absl::string_view kKeys = "/admin/v1/keys";

net::HttpResponse Json(int status, const json::Json& body) {
  net::HttpResponse r;
  r.status = status;
  r.body = json::Dump(body);
  return r;
}

net::HttpResponse Error(int status, absl::string_view message, absl::string_view code) {
  const char* type = status == 401   ? "authentication_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  net::HttpResponse r =
      Json(status, {{"error", {{"message", message}, {"type", type}, {"code", code}}}});
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  if (status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

net::HttpResponse FromStatus(const absl::Status& s) {
  const std::string m(s.message());
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return Error(400, m, "invalid_request");
    case absl::StatusCode::kNotFound:
      return Error(404, m, "key_not_found");
    case absl::StatusCode::kAlreadyExists:
      return Error(409, m, "key_exists");
    case absl::StatusCode::kFailedPrecondition:
      return Error(409, m, "key_revoked");
    case absl::StatusCode::kAborted:
      return Error(409, m, "conflict");
    case absl::StatusCode::kResourceExhausted:
      return Error(507, m, "directory_full");
    case absl::StatusCode::kUnavailable:
      return Error(503, absl::StrCat("the shared store cannot be reached: ", m),
                   "store_unavailable");
    default:
      return Error(500, m, "internal_error");
  }
}

// "/admin/v1/keys/NAME" -> NAME; "" for the collection; nullopt otherwise.
std::optional<std::string> KeyNameOf(absl::string_view path) {
  if (path == kKeys || path == absl::StrCat(kKeys, "/")) return std::string();
  if (!absl::StartsWith(path, absl::StrCat(kKeys, "/"))) return std::nullopt;
  absl::string_view name = path.substr(kKeys.size() + 1);
  if (name.empty() || name.find('/') != absl::string_view::npos) return std::nullopt;
  return std::string(name);
}

}  // namespace

AdminApi::AdminApi(KeyDirectory* directory, store::SharedSpend* spend, std::string admin_key,
                   const Clock* clock)
    : directory_(directory), spend_(spend), admin_sha256_(Sha256Hex(admin_key)), clock_(clock) {}

net::HttpResponse AdminApi::Off() {
  return Error(404,
               "the admin API is off: it needs a store: in the cluster config and MOA_ADMIN_KEY "
               "in the orchestrator's environment",
               "admin_api_off");
}

std::optional<net::HttpResponse> AdminApi::Screen(const net::HttpRequestHeader& header) const {
  auto auth = header.find(http::field::authorization);
  if (auth == header.end()) {
    return Error(401, "missing admin key: send 'Authorization: Bearer <admin key>'",
                 "invalid_admin_key");
  }
  absl::string_view value =
      absl::StripAsciiWhitespace(absl::string_view(auth->value().data(), auth->value().size()));
  const std::string presented = absl::StartsWithIgnoreCase(value, "bearer ")
                                    ? Sha256Hex(absl::StripAsciiWhitespace(value.substr(7)))
                                    : std::string(64, 'x');
  if (CRYPTO_memcmp(presented.data(), admin_sha256_.data(), 64) != 0) {
    return Error(401, "incorrect admin key (a client key never opens the admin API)",
                 "invalid_admin_key");
  }
  auto target_view = header.target();
  absl::string_view target(target_view.data(), target_view.size());
  absl::string_view path = target.substr(0, target.find('?'));
  std::optional<std::string> name = KeyNameOf(path);
  if (!name) return Error(404, absl::StrCat("no admin route ", path), "not_found");
  if (path.size() != target.size()) {
    return Error(400, "the admin API takes no query parameters", "invalid_request");
  }
  const http::verb m = header.method();
  const bool allowed =
      name->empty() ? (m == http::verb::get || m == http::verb::post)
                    : (m == http::verb::get || m == http::verb::patch || m == http::verb::delete_);
  if (!allowed) {
    return Error(405,
                 name->empty() ? "use GET or POST for /admin/v1/keys"
                               : "use GET, PATCH or DELETE for /admin/v1/keys/NAME",
                 "method_not_allowed");
  }
  uint64_t length = 0;
  if (auto field = header.find(http::field::content_length);
      field != header.end() &&
      (!absl::SimpleAtoi(absl::string_view(field->value().data(), field->value().size()),
                         &length) ||
       length > kMaxAdminBodyBytes)) {
    return Error(413,
                 absl::StrCat("an admin request's body is at most ", kMaxAdminBodyBytes, " bytes"),
                 "body_too_large");
  }
  return std::nullopt;
}

net::HttpResponse AdminApi::Handle(const net::HttpRequest& request) {
  if (request.body().size() > kMaxAdminBodyBytes) {
    return Error(413,
                 absl::StrCat("an admin request's body is at most ", kMaxAdminBodyBytes, " bytes"),
                 "body_too_large");
  }
  auto target_view = request.target();
  absl::string_view target(target_view.data(), target_view.size());
  const std::string name = *KeyNameOf(target.substr(0, target.find('?')));  // Screened.
  auto body = [&]() -> absl::StatusOr<json::Json> {
    absl::StatusOr<json::Json> j = json::Parse(request.body(), 8);
    if (!j.ok()) return j.status();
    if (!j->is_object()) return absl::InvalidArgumentError("the body must be a JSON object");
    return j;
  };
  switch (request.method()) {
    case http::verb::get: {
      if (!name.empty()) return One(name);
      absl::StatusOr<std::vector<KeyRecord>> all = directory_->List();
      if (!all.ok()) return FromStatus(all.status());
      json::Json data = json::Json::array();
      for (const KeyRecord& r : *all) data.push_back(KeyRecordView(r));
      return Json(200, {{"object", "list"}, {"data", data}});
    }
    case http::verb::post: {
      absl::StatusOr<json::Json> j = body();
      if (!j.ok()) return FromStatus(j.status());
      absl::StatusOr<std::optional<std::string>> key_name =
          json::OptionalString(*j, "name", "name");
      if (!key_name.ok()) return FromStatus(key_name.status());
      if (!*key_name) return Error(400, "name is required", "invalid_request");
      KeyLimits limits;
      if (absl::Status s = ReadKeyLimits(*j, {"name"}, &limits); !s.ok()) return FromStatus(s);
      absl::StatusOr<KeyDirectory::Created> c = directory_->Create(**key_name, limits);
      if (!c.ok()) return FromStatus(c.status());
      json::Json view = KeyRecordView(c->record);
      view["key"] = c->secret;
      return Json(201, view);
    }
    case http::verb::patch: {
      absl::StatusOr<json::Json> j = body();
      if (!j.ok()) return FromStatus(j.status());
      absl::StatusOr<KeyRecord> r = directory_->Update(name, *j);
      if (!r.ok()) return FromStatus(r.status());
      return Json(200, KeyRecordView(*r));
    }
    case http::verb::delete_: {
      absl::StatusOr<KeyRecord> r = directory_->Revoke(name);
      if (!r.ok()) return FromStatus(r.status());
      return Json(200, KeyRecordView(*r));
    }
    default:
      return Error(405, "method not allowed", "method_not_allowed");  // Screened.
  }
}

net::HttpResponse AdminApi::One(const std::string& name) {
  absl::StatusOr<KeyRecord> r = directory_->Find(name);
  if (!r.ok()) return FromStatus(r.status());
  json::Json view = KeyRecordView(*r);
  if (spend_ != nullptr) {
    const absl::Time now = clock_->Now();
    absl::StatusOr<store::Spent> spent = spend_->Read(r->key.sha256, now);
    if (!spent.ok()) return FromStatus(spent.status());
    absl::StatusOr<store::SpentByModel> by_model = spend_->ReadByModel(r->key.sha256, now);
    if (!by_model.ok()) return FromStatus(by_model.status());
    view["spend"] = {{"today_dollars", spent->day},
                     {"this_month_dollars", spent->month},
                     {"today_by_model", by_model->day},
                     {"this_month_by_model", by_model->month}};
  }
  return Json(200, view);
}

}  // namespace moa::orchestrator
