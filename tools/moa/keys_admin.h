// `moa keys add|limit|revoke|list --admin_url URL`: client keys changed
// through an orchestrator's admin API (services/orchestrator/admin_api.h),
// in the shared store every replica reads. The admin key comes from
// MOA_ADMIN_KEY, never a flag (flags show in process lists).
#ifndef MOA_TOOLS_MOA_KEYS_ADMIN_H_
#define MOA_TOOLS_MOA_KEYS_ADMIN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moa::cli {

struct AdminReply {
  long status = 0;
  std::string body;
};

// One HTTP request to `base_url` + `path` (http:// or https://, TLS checked
// against `ca_file` when set), with 'Authorization: Bearer KEY' when
// `bearer` is set: the admin API, and `moa health` on an http:// URL.
// UNAVAILABLE when it cannot be reached.
absl::StatusOr<AdminReply> CallHttp(const std::string& base_url, const std::string& bearer,
                                    const std::string& ca_file, const std::string& method,
                                    const std::string& path, const std::string& body,
                                    absl::Duration timeout);

// The error an admin reply carries ({"error": {"message": ...}}), or its
// status line when it carries none.
std::string AdminError(const AdminReply& reply);

// `moa keys list`'s table: one line per key (name, active or revoked, limits).
absl::StatusOr<std::string> KeyTable(const std::string& list_body);

}  // namespace moa::cli

#endif  // MOA_TOOLS_MOA_KEYS_ADMIN_H_
