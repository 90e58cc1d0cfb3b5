// Engine: what both of the orchestrator's servers (gRPC and OpenAI HTTP)
// share to run MoA requests: checking and resolving a request, admission,
// the request deadline, and starting the MoaCall. It holds no gRPC server or
// HTTP code, so its tests link neither.
#ifndef MOA_SERVICES_ORCHESTRATOR_ENGINE_ENGINE_H_
#define MOA_SERVICES_ORCHESTRATOR_ENGINE_ENGINE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/config/cluster_config.h"
#include "moa/v1/orchestrator.pb.h"
#include "services/orchestrator/engine/admission.h"
#include "services/orchestrator/engine/moa_call.h"

namespace moa::orchestrator {

// Who asks, beyond the request: what its plan may depend on.
struct Caller {
  std::string key_name;  // The client key's name ("" when the cluster has no keys).
  std::string preset;    // The key's preset: used when the request names none.
};

// Checks a Chat request against the limits and resolves its pipeline, its
// conversation and params into a call's options (deadline left infinite):
// INVALID_ARGUMENT naming the field, NOT_FOUND for an unknown pipeline. A
// request naming a route is planned on the pipeline the route chooses
// (route.h), whose rules may look at the caller's key. The request's preset
// (else the caller's) is applied to the pipeline (ApplyPreset).
absl::StatusOr<MoaCall::Options> PlanChat(const v1::ChatRequest& request,
                                          const config::ClusterConfig& config,
                                          const Caller& caller = {});

struct EngineOptions {
  // Upper bound of every request's deadline (the client's may be sooner),
  // so no request runs forever.
  absl::Duration request_timeout = absl::Minutes(10);
};

class Engine {
 public:
  // Everything passed in must outlive the engine and its calls.
  Engine(EngineOptions options, const config::ClusterConfig* config, MoaEnv env,
         Admission* admission)
      : options_(options), config_(config), env_(WithConfig(env, config)), admission_(admission) {}

  // PlanChat, with the deadline: the sooner of `client_deadline` and
  // request_timeout from now.
  absl::StatusOr<MoaCall::Options> Plan(const v1::ChatRequest& request,
                                        absl::Time client_deadline = absl::InfiniteFuture(),
                                        const Caller& caller = {}) const;

  // A slot for one request, or why not: RESOURCE_EXHAUSTED at the limit,
  // UNAVAILABLE while draining. Taken before anything is sent to a client.
  absl::StatusOr<Admission::Slot> Admit() { return admission_->Acquire(); }

  // Starts the call on its slot, which is given back once the sink has had
  // its OnFinish. The drain can cancel the call. A plan with a route's
  // classifier still to ask starts with that call (route.h).
  std::shared_ptr<RunningCall> Start(Admission::Slot slot, MoaCall::Options options,
                                     std::shared_ptr<MoaCallSink> sink);

  const config::ClusterConfig& config() const { return *config_; }
  const Admission& admission() const { return *admission_; }
  const Clock& clock() const { return *env_.clock; }

 private:
  // The calls price their usage from the engine's config.
  static MoaEnv WithConfig(MoaEnv env, const config::ClusterConfig* config) {
    if (env.config == nullptr) env.config = config;
    return env;
  }

  const EngineOptions options_;
  const config::ClusterConfig* const config_;
  const MoaEnv env_;
  Admission* const admission_;
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ENGINE_ENGINE_H_
