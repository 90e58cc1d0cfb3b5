// OrchestratorService: the gRPC service. Chat runs a MoaCall per request
// through the Engine and streams its events; ListPipelines lists the
// configured pipelines.
#ifndef MOA_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
#define MOA_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_

#include "absl/status/status.h"
#include "moa/v1/orchestrator.grpc.pb.h"
#include "services/orchestrator/api_keys.h"
#include "services/orchestrator/engine/engine.h"
#include "services/orchestrator/key_limits.h"

namespace moa::orchestrator {

// Chat is a raw method (lib/server/server_stream_reactor.h): a request that
// is no valid ChatRequest is refused INVALID_ARGUMENT by name.
class OrchestratorService final : public v1::OrchestratorService::WithRawCallbackMethod_Chat<
                                      v1::OrchestratorService::CallbackService> {
 public:
  // All must outlive the service. With keys enabled, every call needs
  // metadata "authorization: Bearer KEY", and `limiter` (may be null: no
  // limits) applies the key's limits.
  OrchestratorService(Engine* engine, const ApiKeys* api_keys, KeyLimiter* limiter = nullptr)
      : engine_(engine), api_keys_(api_keys), limiter_(limiter) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Chat(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* ListPipelines(grpc::CallbackServerContext* context,
                                          const v1::ListPipelinesRequest* request,
                                          v1::ListPipelinesResponse* response) override;

 private:
  Engine* const engine_;
  const ApiKeys* const api_keys_;
  KeyLimiter* const limiter_;
};

// The key the call carries (nullptr when keys are off), or UNAUTHENTICATED.
absl::StatusOr<std::shared_ptr<const ApiKey>> CheckGrpcAuth(
    const grpc::CallbackServerContext& context, const ApiKeys& keys);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
