// GenerationBackends over gRPC (callback API, no thread per call):
// ProposerBackend calls ProposerService.Generate on the model's own
// proposer; AggregatorBackend calls AggregatorService.Aggregate.
#ifndef MOA_LIB_CLUSTER_GRPC_BACKENDS_H_
#define MOA_LIB_CLUSTER_GRPC_BACKENDS_H_

#include <grpcpp/security/credentials.h>

#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "lib/cluster/generation_backend.h"
#include "lib/config/cluster_config.h"
#include "moa/v1/aggregator.grpc.pb.h"
#include "moa/v1/proposer.grpc.pb.h"

namespace moa::cluster {

struct ChannelOptions {
  // Send and receive limit of every message (see config::Limits).
  int64_t max_message_bytes = config::Limits().HopMessageBytes();
  // gRPC reconnects to a backend that went away with exponential backoff,
  // capped here, so a restarted backend is reached again within about this.
  absl::Duration max_reconnect_backoff = absl::Seconds(1);
  // A call waits this long for a connection to its backend (e.g. while it
  // restarts), within its deadline, before it fails UNAVAILABLE.
  absl::Duration connect_wait = absl::Seconds(2);
  // Null: plaintext (see lib/server/tls.h for mTLS).
  std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr;
};

// A channel to `target` ("host:port" or "dns:///name:port"); round_robin
// over every address the name resolves to, so proposer replicas behind a
// headless Service share the load.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options = {});

class ProposerBackend final : public GenerationBackend {
 public:
  // One channel per model of the config, to its `endpoint`.
  explicit ProposerBackend(const config::ClusterConfig& config, ChannelOptions options = {});

  // Ignores call.references (proposers take plain conversations). A model
  // not in the config ends at once with NOT_FOUND.
  std::shared_ptr<llm::CallHandle> Start(GenerationCall call,
                                         std::shared_ptr<GenerationObserver> observer) override;

  // The channel of a model, or nullptr.
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& model) const;

 private:
  struct Proposer {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::ProposerService::Stub> stub;
  };
  const ChannelOptions options_;
  std::map<std::string, Proposer, std::less<>> proposers_;  // By model name.
};

class AggregatorBackend final : public GenerationBackend {
 public:
  explicit AggregatorBackend(const std::string& endpoint, ChannelOptions options = {});

  std::shared_ptr<llm::CallHandle> Start(GenerationCall call,
                                         std::shared_ptr<GenerationObserver> observer) override;

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

 private:
  const ChannelOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AggregatorService::Stub> stub_;
};

}  // namespace moa::cluster

#endif  // MOA_LIB_CLUSTER_GRPC_BACKENDS_H_
