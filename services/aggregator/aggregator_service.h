// AggregatorService: builds the synthesis messages from the references and
// streams the target model's answer by calling that model's proposer. It
// never speaks HTTP to an LLM itself.
#ifndef MOA_SERVICES_AGGREGATOR_AGGREGATOR_SERVICE_H_
#define MOA_SERVICES_AGGREGATOR_AGGREGATOR_SERVICE_H_

#include <set>
#include <string>

#include "lib/base/clock.h"
#include "lib/cluster/generation_backend.h"
#include "lib/config/cluster_config.h"
#include "lib/telemetry/call_metrics.h"
#include "moa/v1/aggregator.grpc.pb.h"

namespace moa::aggregator {

struct AggregatorOptions {
  std::set<std::string> models;  // Models the aggregator may call (the cluster config's).
  std::string instruction;       // Synthesis instruction (default or --synthesis_prompt_file).
  config::Limits limits;         // The cluster config's limits.
};

// The synthesizing call an Aggregate request asks for: its conversation with
// the references injected, params and text mode (deadline left infinite).
// INVALID_ARGUMENT naming the field (or the limit), NOT_FOUND for a model
// outside the cluster; checked before anything is called.
absl::StatusOr<cluster::GenerationCall> PlanAggregate(const v1::AggregateRequest& request,
                                                      const AggregatorOptions& options);

// Aggregate is a raw method (lib/server/server_stream_reactor.h): a request
// that is no valid AggregateRequest is refused INVALID_ARGUMENT by name.
class AggregatorService final : public v1::AggregatorService::WithRawCallbackMethod_Aggregate<
                                    v1::AggregatorService::CallbackService> {
 public:
  // `proposers`, `metrics` and `clock` must outlive the service. Stateless
  // per call.
  AggregatorService(AggregatorOptions options, cluster::GenerationBackend* proposers,
                    telemetry::CallMetrics* metrics, const Clock* clock = Clock::Real());

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Aggregate(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request) override;

 private:
  const AggregatorOptions options_;
  cluster::GenerationBackend* const proposers_;
  telemetry::CallMetrics* const metrics_;
  const Clock* const clock_;
};

}  // namespace moa::aggregator

#endif  // MOA_SERVICES_AGGREGATOR_AGGREGATOR_SERVICE_H_
