// The playground and operator pages (docs/playground.md): static files
// built into the binary (services/orchestrator/ui, embedded at build time
// by services/orchestrator/embed_files.cmake) and served under /ui/ on the HTTP port. They
// load nothing from elsewhere (the Content-Security-Policy says so to the
// browser) and read only the APIs any client has: /v1/moa/chat,
// /v1/moa/cluster and, with the admin key, /admin/v1/keys.
#ifndef MOA_SERVICES_ORCHESTRATOR_PLAYGROUND_H_
#define MOA_SERVICES_ORCHESTRATOR_PLAYGROUND_H_

#include <cstddef>
#include <optional>
#include <string_view>

#include "absl/strings/string_view.h"
#include "lib/net/http_server.h"

namespace moa::orchestrator::playground {

struct EmbeddedFile {
  std::string_view name;  // Path under ui/, e.g. "app.js".
  std::string_view data;
};
extern const EmbeddedFile kEmbeddedFiles[];
extern const size_t kEmbeddedFileCount;

// Whether `path` is the playground's: "/ui" or under "/ui/".
bool Owns(absl::string_view path);

// The answer to a request for `path` (Owns): for a GET, the file, a
// redirect from "/ui" to "/ui/", or 404 for a file it does not have; 405
// for another method.
net::HttpResponse Serve(absl::string_view path, bool get);

}  // namespace moa::orchestrator::playground

#endif  // MOA_SERVICES_ORCHESTRATOR_PLAYGROUND_H_
