// OrchestratorService: the gRPC front door. Chat runs a MoaCall per request
// and streams its events; ListPipelines lists the configured pipelines.
#ifndef MOA_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
#define MOA_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_

#include <atomic>
#include <memory>

#include "lib/config/cluster_config.h"
#include "lib/telemetry/orchestrator_metrics.h"
#include "moa/v1/orchestrator.grpc.pb.h"
#include "services/orchestrator/admission.h"
#include "services/orchestrator/api_keys.h"
#include "services/orchestrator/moa_call.h"

namespace moa::orchestrator {

struct OrchestratorOptions {
  // Upper bound of every request's deadline (the client's may be sooner),
  // so no request runs forever.
  absl::Duration request_timeout = absl::Minutes(10);
};

class OrchestratorService final : public v1::OrchestratorService::CallbackService {
 public:
  // Everything passed in must outlive the service.
  // With keys enabled, every call needs metadata "authorization: Bearer KEY".
  OrchestratorService(OrchestratorOptions options, const config::ClusterConfig* config,
                      MoaBackends backends, telemetry::OrchestratorMetrics* metrics,
                      Admission* admission, const ApiKeys* api_keys);

  grpc::ServerWriteReactor<v1::ChatEvent>* Chat(grpc::CallbackServerContext* context,
                                                const v1::ChatRequest* request) override;
  grpc::ServerUnaryReactor* ListPipelines(grpc::CallbackServerContext* context,
                                          const v1::ListPipelinesRequest* request,
                                          v1::ListPipelinesResponse* response) override;

 private:
  friend class ChatReactor;
  const OrchestratorOptions options_;
  const config::ClusterConfig* const config_;
  const MoaBackends backends_;
  telemetry::OrchestratorMetrics* const metrics_;
  Admission* const admission_;
  const ApiKeys* const api_keys_;
};

// UNAUTHENTICATED unless keys are off or the call carries a valid one.
absl::Status CheckGrpcAuth(const grpc::CallbackServerContext& context, const ApiKeys& keys);

// Checks a Chat request and resolves its pipeline: INVALID_ARGUMENT naming
// the field, NOT_FOUND for an unknown pipeline.
absl::StatusOr<ResolvedPipeline> ValidateChatRequest(const v1::ChatRequest& request,
                                                     const config::ClusterConfig& config);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
