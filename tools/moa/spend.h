// `moa spend`: what each client key of a keys file spent today and this
// month (UTC), across every replica, read from the cluster's shared store.
#ifndef MOA_TOOLS_MOA_SPEND_H_
#define MOA_TOOLS_MOA_SPEND_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moa::cli {

// One line per named key of `keys_file` ("NAME  today $X  this month $Y").
// FAILED_PRECONDITION when the config has no `store:`; the store's errors
// as they are.
absl::StatusOr<std::string> SpendReport(const std::string& config_path,
                                        const std::string& keys_file, absl::Time now);

}  // namespace moa::cli

#endif  // MOA_TOOLS_MOA_SPEND_H_
