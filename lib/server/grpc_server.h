// Starts a gRPC server the way every moa service wants it: callback services,
// grpc.health.v1, server reflection, a bound port read back, and a drain that
// stops accepting, lets streams finish within a grace period, then cancels.
#ifndef MOA_LIB_SERVER_GRPC_SERVER_H_
#define MOA_LIB_SERVER_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace moa::server {

struct GrpcServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0 picks a free port; see GrpcServer::port().
  // Name for logs, e.g. "moa-proposer".
  std::string name;
  // Largest message received and sent; 0 keeps gRPC's defaults (4 MiB in).
  int64_t max_receive_bytes = 0;
  int64_t max_send_bytes = 0;
  // Null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials = nullptr;
};

class GrpcServer {
 public:
  // Registers `services` (not owned; they must outlive the server) and
  // starts serving. UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const GrpcServerOptions& options, const std::vector<grpc::Service*>& services);

  ~GrpcServer();

  int port() const { return port_; }

  // What grpc.health.v1 reports for every service ("" included). Once the
  // drain has begun it stays NOT_SERVING. Thread-safe.
  void SetServing(bool serving);

  // Health turns NOT_SERVING for good (the first step of a drain); calls are
  // still accepted. Idempotent.
  void BeginDrain();

  // Marks the server NOT_SERVING in health checks, refuses new calls, waits
  // up to `grace` for calls in flight, then cancels the rest. Idempotent.
  void Drain(absl::Duration grace);

  grpc::Server* server() { return server_.get(); }

 private:
  GrpcServer(std::unique_ptr<grpc::Server> server, int port, std::string name)
      : server_(std::move(server)), port_(port), name_(std::move(name)) {}
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::string name_;
  std::atomic<bool> drained_{false};
  std::atomic<bool> shut_down_{false};
  absl::Mutex health_mu_;
};

// The same code and message at the RPC edge. absl and gRPC share code values.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace moa::server

#endif  // MOA_LIB_SERVER_GRPC_SERVER_H_
