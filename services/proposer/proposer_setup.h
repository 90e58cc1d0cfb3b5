// Turns moa-proposer's flags (or its entry in the cluster config) into the
// options of its parts, so main.cc only wires them.
#ifndef MOA_SERVICES_PROPOSER_PROPOSER_SETUP_H_
#define MOA_SERVICES_PROPOSER_PROPOSER_SETUP_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/config/cluster_config.h"
#include "lib/llm/curl_llm_client.h"
#include "services/proposer/proposer_service.h"

namespace moa::proposer {

struct ProposerFlags {
  std::string model;
  std::string config_path;  // When set, the upstream comes from models.<model>.upstream.
  std::string upstream_url;
  std::string upstream_model;
  std::string upstream_api = "openai";  // Without --config: openai, anthropic or gemini.
  std::string api_key_env;
  std::string upstream_ca_file;  // CA bundle of an https upstream (without --config).
  int max_inflight = 512;
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration first_token_timeout = absl::Seconds(60);
  absl::Duration idle_timeout = absl::Seconds(30);
  absl::Duration request_timeout = absl::Minutes(10);
  int max_attempts = 3;
  std::string continuation = "prefill";  // prefill, vllm or instruction.
  // mTLS of its server without a --config (--tls_ca_file and friends): all
  // three files or none; they replace the config's `tls:`.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  int tls_refresh_seconds = 60;
};

struct ProposerSetup {
  ProposerOptions service;
  llm::UpstreamOptions upstream;
  // The config's limits (defaults without --config): the answer cap and the
  // gRPC message limits.
  config::Limits limits;
  std::optional<config::TlsConfig> tls;  // The config's `tls:` (mTLS to its server).
};

// INVALID_ARGUMENT naming the flag or config field when something is missing
// or contradictory; FAILED_PRECONDITION when the key's env var is unset. The
// key itself never appears in a message.
absl::StatusOr<ProposerSetup> ResolveProposerSetup(const ProposerFlags& flags);

}  // namespace moa::proposer

#endif  // MOA_SERVICES_PROPOSER_PROPOSER_SETUP_H_
