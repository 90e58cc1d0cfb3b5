#include "tools/moa/spend.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/base/json.h"
#include "lib/config/cluster_config.h"
#include "lib/store/redis_connection.h"
#include "lib/store/shared_spend.h"
#include "tools/moa/keys_admin.h"

namespace moa::cli {

std::string SpendLines(const std::string& name, double day, double month,
                       const std::map<std::string, double>& day_by_model,
                       const std::map<std::string, double>& month_by_model) {
  std::string out = absl::StrFormat("%-20s today $%.6f  this month $%.6f\n", name, day, month);
  for (const auto& [model, dollars] : month_by_model) {
    auto today = day_by_model.find(model);
    absl::StrAppend(&out,
                    absl::StrFormat("  %-18s today $%.6f  this month $%.6f\n", model,
                                    today == day_by_model.end() ? 0.0 : today->second, dollars));
  }
  return out;
}

absl::StatusOr<std::string> SpendReport(const std::string& config_path,
                                        const std::string& keys_file, absl::Time now) {
  absl::StatusOr<config::ClusterConfig> cfg = config::LoadClusterConfig(config_path);
  if (!cfg.ok()) return cfg.status();
  if (!cfg->store) {
    return absl::FailedPreconditionError(absl::StrCat(
        config_path, " has no store: spend is kept per orchestrator replica (its metrics)"));
  }
  store::RedisOptions o;
  o.host = cfg->store->host;
  o.port = cfg->store->port;
  o.timeout = std::max(cfg->store->timeout, absl::Seconds(1));  // A person waits, not a request.
  if (!cfg->store->password_env.empty()) {
    const char* password = std::getenv(cfg->store->password_env.c_str());
    if (password == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("store.password_env: ", cfg->store->password_env, " is not set"));
    }
    o.password = password;
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(keys_file);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(keys_file, ": ", e.what()));
  }
  if (!root.IsMap() || !root["keys"].IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(keys_file, ": not a keys file with named keys (keys:)"));
  }
  store::RedisConnection connection(o);
  store::SharedSpend spend(&connection);
  std::string out;
  for (const auto& kv : root["keys"]) {
    const std::string name = kv.first.as<std::string>("");
    const YAML::Node sha = kv.second["sha256"];
    if (name.empty() || !sha || !sha.IsScalar()) continue;
    absl::StatusOr<store::Spent> s = spend.Read(sha.Scalar(), now);
    if (!s.ok()) return s.status();
    absl::StatusOr<store::SpentByModel> m = spend.ReadByModel(sha.Scalar(), now);
    if (!m.ok()) return m.status();
    absl::StrAppend(&out, SpendLines(name, s->day, s->month, m->day, m->month));
  }
  return out;
}

namespace {

// A {"model": dollars} object of an admin reply; anything else is an error.
absl::StatusOr<std::map<std::string, double>> ByModel(const json::Json& spend, const char* field) {
  std::map<std::string, double> out;
  const json::Json* j = json::Member(spend, field);
  if (j == nullptr) return out;
  if (!j->is_object()) return absl::InternalError(absl::StrCat("spend.", field, " is no object"));
  for (const auto& [model, dollars] : j->items()) {
    if (!dollars.is_number()) {
      return absl::InternalError(absl::StrCat("spend.", field, ".", model, " is no number"));
    }
    out[model] = dollars.get<double>();
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> SpendFromKeyView(const std::string& name, const std::string& body) {
  absl::StatusOr<json::Json> one = json::Parse(body);
  if (!one.ok() || !one->is_object()) {
    return absl::InternalError(absl::StrCat("key '", name, "': the admin API answered no object"));
  }
  const json::Json* spend = json::Member(*one, "spend");
  if (spend == nullptr || !spend->is_object()) {
    return absl::InternalError(absl::StrCat("key '", name, "': the admin API gave no spend"));
  }
  const json::Json* day = json::Member(*spend, "today_dollars");
  const json::Json* month = json::Member(*spend, "this_month_dollars");
  if (day == nullptr || !day->is_number() || month == nullptr || !month->is_number()) {
    return absl::InternalError(absl::StrCat("key '", name, "': spend without its numbers"));
  }
  absl::StatusOr<std::map<std::string, double>> day_by_model = ByModel(*spend, "today_by_model");
  if (!day_by_model.ok()) return day_by_model.status();
  absl::StatusOr<std::map<std::string, double>> month_by_model =
      ByModel(*spend, "this_month_by_model");
  if (!month_by_model.ok()) return month_by_model.status();
  return SpendLines(name, day->get<double>(), month->get<double>(), *day_by_model, *month_by_model);
}

absl::StatusOr<std::string> SpendThroughAdmin(const std::string& admin_url,
                                              const std::string& admin_key,
                                              const std::string& ca_file, absl::Duration timeout) {
  auto get = [&](const std::string& path) -> absl::StatusOr<std::string> {
    absl::StatusOr<AdminReply> reply =
        CallHttp(admin_url, admin_key, ca_file, "GET", path, "", timeout);
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return absl::UnavailableError(AdminError(*reply));
    return reply->body;
  };
  absl::StatusOr<std::string> list_body = get("/admin/v1/keys");
  if (!list_body.ok()) return list_body.status();
  absl::StatusOr<json::Json> list = json::Parse(*list_body);
  const json::Json* data = list.ok() && list->is_object() ? json::Member(*list, "data") : nullptr;
  if (data == nullptr || !data->is_array()) {
    return absl::InternalError("/admin/v1/keys: the admin API answered no data array");
  }
  std::string out;
  for (const json::Json& key : *data) {
    const json::Json* name = key.is_object() ? json::Member(key, "name") : nullptr;
    if (name == nullptr || !name->is_string()) continue;
    const std::string n = name->get<std::string>();
    absl::StatusOr<std::string> one = get("/admin/v1/keys/" + n);
    if (!one.ok()) return one.status();
    absl::StatusOr<std::string> lines = SpendFromKeyView(n, *one);
    if (!lines.ok()) return lines.status();
    absl::StrAppend(&out, *lines);
  }
  return out;
}

}  // namespace moa::cli
