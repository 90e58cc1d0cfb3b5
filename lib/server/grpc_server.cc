#include "lib/server/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/base/log.h"

namespace moa::server {

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const GrpcServerOptions& options, const std::vector<grpc::Service*>& services) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  std::string address = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(
      address, options.credentials ? options.credentials : grpc::InsecureServerCredentials(),
      &port);
  if (options.max_receive_bytes > 0) {
    builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_receive_bytes));
  }
  if (options.max_send_bytes > 0) {
    builder.SetMaxSendMessageSize(static_cast<int>(options.max_send_bytes));
  }
  // Compression is refused (identity only): gRPC inflates a compressed
  // message whole before it compares it with the receive limit, so a 1 MiB
  // gzip message of zeros costs a gigabyte before any key is checked. With
  // gzip and deflate disabled, a call naming them ends UNIMPLEMENTED when its
  // headers arrive, before a message byte is inflated. Our own channels
  // never compress (lib/cluster sets the same), and the messages are text
  // that TLS or the network would carry as well uncompressed.
  builder.AddChannelArgument(GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET,
                             1 << GRPC_COMPRESS_NONE);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(options.name, ": cannot listen on ", address));
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(server), port, options.name));
}

GrpcServer::~GrpcServer() { Drain(absl::ZeroDuration()); }

void GrpcServer::SetServing(bool serving) {
  // Under the lock so a late "serving" never overwrites the drain's verdict.
  absl::MutexLock lock(&health_mu_);
  server_->GetHealthCheckService()->SetServingStatus(serving && !drained_.load());
}

void GrpcServer::BeginDrain() {
  drained_.store(true);
  SetServing(false);
}

void GrpcServer::Drain(absl::Duration grace) {
  if (shut_down_.exchange(true)) return;
  BeginDrain();
  LogInfo(name_, "draining: refusing new calls, ", absl::FormatDuration(grace),
          " for calls in flight");
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace moa::server
