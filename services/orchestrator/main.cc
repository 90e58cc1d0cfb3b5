// moa-orchestrator: the front door; runs Mixture-of-Agents pipelines.
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "lib/base/log.h"
#include "lib/cluster/grpc_backends.h"
#include "lib/config/cluster_config.h"
#include "lib/server/grpc_server.h"
#include "lib/server/process.h"
#include "lib/telemetry/exposer.h"
#include "services/orchestrator/orchestrator_service.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (gRPC and metrics).");
ABSL_FLAG(int, port, 50051, "gRPC port; 0 picks a free one.");
ABSL_FLAG(int, metrics_port, 9090, "Port of the Prometheus /metrics endpoint; 0 picks one.");
ABSL_FLAG(std::string, config, "", "Cluster config (required).");
ABSL_FLAG(int, max_inflight, 1000, "Concurrent MoA requests; more get RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, default_timeout, absl::Minutes(10),
          "Deadline of requests that come without one.");
ABSL_FLAG(absl::Duration, drain_grace, absl::Seconds(30),
          "On SIGTERM, how long requests in flight may run before they are cancelled.");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Mixture-of-Agents orchestrator. See README.md.");
  absl::ParseCommandLine(argc, argv);
  moa::server::PrepareProcess();
  constexpr char kName[] = "moa-orchestrator";

  if (absl::GetFlag(FLAGS_config).empty()) {
    moa::LogError(kName, "--config is required");
    return 2;
  }
  auto config = moa::config::LoadClusterConfig(absl::GetFlag(FLAGS_config));
  if (!config.ok()) {
    moa::LogError(kName, config.status().message());
    return 2;
  }
  if (config->aggregator_endpoint.empty()) {
    moa::LogError(kName, absl::GetFlag(FLAGS_config), ": aggregator.endpoint is required");
    return 2;
  }
  if (config->pipelines.empty()) {
    moa::LogError(kName, absl::GetFlag(FLAGS_config), ": at least one pipeline is required");
    return 2;
  }
  if (absl::GetFlag(FLAGS_max_inflight) < 1) {
    moa::LogError(kName, "--max_inflight must be >= 1");
    return 2;
  }

  auto registry = std::make_shared<prometheus::Registry>();
  std::vector<moa::telemetry::OrchestratorMetrics::PipelineShape> shapes;
  for (const auto& p : config->pipelines) shapes.push_back({p.name, p.layers, p.aggregator});
  moa::telemetry::OrchestratorMetrics metrics(*registry, shapes);
  auto metrics_server = moa::telemetry::MetricsServer::Start(
      absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_metrics_port), registry);
  if (!metrics_server.ok()) {
    moa::LogError(kName, metrics_server.status().message());
    return 1;
  }
  moa::cluster::ProposerBackend proposers(*config);
  moa::cluster::AggregatorBackend aggregator(config->aggregator_endpoint);
  moa::orchestrator::Admission admission(absl::GetFlag(FLAGS_max_inflight));
  moa::orchestrator::OrchestratorService service(
      {.max_inflight = absl::GetFlag(FLAGS_max_inflight),
       .default_timeout = absl::GetFlag(FLAGS_default_timeout)},
      &*config, {&proposers, &aggregator}, &metrics, &admission);
  auto server = moa::server::GrpcServer::Start(
      {.host = absl::GetFlag(FLAGS_host), .port = absl::GetFlag(FLAGS_port), .name = kName},
      {&service});
  if (!server.ok()) {
    moa::LogError(kName, server.status().message());
    return 1;
  }
  moa::LogInfo(kName, "serving gRPC on port ", (*server)->port(), ", metrics on port ",
               (*metrics_server)->port(), ", ", config->pipelines.size(),
               " pipelines (default ", config->default_pipeline, ")");
  int sig = moa::server::WaitForTerminationSignal();
  moa::LogInfo(kName, "signal ", sig, " received");
  (*server)->Drain(absl::GetFlag(FLAGS_drain_grace));
  moa::LogInfo(kName, "stopped");
  return 0;
}
