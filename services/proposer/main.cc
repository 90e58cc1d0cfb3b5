// moa-proposer: serves one upstream model over gRPC (ProposerService).
#include <cstdlib>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "lib/base/circuit_breaker.h"
#include "lib/base/log.h"
#include "lib/base/redact.h"
#include "lib/llm/breaking_client.h"
#include "lib/server/breaker_flags.h"
#include "lib/server/grpc_server.h"
#include "lib/server/help.h"
#include "lib/server/process.h"
#include "lib/server/tls.h"
#include "lib/telemetry/circuit_metrics.h"
#include "lib/telemetry/exposer.h"
#include "services/proposer/proposer_setup.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (gRPC and metrics).");
ABSL_FLAG(int, port, 50051, "gRPC port; 0 picks a free one.");
ABSL_FLAG(int, metrics_port, 9090, "Port of the Prometheus /metrics endpoint; 0 picks one.");
ABSL_FLAG(std::string, model, "", "Name of the wrapped model in the cluster (required).");
ABSL_FLAG(std::string, config, "", "Cluster config; the upstream is read from models.<model>.");
ABSL_FLAG(std::string, upstream_url, "",
          "Base URL of the upstream API (OpenAI-compatible: ending in /v1).");
ABSL_FLAG(std::string, upstream_api, "openai",
          "The API the upstream speaks without --config: openai, anthropic or gemini (azure "
          "needs its api_version: use --config).");
ABSL_FLAG(std::string, upstream_model, "", "Model id sent upstream (default: --model).");
ABSL_FLAG(std::string, api_key_env, "", "Environment variable that holds the API key.");
ABSL_FLAG(std::string, upstream_ca_file, "",
          "PEM bundle of the CAs an https upstream's certificate must chain to (a private CA); "
          "empty: the system's. With --config: models.<model>.upstream.ca_file.");
ABSL_FLAG(int, max_inflight, 512, "Concurrent calls; more get RESOURCE_EXHAUSTED at once.");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(10), "Upstream connect timeout.");
ABSL_FLAG(absl::Duration, first_token_timeout, absl::Seconds(60),
          "Longest wait for the first token of an attempt.");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(30),
          "Longest silence between tokens once streaming.");
ABSL_FLAG(absl::Duration, request_timeout, absl::Minutes(10),
          "Upper bound of one call, retries included (the caller's deadline may be sooner).");
ABSL_FLAG(int, max_attempts, 3, "Upstream attempts before the first token (1 = no retries).");
ABSL_FLAG(std::string, continuation, "prefill",
          "How the upstream is asked to continue a cut answer: prefill (a trailing assistant "
          "message), vllm (prefill plus vLLM's continue_final_message) or instruction (portable).");
ABSL_FLAG(std::string, tls_ca_file, "",
          "mTLS without --config: CA of the callers' certificates (with --tls_cert_file and "
          "--tls_key_file; replaces the config's tls:).");
ABSL_FLAG(std::string, tls_cert_file, "", "mTLS without --config: this server's certificate.");
ABSL_FLAG(std::string, tls_key_file, "", "mTLS without --config: this server's private key.");
ABSL_FLAG(int, tls_refresh_seconds, 60, "mTLS: how often the files are re-read (rotation).");
ABSL_FLAG(absl::Duration, drain_grace, absl::Seconds(20),
          "On SIGTERM, how long streams in flight may run before they are cancelled.");

