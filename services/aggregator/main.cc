// moa-aggregator: synthesizes earlier answers by calling a model's proposer.
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "lib/base/log.h"
#include "lib/cluster/grpc_backends.h"
#include "lib/config/cluster_config.h"
#include "lib/server/grpc_server.h"
#include "lib/server/help.h"
#include "lib/server/process.h"
#include "lib/server/tls.h"
#include "lib/synthesis/synthesis.h"
#include "lib/telemetry/exposer.h"
#include "services/aggregator/aggregator_service.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (gRPC and metrics).");
ABSL_FLAG(int, port, 50070, "gRPC port; 0 picks a free one.");
ABSL_FLAG(int, metrics_port, 9090, "Port of the Prometheus /metrics endpoint; 0 picks one.");
ABSL_FLAG(std::string, config, "", "Cluster config (required): the models and their proposers.");
ABSL_FLAG(std::string, synthesis_prompt_file, "",
          "File whose text replaces the default synthesis instruction.");
ABSL_FLAG(absl::Duration, drain_grace, absl::Seconds(20),
          "On SIGTERM, how long streams in flight may run before they are cancelled.");

int main(int argc, char** argv) {
  moa::server::ConfigureHelp();
  absl::SetProgramUsageMessage("Mixture-of-Agents aggregator. See docs/pipelines.md.");
  absl::ParseCommandLine(argc, argv);
  moa::server::PrepareProcess();
  constexpr char kName[] = "moa-aggregator";

  if (absl::GetFlag(FLAGS_config).empty()) {
    moa::LogError(kName, "--config is required");
    return 2;
  }
  auto config = moa::config::LoadClusterConfig(absl::GetFlag(FLAGS_config));
  if (!config.ok()) {
    moa::LogError(kName, config.status().message());
    return 2;
  }
  moa::aggregator::AggregatorOptions options;
  options.instruction = moa::synthesis::DefaultInstruction();
  if (std::string path = absl::GetFlag(FLAGS_synthesis_prompt_file); !path.empty()) {
    auto text = moa::synthesis::LoadInstruction(path);
    if (!text.ok()) {
      moa::LogError(kName, text.status().message());
      return 2;
    }
    options.instruction = *text;
  }
  std::vector<std::string> models;
  for (const auto& m : config->models) {
    options.models.insert(m.name);
    models.push_back(m.name);
  }

  auto registry = std::make_shared<prometheus::Registry>();
  moa::telemetry::CallMetrics metrics(*registry, "moa_aggregator",
                                      "Aggregate calls (synthesis by a model)", models);
  auto metrics_server = moa::telemetry::MetricsServer::Start(
      absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_metrics_port), registry);
  if (!metrics_server.ok()) {
    moa::LogError(kName, metrics_server.status().message());
    return 1;
  }
  options.limits = config->limits;
  auto server_credentials = moa::server::ServiceServerCredentials(config->tls);
  auto channel_credentials = moa::server::ServiceChannelCredentials(config->tls);
  for (const absl::Status& s : {server_credentials.status(), channel_credentials.status()}) {
    if (!s.ok()) {
      moa::LogError(kName, s.message());
      return 2;
    }
  }
  moa::cluster::ProposerBackend proposers(
      *config,
      {.max_message_bytes = config->limits.HopMessageBytes(), .credentials = *channel_credentials});
  moa::aggregator::AggregatorService service(options, &proposers, &metrics);
  auto server =
      moa::server::GrpcServer::Start({.host = absl::GetFlag(FLAGS_host),
                                      .port = absl::GetFlag(FLAGS_port),
                                      .name = kName,
                                      .max_receive_bytes = config->limits.HopMessageBytes(),
                                      .max_send_bytes = config->limits.HopMessageBytes(),
                                      .credentials = *server_credentials},
                                     {&service});
  if (!server.ok()) {
    moa::LogError(kName, server.status().message());
    return 1;
  }
  moa::LogInfo(kName, "serving gRPC on port ", (*server)->port(), ", metrics on port ",
               (*metrics_server)->port(), ", ", models.size(), " models");
  int sig = moa::server::WaitForTerminationSignal();
  moa::LogInfo(kName, "signal ", sig, " received");
  (*server)->Drain(absl::GetFlag(FLAGS_drain_grace));
  moa::LogInfo(kName, "stopped");
  return 0;
}
