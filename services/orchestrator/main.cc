// moa-orchestrator: the front door; runs Mixture-of-Agents pipelines.
#include <unistd.h>

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "lib/base/circuit_breaker.h"
#include "lib/base/log.h"
#include "lib/cluster/breaking_backend.h"
#include "lib/cluster/grpc_backends.h"
#include "lib/cluster/hedging_backend.h"
#include "lib/config/cluster_config.h"
#include "lib/server/breaker_flags.h"
#include "lib/server/grpc_server.h"
#include "lib/server/help.h"
#include "lib/server/process.h"
#include "lib/server/tls.h"
#include "lib/store/redis_connection.h"
#include "lib/store/shared_rate_limit.h"
#include "lib/store/shared_records.h"
#include "lib/store/shared_spend.h"
#include "lib/store/shared_usage.h"
#include "lib/telemetry/circuit_metrics.h"
#include "lib/telemetry/exposer.h"
#include "lib/telemetry/hedge_metrics.h"
#include "services/orchestrator/admin_api.h"
#include "services/orchestrator/api_keys.h"
#include "services/orchestrator/key_directory.h"
#include "services/orchestrator/openai_http_server.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/readiness.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (gRPC and metrics).");
ABSL_FLAG(int, port, 50051, "gRPC port; 0 picks a free one.");
ABSL_FLAG(int, metrics_port, 9090, "Port of the Prometheus /metrics endpoint; 0 picks one.");
ABSL_FLAG(std::string, config, "", "Cluster config (required).");
ABSL_FLAG(int, max_inflight, 1000, "Concurrent MoA requests; more get RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, request_timeout, absl::Minutes(10),
          "Upper bound of every request's deadline (gRPC and HTTP).");
ABSL_FLAG(std::string, tls_cert_file, "",
          "Both front doors over TLS (gRPC and HTTPS): this certificate chain, PEM (with "
          "--tls_key_file; re-read when it changes, looked at every --tls_refresh_seconds). "
          "Empty: plaintext.");
ABSL_FLAG(std::string, tls_key_file, "", "Front doors over TLS: the private key, PEM.");
ABSL_FLAG(int, tls_refresh_seconds, 60, "How often the front doors' TLS files are looked at.");
ABSL_FLAG(int, http_port, 8080,
          "Port of the OpenAI-compatible HTTP API; 0 picks one, -1 turns it off.");
ABSL_FLAG(std::string, api_keys_file, "",
          "Client keys: a YAML map 'keys:' of named keys (SHA-256 and limits; 'moa keys add' "
          "makes them) or one secret per line; with it (or MOA_API_KEYS) every request needs "
          "'Authorization: Bearer KEY'.");
ABSL_FLAG(int64_t, max_body_bytes, 0,
          "HTTP: larger request bodies get 413; 0 takes limits.max_request_bytes of the config.");
ABSL_FLAG(int64_t, max_header_bytes, 16 << 10, "HTTP: larger request headers get 431.");
ABSL_FLAG(int64_t, max_connections, 10000, "HTTP: open connections; more get 503 and are closed.");
ABSL_FLAG(absl::Duration, read_timeout, absl::Seconds(10),
          "HTTP: time allowed to receive a request's headers and body.");
ABSL_FLAG(int, http_threads, 1, "HTTP: I/O threads.");
ABSL_FLAG(double, hedge_budget, 0.05,
          "Hedged calls: extra calls allowed per call (0.05: at most about 5% more); 0 turns "
          "hedging off.");
ABSL_FLAG(double, hedge_percentile, 0.95,
          "Hedged calls: a call with nothing after this percentile of its model's recent times to "
          "first byte gets a hedge.");
ABSL_FLAG(absl::Duration, hedge_after, absl::ZeroDuration(),
          "Hedged calls: a fixed delay instead of the percentile (0: the percentile).");
ABSL_FLAG(absl::Duration, drain_grace, absl::Seconds(30),
          "On SIGTERM, how long requests in flight may run before they are cancelled.");

