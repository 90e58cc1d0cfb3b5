#include "lib/server/tls.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <fstream>

#include "absl/strings/str_cat.h"

namespace moa::server {
namespace {

// gRPC's file watcher logs and keeps the old material when a file goes
// bad; checking at start-up turns a wrong path into an error that names it.
absl::Status Readable(const config::TlsConfig& tls) {
  for (const std::string* path : {&tls.ca_file, &tls.cert_file, &tls.key_file}) {
    std::ifstream in(*path);
    if (!in) return absl::NotFoundError(absl::StrCat("tls: cannot read ", *path));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> Provider(
    const config::TlsConfig& tls) {
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.ca_file, static_cast<unsigned int>(tls.refresh_seconds));
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServiceServerCredentials(
    const std::optional<config::TlsConfig>& tls) {
  if (!tls) return grpc::InsecureServerCredentials();
  if (absl::Status s = Readable(*tls); !s.ok()) return s;
  grpc::experimental::TlsServerCredentialsOptions options(Provider(*tls));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ServiceChannelCredentials(
    const std::optional<config::TlsConfig>& tls) {
  if (!tls) return grpc::InsecureChannelCredentials();
  if (absl::Status s = Readable(*tls); !s.ok()) return s;
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(*tls));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  return grpc::experimental::TlsCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> FrontServerCredentials(
    const std::string& cert_file, const std::string& key_file, int refresh_seconds) {
  if (cert_file.empty() && key_file.empty()) return grpc::InsecureServerCredentials();
  if (cert_file.empty() || key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  for (const std::string* path : {&cert_file, &key_file}) {
    std::ifstream in(*path);
    if (!in) return absl::NotFoundError(absl::StrCat("tls: cannot read ", *path));
  }
  grpc::experimental::TlsServerCredentialsOptions options(
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          key_file, cert_file, static_cast<unsigned int>(std::max(1, refresh_seconds))));
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace moa::server