int main(int argc, char** argv) {
  moa::server::ConfigureHelp();
  absl::SetProgramUsageMessage("Serves one upstream LLM over gRPC. See docs/providers.md.");
  absl::ParseCommandLine(argc, argv);
  moa::server::PrepareProcess();
  constexpr char kName[] = "moa-proposer";

  moa::proposer::ProposerFlags flags;
  flags.model = absl::GetFlag(FLAGS_model);
  flags.config_path = absl::GetFlag(FLAGS_config);
  flags.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  flags.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  flags.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  flags.tls_refresh_seconds = absl::GetFlag(FLAGS_tls_refresh_seconds);
  flags.upstream_url = absl::GetFlag(FLAGS_upstream_url);
  flags.upstream_model = absl::GetFlag(FLAGS_upstream_model);
  flags.upstream_api = absl::GetFlag(FLAGS_upstream_api);
  flags.api_key_env = absl::GetFlag(FLAGS_api_key_env);
  flags.upstream_ca_file = absl::GetFlag(FLAGS_upstream_ca_file);
  flags.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  flags.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  flags.first_token_timeout = absl::GetFlag(FLAGS_first_token_timeout);
  flags.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  flags.request_timeout = absl::GetFlag(FLAGS_request_timeout);
  flags.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  flags.continuation = absl::GetFlag(FLAGS_continuation);
  auto setup = moa::proposer::ResolveProposerSetup(flags);
  if (!setup.ok()) {
    moa::LogError(kName, setup.status().message());
    return 2;
  }

  auto registry = std::make_shared<prometheus::Registry>();
  moa::telemetry::UpstreamMetrics metrics(*registry, setup->service.model);
  auto metrics_server = moa::telemetry::MetricsServer::Start(
      absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_metrics_port), registry);
  if (!metrics_server.ok()) {
    moa::LogError(kName, metrics_server.status().message());
    return 1;
  }
  std::string upstream_desc =
      absl::StrCat(moa::RedactUrl(setup->upstream.base_url), " model ", setup->upstream.model);
  auto client = moa::llm::CurlLlmClient::Create(setup->upstream);
  if (!client.ok()) {
    moa::LogError(kName, client.status().message());
    return 2;
  }
  // The breaker sits between the service and the upstream client.
  const std::string& model = setup->service.model;
  moa::telemetry::CircuitMetrics circuit_metrics(*registry, {{"upstream", model}});
  moa::CircuitBreaker breaker(
      "model " + model, moa::server::BreakerOptionsFromFlags(), moa::Clock::Real(),
      [&circuit_metrics, model](moa::CircuitBreaker::State s) {
        circuit_metrics.Set("upstream", model, static_cast<int>(s));
        moa::LogWarning("moa-proposer", "model ", model, ": circuit ", moa::BreakerStateName(s));
      });
  moa::llm::BreakingClient breaking_client(client->get(), &breaker);
  moa::llm::LlmClient* upstream = client->get();
  if (moa::server::BreakersEnabled()) upstream = &breaking_client;
  moa::proposer::ProposerService service(setup->service, upstream, &metrics);
  auto credentials = moa::server::ServiceServerCredentials(setup->tls);
  if (!credentials.ok()) {
    moa::LogError(kName, credentials.status().message());
    return 2;
  }
  auto server =
      moa::server::GrpcServer::Start({.host = absl::GetFlag(FLAGS_host),
                                      .port = absl::GetFlag(FLAGS_port),
                                      .name = kName,
                                      .max_receive_bytes = setup->limits.HopMessageBytes(),
                                      .max_send_bytes = setup->limits.HopMessageBytes(),
                                      .credentials = *credentials},
                                     {&service});
  if (!server.ok()) {
    moa::LogError(kName, server.status().message());
    return 1;
  }
  moa::LogInfo(kName, "model ", setup->service.model, " serving gRPC on port ", (*server)->port(),
               ", metrics on port ", (*metrics_server)->port(), ", upstream ", upstream_desc,
               ", max_inflight ", setup->service.max_inflight);

  int sig = moa::server::WaitForTerminationSignal();
  moa::LogInfo(kName, "signal ", sig, " received");
  (*server)->Drain(absl::GetFlag(FLAGS_drain_grace));
  client->reset();  // Ends any upstream transfer still open.
  moa::LogInfo(kName, "stopped");
  return 0;
}
