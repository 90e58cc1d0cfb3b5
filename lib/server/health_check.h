// Calls grpc.health.v1.Health/Check without generated stubs (Debian ships
// no health.proto for C++ clients). The request asks about the whole server
// (service ""); the answer {status: SERVING} is the bytes 08 01.
#ifndef MOA_LIB_SERVER_HEALTH_CHECK_H_
#define MOA_LIB_SERVER_HEALTH_CHECK_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <string>

namespace moa::server {

// Returns the status enum (1 SERVING, 2 NOT_SERVING), or -1 if the call failed.
inline int HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                       std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::CompletionQueue cq;
  // HealthCheckRequest{service: ""} with the empty string written out: a
  // zero-length message is not accepted as a request.
  static const char kRequest[] = {0x0a, 0x00};
  grpc::Slice slice(kRequest, sizeof(kRequest));
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  response.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.size() == 2 && bytes[0] == 0x08) return bytes[1];
  return bytes.empty() ? 0 : -1;
}

}  // namespace moa::server

#endif  // MOA_LIB_SERVER_HEALTH_CHECK_H_
