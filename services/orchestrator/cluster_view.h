// What the orchestrator knows about its cluster, in one place for the two
// readers: gRPC ListPipelines and the operator pages' GET /v1/moa/cluster
// (the playground, docs/playground.md). Nothing here is a second source of
// truth: the config, the breakers, the hedging samples and the key limiter
// are read as they are.
#ifndef MOA_SERVICES_ORCHESTRATOR_CLUSTER_VIEW_H_
#define MOA_SERVICES_ORCHESTRATOR_CLUSTER_VIEW_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lib/base/json.h"
#include "lib/cluster/breaking_backend.h"
#include "lib/cluster/hedging_backend.h"
#include "lib/config/cluster_config.h"
#include "moa/v1/orchestrator.pb.h"
#include "services/orchestrator/api_keys.h"
#include "services/orchestrator/key_limits.h"

namespace moa::orchestrator {

// The pipelines, routes and presets as ListPipelines answers them.
v1::ListPipelinesResponse DescribePipelines(const config::ClusterConfig& config);

// One model's health as the orchestrator's proposer path sees it.
struct ModelStatus {
  std::string model;
  // closed, open or half-open (the worse of its proposer's and its
  // aggregator's breaker); "off" when breakers are off.
  std::string breaker = "off";
  // Recent times to first byte (hedging's samples, of the path with more;
  // 0 samples when hedging is off or the model was not called yet).
  int first_byte_samples = 0;
  absl::Duration first_byte_p50;
  absl::Duration first_byte_p95;
};
using ModelStatusSource = std::function<std::vector<ModelStatus>()>;

// Each model's status from the breakers and hedging samples of both paths
// (a model is called as a proposer, as an aggregator, or both): the worse
// breaker state, and the samples of the path that has more. A null
// backend is off.
std::vector<ModelStatus> ModelStatuses(const std::vector<std::string>& models,
                                       const cluster::BreakingBackend* proposer_breakers,
                                       const cluster::BreakingBackend* aggregator_breakers,
                                       cluster::HedgingBackend* proposer_hedging,
                                       cluster::HedgingBackend* aggregator_hedging);

struct ClusterViewInput {
  const config::ClusterConfig* config = nullptr;
  int grpc_port = -1;               // Where `moa ask` reaches this orchestrator.
  std::vector<ModelStatus> models;  // Missing models show as unknown.
  bool keys_enabled = false;
  bool admin_api = false;
  const ApiKey* caller = nullptr;  // The key that asked, when keys are on.
  std::optional<KeyLimiter::LocalUsage> caller_usage;
};

// GET /v1/moa/cluster's body: {pipelines, presets, models, keys, grpc_port}.
json::Json ClusterViewJson(const ClusterViewInput& in);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_CLUSTER_VIEW_H_