int main(int argc, char** argv) {
  moa::server::ConfigureHelp();
  absl::SetProgramUsageMessage("Mixture-of-Agents orchestrator. See docs/pipelines.md.");
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
  if (absl::Status prompts = moa::config::LoadStepPrompts(absl::GetFlag(FLAGS_config), *config);
      !prompts.ok()) {
    moa::LogError(kName, prompts.message());
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
  std::vector<moa::telemetry::PipelineShape> shapes;
  for (const auto& p : config->pipelines) {
    shapes.push_back({p.name, moa::config::SlotNames(p.layers, p.samples), p.aggregator,
                      p.aggregator_fallbacks, moa::config::StepKindNames(p.steps),
                      moa::config::StepKindName(p.terminal)});
  }
  moa::telemetry::OrchestratorMetrics metrics(*registry, shapes);
  auto metrics_server = moa::telemetry::MetricsServer::Start(
      absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_metrics_port), registry);
  if (!metrics_server.ok()) {
    moa::LogError(kName, metrics_server.status().message());
    return 1;
  }
  const char* env_keys = std::getenv("MOA_API_KEYS");
  auto api_keys = moa::orchestrator::ApiKeys::Load(absl::GetFlag(FLAGS_api_keys_file),
                                                   env_keys ? env_keys : "");
  if (!api_keys.ok()) {
    moa::LogError(kName, api_keys.status().message());
    return 2;
  }
  const moa::config::Limits& limits = config->limits;
  auto channel_credentials = moa::server::ServiceChannelCredentials(config->tls);
  if (!channel_credentials.ok()) {
    moa::LogError(kName, channel_credentials.status().message());
    return 2;
  }
  const moa::cluster::ChannelOptions channel_options{.max_message_bytes = limits.HopMessageBytes(),
                                                     .credentials = *channel_credentials};
  moa::cluster::ProposerBackend proposers(*config, channel_options);
  moa::cluster::AggregatorBackend aggregator(config->aggregator_endpoint, channel_options);
  // A circuit breaker per model in front of each backend.
  std::vector<std::string> model_names;
  std::vector<std::pair<std::string, std::string>> breaker_labels;
  for (const auto& m : config->models) {
    model_names.push_back(m.name);
    breaker_labels.emplace_back("proposer", m.name);
    breaker_labels.emplace_back("aggregator", m.name);
  }
  moa::telemetry::CircuitMetrics circuit_metrics(*registry, breaker_labels);
  const moa::BreakerOptions breaker_options = moa::server::BreakerOptionsFromFlags();
  auto on_change = [&circuit_metrics](const char* backend) {
    return [&circuit_metrics, backend](const std::string& model, moa::CircuitBreaker::State s) {
      circuit_metrics.Set(backend, model, static_cast<int>(s));
      moa::LogWarning("moa-orchestrator", backend, " of model ", model, ": circuit ",
                      moa::BreakerStateName(s));
    };
  };
  moa::cluster::BreakingBackend breaking_proposers(&proposers, model_names, breaker_options,
                                                   moa::Clock::Real(), on_change("proposer"));
  moa::cluster::BreakingBackend breaking_aggregator(&aggregator, model_names, breaker_options,
                                                    moa::Clock::Real(), on_change("aggregator"));
  const bool breakers_on = moa::server::BreakersEnabled();
  moa::cluster::GenerationBackend* proposer_path =
      breakers_on ? static_cast<moa::cluster::GenerationBackend*>(&breaking_proposers) : &proposers;
  moa::cluster::GenerationBackend* aggregator_path =
      breakers_on ? static_cast<moa::cluster::GenerationBackend*>(&breaking_aggregator)
                  : &aggregator;
  // Hedged calls in front of the breakers: each attempt passes its breaker.
  moa::telemetry::HedgeMetrics hedge_metrics(*registry, breaker_labels);
  const moa::cluster::HedgeOptions hedge_options{
      .hedge_after = absl::GetFlag(FLAGS_hedge_after),
      .percentile = absl::GetFlag(FLAGS_hedge_percentile),
      .budget_ratio = absl::GetFlag(FLAGS_hedge_budget)};
  auto on_hedge = [&hedge_metrics](const char* backend) {
    return [&hedge_metrics, backend](const std::string& model, bool won) {
      hedge_metrics.Count(backend, model, won);
    };
  };
  moa::cluster::HedgingBackend hedging_proposers(proposer_path, hedge_options, moa::Clock::Real(),
                                                 on_hedge("proposer"));
  moa::cluster::HedgingBackend hedging_aggregator(aggregator_path, hedge_options,
                                                  moa::Clock::Real(), on_hedge("aggregator"));
  const bool hedging_on = absl::GetFlag(FLAGS_hedge_budget) > 0;
  moa::orchestrator::MoaBackends backends{
      hedging_on ? static_cast<moa::cluster::GenerationBackend*>(&hedging_proposers)
                 : proposer_path,
      hedging_on ? static_cast<moa::cluster::GenerationBackend*>(&hedging_aggregator)
                 : aggregator_path};
  moa::orchestrator::Admission admission(absl::GetFlag(FLAGS_max_inflight));
  moa::orchestrator::SharedRetryBudget retries;
  moa::orchestrator::FirstTokenBounds first_tokens;
  moa::orchestrator::Engine engine({.request_timeout = absl::GetFlag(FLAGS_request_timeout)},
                                   &*config,
                                   {.backends = backends,
                                    .metrics = &metrics,
                                    .retries = &retries,
                                    .first_tokens = &first_tokens},
                                   &admission);
  // The shared store of client limits, when the config names one.
  std::unique_ptr<moa::store::RedisConnection> store;
  std::unique_ptr<moa::store::SharedRateLimit> shared_requests;
  std::unique_ptr<moa::store::SharedSpend> shared_spend;
  std::unique_ptr<moa::store::SharedUsage> shared_usage;
  moa::orchestrator::SharedLimits shared;
  if (config->store) {
    moa::store::RedisOptions o;
    o.host = config->store->host;
    o.port = config->store->port;
    o.timeout = config->store->timeout;
    if (!config->store->password_env.empty()) {
      const char* password = std::getenv(config->store->password_env.c_str());
      if (password == nullptr || *password == '\0') {
        moa::LogError(kName,
                      absl::StrCat("store.password_env: the variable ", config->store->password_env,
                                   " is not set in the environment"));
        return 2;
      }
      o.password = password;
    }
    store = std::make_unique<moa::store::RedisConnection>(std::move(o));
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    const std::string replica = absl::StrCat(host, ":", getpid());
    shared_requests = std::make_unique<moa::store::SharedRateLimit>(store.get(), replica);
    shared_spend = std::make_unique<moa::store::SharedSpend>(store.get());
    shared_usage = std::make_unique<moa::store::SharedUsage>(store.get(), replica);
    shared = {.requests_per_minute = shared_requests.get(),
              .spend = shared_spend.get(),
              .usage = shared_usage.get(),
              .fail_closed = config->store->fail_closed};
  }
  moa::orchestrator::KeyLimiter limiter(moa::Clock::Real(), *registry, shared);
  // With a store, client keys live in its directory (seeded from the keys
  // file), and MOA_ADMIN_KEY opens the admin API that changes them.
  const char* env_admin = std::getenv("MOA_ADMIN_KEY");
  const std::string admin_key = env_admin != nullptr ? env_admin : "";
  if (!admin_key.empty()) {
    std::string refusal;
    if (!config->store) {
      refusal =
          "MOA_ADMIN_KEY needs a store: in the config (keys changed at runtime are kept "
          "there, for every replica)";
    } else if (admin_key.size() < 16) {
      refusal = "MOA_ADMIN_KEY must be at least 16 characters";
    } else if (api_keys->CheckAuthorization("Bearer " + admin_key)) {
      refusal = "MOA_ADMIN_KEY is also a client key; give the admin API a key of its own";
    }
    if (!refusal.empty()) {
      moa::LogError(kName, refusal);
      return 2;
    }
  }
  std::unique_ptr<moa::store::SharedRecords> key_records;
  std::unique_ptr<moa::orchestrator::KeyDirectory> key_directory;
  std::unique_ptr<moa::orchestrator::AdminApi> admin;
  if (config->store) {
    key_records = std::make_unique<moa::store::SharedRecords>(
        store.get(), moa::orchestrator::kKeysHash, moa::orchestrator::kMaxSharedKeys,
        moa::orchestrator::kMaxKeyRecordBytes);
    key_directory = std::make_unique<moa::orchestrator::KeyDirectory>(
        key_records.get(), &*api_keys, moa::Clock::Real(), api_keys->List());
    if (absl::Status s = key_directory->Refresh(); !s.ok()) {
      moa::LogWarning(kName, "cannot read the shared key directory yet (serving the keys file's ",
                      api_keys->size(), " keys until it answers): ", s.message());
    }
    key_directory->StartPolling();
    if (!admin_key.empty()) {
      admin = std::make_unique<moa::orchestrator::AdminApi>(key_directory.get(), shared_spend.get(),
                                                            admin_key, moa::Clock::Real());
    }
  }
  auto front_credentials = moa::server::FrontServerCredentials(
      absl::GetFlag(FLAGS_tls_cert_file), absl::GetFlag(FLAGS_tls_key_file),
      absl::GetFlag(FLAGS_tls_refresh_seconds));
  if (!front_credentials.ok()) {
    moa::LogError(kName, front_credentials.status().message());
    return 2;
  }
  moa::orchestrator::OrchestratorService service(&engine, &*api_keys, &limiter);

  auto server = moa::server::GrpcServer::Start({.host = absl::GetFlag(FLAGS_host),
                                                .port = absl::GetFlag(FLAGS_port),
                                                .name = kName,
                                                .max_receive_bytes = limits.FrontReceiveBytes(),
                                                .max_send_bytes = limits.HopMessageBytes(),
                                                .credentials = *front_credentials},
                                               {&service});
  if (!server.ok()) {
    moa::LogError(kName, server.status().message());
    return 1;
  }
  moa::server::GrpcServer* grpc_server = server->get();
  grpc_server->SetServing(false);  // Until the first readiness check passes.

  // Ready when every layer of the default pipeline has a reachable proposer
  // and the aggregator is reachable; gRPC health says the same as /readyz.
  std::vector<std::vector<std::shared_ptr<grpc::Channel>>> layer_channels;
  for (const auto& layer : config->FindPipeline(config->default_pipeline)->layers) {
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    for (const auto& m : layer) channels.push_back(proposers.ChannelFor(m));
    layer_channels.push_back(std::move(channels));
  }
  moa::orchestrator::Readiness readiness(
      std::move(layer_channels), aggregator.channel(), absl::Seconds(1),
      [grpc_server](bool ready) { grpc_server->SetServing(ready); });

  std::unique_ptr<moa::orchestrator::OpenAiHttpServer> http_server;
  if (absl::GetFlag(FLAGS_http_port) >= 0) {
    int64_t max_body = absl::GetFlag(FLAGS_max_body_bytes);
    if (max_body <= 0) max_body = limits.max_request_bytes;
    auto started = moa::orchestrator::OpenAiHttpServer::Start(
        {.host = absl::GetFlag(FLAGS_host),
         .port = absl::GetFlag(FLAGS_http_port),
         .max_body_bytes = static_cast<size_t>(max_body),
         .max_header_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_header_bytes)),
         .max_connections = static_cast<size_t>(absl::GetFlag(FLAGS_max_connections)),
         .read_timeout = absl::GetFlag(FLAGS_read_timeout),
         .threads = absl::GetFlag(FLAGS_http_threads),
         .tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file),
         .tls_key_file = absl::GetFlag(FLAGS_tls_key_file),
         .tls_refresh = absl::Seconds(absl::GetFlag(FLAGS_tls_refresh_seconds))},
        {.engine = &engine,
         .api_keys = &*api_keys,
         .readiness = &readiness,
         .limiter = &limiter,
         .admin = admin.get(),
         .model_status =
             [&] {
               return moa::orchestrator::ModelStatuses(model_names,
                                                       breakers_on ? &breaking_proposers : nullptr,
                                                       breakers_on ? &breaking_aggregator : nullptr,
                                                       hedging_on ? &hedging_proposers : nullptr,
                                                       hedging_on ? &hedging_aggregator : nullptr);
             },
         .grpc_port = grpc_server->port()});
    if (!started.ok()) {
      moa::LogError(kName, started.status().message());
      return 1;
    }
    http_server = *std::move(started);
  }
  moa::LogInfo(kName, "serving gRPC on port ", grpc_server->port(), ", metrics on port ",
               (*metrics_server)->port(), ", HTTP on port ", http_server ? http_server->port() : -1,
               ", ", config->pipelines.size(), " pipelines (default ", config->default_pipeline,
               "), API keys ",
               api_keys->enabled() ? absl::StrCat("required (", api_keys->size(), ")") : "off",
               key_directory ? " from the shared store" : "", admin ? ", admin API on" : "");
  int sig = moa::server::WaitForTerminationSignal();
  const absl::Time drain_start = absl::Now();
  const absl::Duration grace = absl::GetFlag(FLAGS_drain_grace);
  moa::LogInfo(kName, "signal ", sig, " received; draining for up to ",
               absl::FormatDuration(grace));
  // One moment for both servers: health and /readyz turn unready, both refuse
  // new requests, and the requests in flight share one grace.
  grpc_server->BeginDrain();
  admission.BeginDrain();
  if (http_server) http_server->StopAccepting();
  int cancelled = admission.FinishDrain(drain_start + grace, absl::Milliseconds(500));
  // Every MoA request has ended; give their last bytes a moment to leave.
  grpc_server->Drain(absl::Milliseconds(200));
  if (http_server) {
    absl::Time end = absl::Now() + absl::Milliseconds(250);
    while (http_server->connections() > 0 && absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    http_server.reset();
  }
  moa::LogInfo(kName, "stopped after ", absl::FormatDuration(absl::Now() - drain_start),
               cancelled > 0 ? absl::StrCat(", ", cancelled, " requests cancelled at the grace")
                             : std::string());
  return 0;
}
