// ProposerService: streams one upstream model's answer over gRPC.
#ifndef MOA_SERVICES_PROPOSER_PROPOSER_SERVICE_H_
#define MOA_SERVICES_PROPOSER_PROPOSER_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>

#include "lib/base/clock.h"
#include "lib/llm/llm_client.h"
#include "lib/telemetry/upstream_metrics.h"
#include "moa/v1/proposer.grpc.pb.h"

namespace moa::proposer {

struct ProposerOptions {
  std::string model;       // Cluster name of the wrapped model (metrics label, messages).
  int max_inflight = 512;  // Calls beyond this get RESOURCE_EXHAUSTED at once.
  // Text one call may produce (limits.max_answer_bytes): past it the upstream
  // call is cancelled and the answer ends, cut, with finish_reason "length".
  int64_t max_answer_bytes = 1 << 20;
  // Messages one call may carry (limits.max_messages), as the orchestrator
  // and the aggregator check: a direct caller gets no more past the proposer.
  int max_messages = 512;
  // How the upstream is asked to continue a partial answer.
  llm::Continuation continuation = llm::Continuation::kPrefill;
};

// Callback-API service; no thread per call. Each Generate starts one upstream
// call through `client`; text deltas are written as they arrive, merged while
// a write is in flight. The caller's deadline and cancellation end the
// upstream transfer.
// Generate is a raw method (lib/server/server_stream_reactor.h): a request
// that is no valid GenerateRequest is refused INVALID_ARGUMENT by name.
class ProposerService final : public v1::ProposerService::WithRawCallbackMethod_Generate<
                                  v1::ProposerService::CallbackService> {
 public:
  // `client`, `metrics` and `clock` must outlive the service.
  ProposerService(ProposerOptions options, llm::LlmClient* client,
                  telemetry::UpstreamMetrics* metrics, const Clock* clock = Clock::Real());

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;

  int inflight() const { return inflight_.load(); }

 private:
  const ProposerOptions options_;
  llm::LlmClient* const client_;
  telemetry::UpstreamMetrics* const metrics_;
  const Clock* const clock_;
  std::atomic<int> inflight_{0};
};

}  // namespace moa::proposer

#endif  // MOA_SERVICES_PROPOSER_PROPOSER_SERVICE_H_
