#include "services/proposer/proposer_setup.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "lib/base/status_macros.h"
#include "lib/config/cluster_config.h"

namespace moa::proposer {

absl::StatusOr<ProposerSetup> ResolveProposerSetup(const ProposerFlags& flags) {
  if (flags.model.empty()) return absl::InvalidArgumentError("--model is required");
  if (flags.max_inflight < 1) return absl::InvalidArgumentError("--max_inflight must be >= 1");
  ProposerSetup setup;
  setup.service.model = flags.model;
  std::string continuation = flags.continuation;
  setup.service.max_inflight = flags.max_inflight;
  llm::UpstreamOptions& up = setup.upstream;
  up.connect_timeout = flags.connect_timeout;
  up.first_token_timeout = flags.first_token_timeout;
  up.idle_timeout = flags.idle_timeout;
  up.total_timeout = flags.request_timeout;
  up.retry.max_attempts = flags.max_attempts;
  std::string api_key_env = flags.api_key_env;

  if (!flags.config_path.empty()) {
    if (!flags.upstream_url.empty() || !flags.upstream_model.empty() ||
        !flags.api_key_env.empty() || !flags.upstream_ca_file.empty() ||
        flags.upstream_api != "openai") {
      return absl::InvalidArgumentError(
          "--config reads the upstream from the config file; do not also give --upstream_url, "
          "--upstream_model, --upstream_api, --upstream_ca_file or --api_key_env");
    }
    MOA_ASSIGN_OR_RETURN(config::ClusterConfig cfg, config::LoadClusterConfig(flags.config_path));
    const config::ModelConfig* model = cfg.FindModel(flags.model);
    if (model == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(flags.config_path, ": --model ", flags.model,
                                                     " is not defined under models"));
    }
    if (!model->upstream) {
      return absl::InvalidArgumentError(absl::StrCat(flags.config_path, ": models.", flags.model,
                                                     ".upstream is required to run its proposer"));
    }
    setup.limits = cfg.limits;
    setup.tls = cfg.tls;
    const config::UpstreamConfig& u = *model->upstream;
    up.base_url = u.base_url;
    up.model = u.model;
    up.api = llm::UpstreamApiFromName(u.api).value_or(llm::UpstreamApi::kOpenAi);
    up.api_version = u.api_version;
    up.reasoning.effort = u.reasoning_effort;
    up.reasoning.budget_tokens = u.reasoning_budget_tokens;
    up.reasoning.include_text = u.reasoning_include_text;
    // Gemini cannot continue a model turn: it is asked in words unless the
    // config says otherwise (and the config refuses prefill for it).
    // Anthropic refuses a prefill while thinking is on.
    if (up.api == llm::UpstreamApi::kGemini ||
        (up.api == llm::UpstreamApi::kAnthropic && up.reasoning.budget_tokens)) {
      continuation = "instruction";
    }
    api_key_env = u.api_key_env;
    up.ca_file = u.ca_file;
    if (u.connect_timeout) up.connect_timeout = *u.connect_timeout;
    if (u.first_token_timeout) up.first_token_timeout = *u.first_token_timeout;
    if (u.idle_timeout) up.idle_timeout = *u.idle_timeout;
    if (u.total_timeout) up.total_timeout = *u.total_timeout;
    if (u.max_attempts) up.retry.max_attempts = *u.max_attempts;
    if (u.max_inflight) setup.service.max_inflight = *u.max_inflight;
    if (!u.continuation.empty()) continuation = u.continuation;
  } else {
    if (flags.upstream_url.empty()) {
      return absl::InvalidArgumentError("--upstream_url (or --config) is required");
    }
    up.base_url = flags.upstream_url;
    up.model = flags.upstream_model.empty() ? flags.model : flags.upstream_model;
    std::optional<llm::UpstreamApi> api = llm::UpstreamApiFromName(flags.upstream_api);
    if (!api || *api == llm::UpstreamApi::kAzure) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--upstream_api must be openai, anthropic or gemini (azure: use --config), got '",
          flags.upstream_api, "'"));
    }
    up.api = *api;
    if (up.api == llm::UpstreamApi::kGemini) continuation = "instruction";
    up.ca_file = flags.upstream_ca_file;
  }
  if (!up.ca_file.empty() && !std::ifstream(up.ca_file).good()) {
    return absl::NotFoundError(absl::StrCat("cannot read the upstream's CA file ", up.ca_file));
  }
  if (continuation == "prefill") {
    setup.service.continuation = llm::Continuation::kPrefill;
  } else if (continuation == "vllm") {
    setup.service.continuation = llm::Continuation::kVllm;
  } else if (continuation == "instruction") {
    setup.service.continuation = llm::Continuation::kInstruction;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "continuation must be prefill, vllm or instruction, got '", continuation, "'"));
  }

  setup.service.max_answer_bytes = setup.limits.max_answer_bytes;
  setup.service.max_messages = setup.limits.max_messages;
  if (!api_key_env.empty()) {
    const char* key = std::getenv(api_key_env.c_str());
    if (key == nullptr || *key == '\0') {
      return absl::FailedPreconditionError(
          absl::StrCat("the API key variable ", api_key_env, " is not set in the environment"));
    }
    up.api_key = key;
  }
  const int tls_files =
      !flags.tls_ca_file.empty() + !flags.tls_cert_file.empty() + !flags.tls_key_file.empty();
  if (tls_files != 0 && tls_files != 3) {
    return absl::InvalidArgumentError(
        "--tls_ca_file, --tls_cert_file and --tls_key_file go together");
  }
  if (tls_files == 3) {
    if (flags.tls_refresh_seconds < 1) {
      return absl::InvalidArgumentError("--tls_refresh_seconds must be >= 1");
    }
    setup.tls = config::TlsConfig{flags.tls_ca_file, flags.tls_cert_file, flags.tls_key_file,
                                  flags.tls_refresh_seconds};
  }
  return setup;
}

}  // namespace moa::proposer
