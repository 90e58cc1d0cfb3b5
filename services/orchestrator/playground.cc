#include "services/orchestrator/playground.h"

#include "absl/strings/match.h"

namespace moa::orchestrator::playground {
namespace {

constexpr absl::string_view kRoot = "/ui/";

// Everything the page needs is ours: scripts, styles, images and requests
// go to this origin only, inline script never runs, no one frames the page.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

absl::string_view ContentType(absl::string_view name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(name, ".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

net::HttpResponse Text(int status, std::string body) {
  net::HttpResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

}  // namespace

bool Owns(absl::string_view path) { return path == "/ui" || absl::StartsWith(path, kRoot); }

net::HttpResponse Serve(absl::string_view path, bool get) {
  if (!get) {
    net::HttpResponse r = Text(405, "use GET for the playground's pages\n");
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  if (path == "/ui") {
    net::HttpResponse r = Text(308, "the playground is at /ui/\n");
    r.headers.emplace_back("Location", std::string(kRoot));
    return r;
  }
  absl::string_view name = path.substr(kRoot.size());
  if (name.empty()) name = "index.html";
  for (size_t i = 0; i < kEmbeddedFileCount; ++i) {
    const EmbeddedFile& f = kEmbeddedFiles[i];
    if (f.name != std::string_view(name.data(), name.size())) continue;
    net::HttpResponse r;
    r.content_type = std::string(ContentType(name));
    r.body = std::string(f.data);
    r.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    // Built into the binary: a new binary may have new pages.
    r.headers.emplace_back("Cache-Control", "no-cache");
    return r;
  }
  return Text(404, "the playground has no such file\n");
}

}  // namespace moa::orchestrator::playground
