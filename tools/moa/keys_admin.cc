#include "tools/moa/keys_admin.h"

#include <curl/curl.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "lib/base/json.h"

namespace moa::cli {
namespace {

constexpr size_t kMaxReplyBytes = 32 << 20;

size_t Collect(char* data, size_t size, size_t count, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() + size * count > kMaxReplyBytes) return 0;  // Fails the transfer.
  body->append(data, size * count);
  return size * count;
}

}  // namespace

absl::StatusOr<AdminReply> CallHttp(const std::string& base_url, const std::string& bearer,
                                    const std::string& ca_file, const std::string& method,
                                    const std::string& path, const std::string& body,
                                    absl::Duration timeout) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return absl::InternalError("cannot start libcurl");
  std::string base = base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string url = base + path;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(timeout)));
  if (!ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file.c_str());
  if (!body.empty() || method == "POST" || method == "PATCH") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_slist* headers = nullptr;
  const std::string auth = absl::StrCat("Authorization: Bearer ", bearer);
  if (!bearer.empty()) headers = curl_slist_append(headers, auth.c_str());
  if (!body.empty()) headers = curl_slist_append(headers, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  AdminReply reply;
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  const CURLcode code = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (code != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat(url, " is not reachable (", curl_easy_strerror(code), ")"));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

std::string AdminError(const AdminReply& reply) {
  absl::StatusOr<json::Json> j = json::Parse(reply.body);
  if (j.ok()) {
    if (const json::Json* e = json::Member(*j, "error")) {
      if (const json::Json* m = json::Member(*e, "message"); m != nullptr && m->is_string()) {
        return absl::StrCat("HTTP ", reply.status, ": ", m->get<std::string>());
      }
    }
  }
  return absl::StrCat("HTTP ", reply.status);
}

absl::StatusOr<std::string> KeyTable(const std::string& list_body) {
  absl::StatusOr<json::Json> j = json::Parse(list_body);
  if (!j.ok()) return j.status();
  const json::Json* data = json::Member(*j, "data");
  if (data == nullptr || !data->is_array()) {
    return absl::InternalError("the admin API's key list has no data array");
  }
  std::string out = absl::StrFormat("%-24s %-8s %s\n", "NAME", "STATE", "LIMITS");
  for (const json::Json& k : *data) {
    const json::Json* name = json::Member(k, "name");
    const json::Json* limits = json::Member(k, "limits");
    if (name == nullptr || !name->is_string()) continue;
    const bool revoked = json::Member(k, "revoked") != nullptr;
    std::string shown = limits != nullptr && !limits->empty() ? json::Dump(*limits) : "none";
    absl::StrAppend(&out, absl::StrFormat("%-24s %-8s %s\n", name->get<std::string>(),
                                          revoked ? "revoked" : "active", shown));
  }
  return out;
}

}  // namespace moa::cli
