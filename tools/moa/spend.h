// `moa spend`: what client keys spent today and this month (UTC), in total
// and by model, across every replica: read from the cluster's shared store
// for the named keys of a keys file, or through an orchestrator's admin API
// for every key of the store (also those added at runtime).
#ifndef MOA_TOOLS_MOA_SPEND_H_
#define MOA_TOOLS_MOA_SPEND_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moa::cli {

// One key's lines of the report: "NAME  today $X  this month $Y", then one
// indented line per model that cost something this month.
std::string SpendLines(const std::string& name, double day, double month,
                       const std::map<std::string, double>& day_by_model,
                       const std::map<std::string, double>& month_by_model);

// The report for each named key of `keys_file`. FAILED_PRECONDITION when
// the config has no `store:`; the store's errors as they are.
absl::StatusOr<std::string> SpendReport(const std::string& config_path,
                                        const std::string& keys_file, absl::Time now);

// `name`'s lines from its admin view (GET /admin/v1/keys/NAME); INTERNAL
// when the body is not such a view.
absl::StatusOr<std::string> SpendFromKeyView(const std::string& name, const std::string& body);

// The report for every key, active or revoked, through the admin API at
// `admin_url` (GET /admin/v1/keys, then each key).
absl::StatusOr<std::string> SpendThroughAdmin(const std::string& admin_url,
                                              const std::string& admin_key,
                                              const std::string& ca_file, absl::Duration timeout);

}  // namespace moa::cli

#endif  // MOA_TOOLS_MOA_SPEND_H_
