// gRPC credentials between the cluster's services: mTLS from the cluster
// config's `tls:` files (watched, so rotation needs no restart), or
// plaintext when the config has none.
#ifndef MOA_LIB_SERVER_TLS_H_
#define MOA_LIB_SERVER_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "lib/config/cluster_config.h"

namespace moa::server {

// A server that requires a client certificate signed by the CA (a proposer
// or the aggregator). NOT_FOUND naming the file when one cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServiceServerCredentials(
    const std::optional<config::TlsConfig>& tls);

// A channel to one of them: presents this process's certificate, checks
// the server's against the CA and its host name against the target.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ServiceChannelCredentials(
    const std::optional<config::TlsConfig>& tls);

// The orchestrator's gRPC front door: TLS with this certificate and key
// (re-read every `refresh_seconds`); clients are not asked for one (they
// authenticate with API keys). Plaintext when both paths are empty;
// INVALID_ARGUMENT when only one is set, NOT_FOUND when one cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> FrontServerCredentials(
    const std::string& cert_file, const std::string& key_file, int refresh_seconds);

}  // namespace moa::server

#endif  // MOA_LIB_SERVER_TLS_H_
