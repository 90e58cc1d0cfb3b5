#include "tools/moa/spend.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/config/cluster_config.h"
#include "lib/store/redis_connection.h"
#include "lib/store/shared_spend.h"

namespace moa::cli {

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
    absl::StrAppend(
        &out, absl::StrFormat("%-20s today $%.6f  this month $%.6f\n", name, s->day, s->month));
  }
  return out;
}

}  // namespace moa::cli
