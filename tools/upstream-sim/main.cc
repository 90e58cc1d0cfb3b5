// moa-upstream-sim: an OpenAI-compatible simulator of upstream LLM APIs for
// demos, tests and load tests. It is a simulator, not a model.
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "lib/base/log.h"
#include "lib/server/help.h"
#include "lib/server/process.h"
#include "tools/upstream-sim/sim_server.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 8000, "HTTP port; 0 picks a free one.");
ABSL_FLAG(std::string, profiles, "", "YAML file of per-model latency and fault profiles.");
ABSL_FLAG(double, latency_scale, 1.0, "Multiplies every delay; 0 = as fast as possible.");
ABSL_FLAG(uint64_t, seed, 1, "Seed for latency sampling and fault injection.");
ABSL_FLAG(int, threads, 1, "I/O threads.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "Serve HTTPS with this certificate (PEM, with --tls_key_file). Empty: plain HTTP.");
ABSL_FLAG(std::string, tls_key_file, "", "HTTPS: the private key (PEM).");
ABSL_FLAG(std::string, api_key_env, "",
          "When set, requests must carry 'Authorization: Bearer $VAR' or get 401.");

int main(int argc, char** argv) {
  moa::server::ConfigureHelp();
  absl::SetProgramUsageMessage("OpenAI-compatible upstream simulator. See docs/simulator.md.");
  absl::ParseCommandLine(argc, argv);
  moa::server::PrepareProcess();
  constexpr char kName[] = "moa-upstream-sim";

  moa::sim::SimOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.latency_scale = absl::GetFlag(FLAGS_latency_scale);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  if (std::string path = absl::GetFlag(FLAGS_profiles); !path.empty()) {
    auto profiles = moa::sim::LoadProfiles(path);
    if (!profiles.ok()) {
      moa::LogError(kName, profiles.status().message());
      return 2;
    }
    options.profiles = *std::move(profiles);
  }
  if (std::string env = absl::GetFlag(FLAGS_api_key_env); !env.empty()) {
    const char* key = std::getenv(env.c_str());
    if (key == nullptr || *key == '\0') {
      moa::LogError(kName, "--api_key_env names ", env, ", which is not set");
      return 2;
    }
    options.api_key = key;
  }
  auto server = moa::sim::SimServer::Start(std::move(options));
  if (!server.ok()) {
    moa::LogError(kName, server.status().message());
    return 1;
  }
  moa::LogInfo(kName, "serving the OpenAI-compatible simulator on port ", (*server)->port(),
               " (latency scale ", absl::GetFlag(FLAGS_latency_scale), ")");
  moa::server::WaitForTerminationSignal();
  server->reset();
  moa::LogInfo(kName, "stopped");
  return 0;
}
