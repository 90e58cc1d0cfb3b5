// A whole moa-cluster as real processes on loopback ports, for end-to-end
// tests: the simulator, one proposer per model, the aggregator and the
// orchestrator, with a generated cluster config.
#ifndef MOA_TESTS_SUPPORT_LOCAL_CLUSTER_H_
#define MOA_TESTS_SUPPORT_LOCAL_CLUSTER_H_

#include <grpcpp/security/credentials.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moa/v1/orchestrator.grpc.pb.h"
#include "tests/support/test_support.h"

namespace moa::testing {

struct ClusterSpec {
  std::vector<std::string> models;  // Each gets a proposer; upstream model id = name.
  std::string pipelines_yaml;       // The `pipelines:` section (and default_pipeline).
  std::string sim_profiles_yaml;    // The simulator's profiles file.
  double sim_latency_scale = 1.0;
  std::vector<std::string> proposer_flags = {"--max_attempts=1"};
  std::vector<std::string> orchestrator_flags;
  std::vector<std::string> aggregator_flags;
  std::string extra_config_yaml;  // Appended to the cluster config, e.g. a `limits:` section.
  // How the test reaches the orchestrator's gRPC port (null: plaintext).
  std::shared_ptr<grpc::ChannelCredentials> front_credentials;
  // More keys of a model's entry, e.g. {"a", "price: {input_per_million: 1}"}.
  std::map<std::string, std::string> model_yaml;
  // The API a model's proposer speaks to the simulator (default openai):
  // anthropic or gemini (the simulator serves each at its own paths).
  std::map<std::string, std::string> model_api;
  // Replicas of a model's proposer (default 1) and of the aggregator: each
  // its own process and port, one gRPC target (`ipv4:` with every address,
  // balanced round-robin).
  std::map<std::string, int> proposer_replicas;
  int aggregator_replicas = 1;
  // Each model's proposers talk to a simulator process of their own: one
  // simulator holds at most 16,000 connections (20,000 open files per
  // process), and one destination port at most ~28,000 from 127.0.0.1.
  bool simulator_per_model = false;
  // A command put before one service's binary, e.g. {"orchestrator",
  // {"valgrind", "--tool=callgrind"}} (names: orchestrator, aggregator,
  // proposer-<model>); such a service gets a minute to start.
  std::map<std::string, std::vector<std::string>> wrap;
};

// A small cluster for e2e tests: models a, b, z and slow on the simulator;
// pipeline `moa` (default) is [[a, b]] then z, pipeline `slow` is [[slow]]
// then z, where slow takes a minute to its first token. The HTTP server is on
// (a free port); `orchestrator_flags` are added.
ClusterSpec SmallClusterSpec(const std::vector<std::string>& orchestrator_flags = {});

class LocalCluster {
 public:
  // Starts everything and waits until each service is healthy; on failure
  // `error()` says which process and shows its log.
  explicit LocalCluster(const ClusterSpec& spec);
  ~LocalCluster();

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  v1::OrchestratorService::Stub& stub() { return *stub_; }
  std::string orchestrator_address() const;
  int orchestrator_metrics_port() const { return orchestrator_metrics_port_; }
  // The OpenAI-compatible HTTP port (when started with --http_port).
  int orchestrator_http_port() const { return orchestrator_http_port_; }
  int sim_port() const { return sim_port_; }
  // The gRPC port of a service by its Pids() name ("proposer-a" is the
  // first replica, "aggregator" the first, "orchestrator"); 0 if none.
  int grpc_port(const std::string& name) const {
    auto it = grpc_ports_.find(name);
    return it == grpc_ports_.end() ? 0 : it->second;
  }
  const std::string& config_path() const { return config_path_; }
  // The orchestrator's process, e.g. to signal it.
  Process& orchestrator_process() { return *orchestrator_; }
  // The (first) proposer process of a model, e.g. to read its log.
  Process& proposer_process(const std::string& model) { return *proposers_.at(model); }

  // Every process of the cluster by name ("upstream-sim", "proposer-a",
  // "aggregator", "orchestrator"), e.g. to read their memory use.
  std::vector<std::pair<std::string, pid_t>> Pids() const;

  // SIGKILLs replica `replica` of a model's proposer ("a") or of the
  // aggregator ("aggregator"). False when there is no such process.
  bool KillReplica(const std::string& name, int replica);

  // SIGKILLs every proposer and the aggregator, then starts them again on
  // the same ports and waits until each serves; returns when they all do
  // (false, with error() set, when one does not).
  bool RestartBackends();

  // The simulator's request log (entries with id > since).
  nlohmann::json SimRequests(int64_t since = 0);
  // The simulator's counts by outcome (GET /sim/stats).
  nlohmann::json SimStats();
  // Highest request id so far, to look only at what a test caused.
  int64_t LastSimRequestId();

 private:
  std::string dir_;
  std::string config_path_;
  std::unique_ptr<Process> sim_;
  std::map<std::string, std::unique_ptr<Process>> model_sims_;  // simulator_per_model.
  std::vector<int> model_sim_ports_;
  // By "model" for the first replica, "model#r" for replica r > 0.
  std::map<std::string, std::unique_ptr<Process>> proposers_;
  std::map<std::string, std::vector<std::string>> proposer_argv_;  // With the bound port.
  std::vector<std::unique_ptr<Process>> aggregators_;
  std::vector<std::vector<std::string>> aggregator_argv_;
  std::unique_ptr<Process> orchestrator_;
  int sim_port_ = 0;
  std::map<std::string, int> grpc_ports_;
  int orchestrator_port_ = 0;
  int orchestrator_metrics_port_ = 0;
  int orchestrator_http_port_ = 0;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
  std::string error_;
};

// Waits for "<prefix> <number>" in a process's output; 0 when it never comes.
int WaitForLoggedPort(Process& p, const std::string& prefix,
                      absl::Duration timeout = absl::Seconds(10));

}  // namespace moa::testing

#endif  // MOA_TESTS_SUPPORT_LOCAL_CLUSTER_H_
