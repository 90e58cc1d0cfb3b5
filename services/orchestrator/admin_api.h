// The admin API, on the orchestrator's HTTP port (HTTPS when its TLS is
// on): client keys added, limited and revoked at runtime in the shared
// store's key directory (key_directory.h), seen by every replica.
//
//   GET    /admin/v1/keys        every key: name, limits, created, revoked
//   POST   /admin/v1/keys        {"name": N, limits...} -> 201, with the secret
//                                ("key"), shown this once
//   GET    /admin/v1/keys/NAME   one key, with its spend today and this month
//   PATCH  /admin/v1/keys/NAME   {limits...}; null clears a limit
//   DELETE /admin/v1/keys/NAME   revokes the key (its name stays taken)
//
// Only the admin key opens it ('Authorization: Bearer ADMIN_KEY', from
// MOA_ADMIN_KEY); a client key never does, and the admin key is no client
// key. It exists only with a store: keys changed at runtime must reach every
// replica and outlive restarts.
#ifndef MOA_SERVICES_ORCHESTRATOR_ADMIN_API_H_
#define MOA_SERVICES_ORCHESTRATOR_ADMIN_API_H_

#include <optional>
#include <string>

#include "lib/base/clock.h"
#include "lib/net/http_server.h"
#include "lib/store/shared_spend.h"
#include "services/orchestrator/key_directory.h"

namespace moa::orchestrator {

inline constexpr size_t kMaxAdminBodyBytes = 16 << 10;

class AdminApi {
 public:
  // `spend` may be null (no spend in the answers). All must outlive this.
  AdminApi(KeyDirectory* directory, store::SharedSpend* spend, std::string admin_key,
           const Clock* clock);

  static bool Owns(absl::string_view path) {
    return path == "/admin" || path.rfind("/admin/", 0) == 0;
  }
  // The answer from the headers alone (401 without the admin key, 404 for an
  // unknown route, 405 for a wrong method, 413 for a large body), or nullopt
  // to read the body and Handle it.
  std::optional<net::HttpResponse> Screen(const net::HttpRequestHeader& header) const;
  net::HttpResponse Handle(const net::HttpRequest& request);

  // The answer to /admin/ when no admin API is configured.
  static net::HttpResponse Off();

 private:
  net::HttpResponse One(const std::string& name);

  KeyDirectory* const directory_;
  store::SharedSpend* const spend_;
  const std::string admin_sha256_;
  const Clock* const clock_;
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ADMIN_API_H_
