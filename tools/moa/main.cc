// moa: command-line client of moa-orchestrator.
//   moa ask [--pipeline P] "question"      stream one answer, then a per-model table
//   moa chat [--reference_models a,b ...]  interactive multi-turn chat
//   moa batch --format alpaca_eval|mt_bench|flask --input F --output F
//   moa pipelines                          list the cluster's pipelines, routes, presets
//   moa endpoints --config F               model/aggregator ports of a config (for scripts)
//   moa health --target HOST:PORT          exit 0 when the server reports SERVING
//   moa health --target http://HOST:PORT/healthz   exit 0 on an HTTP 2xx answer
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/base/json.h"
#include "lib/config/cluster_config.h"
#include "lib/server/health_check.h"
#include "lib/server/help.h"
#include "tools/moa/api_key.h"
#include "tools/moa/batch.h"
#include "tools/moa/chat_runner.h"
#include "tools/moa/keys.h"
#include "tools/moa/keys_admin.h"
#include "tools/moa/spend.h"

ABSL_FLAG(std::string, orchestrator, "",
          "Orchestrator address (default: $MOA_ORCHESTRATOR or localhost:50051).");
ABSL_FLAG(std::string, api_key, "",
          "Client key for an orchestrator with keys on, sent as 'authorization: Bearer KEY' "
          "(default: $MOA_API_KEY, which keeps it out of the process list).");
ABSL_FLAG(std::string, pipeline, "",
          "Pipeline or route name (default: the cluster's default pipeline).");
ABSL_FLAG(std::string, preset, "",
          "ask, chat, batch: the preset the pipeline runs with (the config's presets:); keys "
          "add, keys limit: the key's preset for requests that name none (empty with keys "
          "limit: clears it).");
ABSL_FLAG(std::string, reference_models, "",
          "Comma-separated models for an inline pipeline (instead of --pipeline).");
ABSL_FLAG(std::string, aggregator, "", "Aggregator model of an inline pipeline.");
ABSL_FLAG(int, rounds, 1, "Proposer layers of an inline pipeline.");
ABSL_FLAG(double, temperature, -1, "Sampling temperature (default: the pipeline's).");
ABSL_FLAG(int, max_tokens, 0, "Max tokens per call (default: the pipeline's).");
ABSL_FLAG(std::string, system, "", "System message to start the conversation with.");
ABSL_FLAG(std::string, streaming, "",
          "How the answer streams: normal or staircase (default: the pipeline's).");
ABSL_FLAG(std::string, step_seed, "",
          "Seed of the pipeline's shuffle and dropout steps (the table's `seed N` replays a "
          "run); empty: a random one.");
ABSL_FLAG(bool, multi_turn, true, "chat: keep earlier turns in the conversation.");
ABSL_FLAG(bool, show_proposals, false, "Print each proposal's text as it completes.");
ABSL_FLAG(bool, table, true, "ask: print the per-model table on stderr.");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(10), "Deadline of each request.");
ABSL_FLAG(std::string, format, "alpaca_eval", "batch: alpaca_eval, mt_bench or flask.");
ABSL_FLAG(std::string, input, "", "batch: input file.");
ABSL_FLAG(std::string, output, "", "batch: output file (resumed if it exists).");
ABSL_FLAG(int, concurrency, 4, "batch: requests in parallel.");
ABSL_FLAG(std::string, generator, "", "batch: generator / model_id written (default: pipeline).");
ABSL_FLAG(std::string, config, "", "endpoints, spend: cluster config to read.");
ABSL_FLAG(std::string, tls_ca_file, "",
          "Reach the orchestrator (or health's --target) over TLS, trusting this CA (PEM). "
          "Empty: plaintext.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "With --tls_ca_file: present this certificate (PEM), for a port that requires one "
          "(a proposer's or the aggregator's under mTLS).");
ABSL_FLAG(std::string, tls_key_file, "", "With --tls_cert_file: its private key (PEM).");
ABSL_FLAG(std::string, keys_file, "",
          "keys, spend: the orchestrator's keys file (--api_keys_file).");
ABSL_FLAG(std::string, admin_url, "",
          "keys, spend: the orchestrator's HTTP address (http[s]://host:port) whose admin API "
          "changes keys in the shared store and reports their spend; the admin key comes from "
          "MOA_ADMIN_KEY.");
ABSL_FLAG(int64_t, requests_per_minute, 0, "keys add: limit (0: none).");
ABSL_FLAG(int64_t, tokens_per_minute, 0, "keys add: limit (0: none).");
ABSL_FLAG(int64_t, concurrent_requests, 0, "keys add: limit (0: none).");
ABSL_FLAG(std::string, allowed_pipelines, "",
          "keys add: comma-separated pipelines the key may use (default: all).");
ABSL_FLAG(double, budget_dollars_per_day, 0, "keys add: limit (0: none).");
ABSL_FLAG(double, budget_dollars_per_month, 0, "keys add: limit (0: none).");
ABSL_FLAG(std::string, target, "",
          "health: gRPC address to check, or an http:// URL that must answer 2xx.");

namespace moa::cli {
namespace {

// --api_key, else $MOA_API_KEY (which keeps the secret out of `ps`).
std::string ApiKey() {
  std::string flag = absl::GetFlag(FLAGS_api_key);
  if (!flag.empty()) return flag;
  const char* env = std::getenv("MOA_API_KEY");
  return env != nullptr ? env : "";
}

std::string OrchestratorAddress() {
  std::string flag = absl::GetFlag(FLAGS_orchestrator);
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("MOA_ORCHESTRATOR"); env != nullptr && *env != '\0') {
    return env;
  }
  return "localhost:50051";
}

// The whole of a PEM file named by a flag; exits 2 when it cannot be read.
std::string ReadPemFlag(const char* flag, const std::string& path) {
  std::ifstream in(path);
  std::stringstream pem;
  pem << in.rdbuf();
  if (!in || pem.str().empty()) {
    std::fprintf(stderr, "moa: cannot read --%s %s\n", flag, path.c_str());
    std::exit(2);
  }
  return pem.str();
}

// Plaintext, or TLS trusting --tls_ca_file (presenting --tls_cert_file when
// given); exits 2 when a file cannot be read or only half an identity is.
std::shared_ptr<grpc::ChannelCredentials> Credentials() {
  const std::string ca = absl::GetFlag(FLAGS_tls_ca_file);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert_file);
  const std::string key = absl::GetFlag(FLAGS_tls_key_file);
  if (ca.empty() && cert.empty() && key.empty()) return grpc::InsecureChannelCredentials();
  if (ca.empty() || cert.empty() != key.empty()) {
    std::fprintf(stderr, "moa: TLS needs --tls_ca_file, and --tls_cert_file with --tls_key_file\n");
    std::exit(2);
  }
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadPemFlag("tls_ca_file", ca);
  if (!cert.empty()) {
    options.pem_cert_chain = ReadPemFlag("tls_cert_file", cert);
    options.pem_private_key = ReadPemFlag("tls_key_file", key);
  }
  return grpc::SslCredentials(options);
}

std::unique_ptr<v1::OrchestratorService::Stub> Connect() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetInt(GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET, 1 << GRPC_COMPRESS_NONE);
  return v1::OrchestratorService::NewStub(
      ChannelWithKey(OrchestratorAddress(), Credentials(), args, ApiKey()));
}

// The pipeline choice and params every request of this run carries.
v1::ChatRequest BaseRequest() {
  v1::ChatRequest req;
  std::string refs = absl::GetFlag(FLAGS_reference_models);
  if (!refs.empty()) {
    v1::PipelineSpec* spec = req.mutable_spec();
    for (absl::string_view m : absl::StrSplit(refs, ',', absl::SkipWhitespace())) {
      spec->add_reference_models(std::string(m));
    }
    spec->set_aggregator(absl::GetFlag(FLAGS_aggregator));
    spec->set_rounds(absl::GetFlag(FLAGS_rounds));
  } else {
    req.set_pipeline(absl::GetFlag(FLAGS_pipeline));
  }
  req.set_preset(absl::GetFlag(FLAGS_preset));
  if (absl::GetFlag(FLAGS_temperature) >= 0) {
    req.mutable_params()->set_temperature(absl::GetFlag(FLAGS_temperature));
  }
  if (absl::GetFlag(FLAGS_max_tokens) > 0) {
    req.mutable_params()->set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  }
  if (const std::string streaming = absl::GetFlag(FLAGS_streaming); streaming == "staircase") {
    req.mutable_streaming()->set_mode(v1::StreamingOptions::STAIRCASE);
  } else if (streaming == "normal") {
    req.mutable_streaming()->set_mode(v1::StreamingOptions::NORMAL);
  }
  if (const std::string seed = absl::GetFlag(FLAGS_step_seed); !seed.empty()) {
    uint64_t value;
    if (!absl::SimpleAtoi(seed, &value)) {
      std::fprintf(stderr, "moa: --step_seed must be a whole number, not '%s'\n", seed.c_str());
      std::exit(2);
    }
    req.set_step_seed(value);
  }
  if (std::string system = absl::GetFlag(FLAGS_system); !system.empty()) {
    v1::ChatMessage* m = req.add_messages();
    m->set_role(v1::ROLE_SYSTEM);
    m->set_content(system);
  }
  return req;
}

int ReportError(const grpc::Status& status) {
  std::fprintf(stderr, "moa: %s: %s\n",
               absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())).c_str(),
               status.error_message().c_str());
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    std::fprintf(stderr, "moa: the orchestrator wants a client key: --api_key or MOA_API_KEY\n");
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      status.error_message().find("every model") == std::string::npos) {
    std::fprintf(stderr,
                 "moa: is the orchestrator running at %s? (--orchestrator or "
                 "MOA_ORCHESTRATOR)\n",
                 OrchestratorAddress().c_str());
  }
  return 1;
}

ChatCallbacks Callbacks(bool show_progress) {
  ChatCallbacks cb;
  bool tty = isatty(2);
  cb.on_answer_delta = [](const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  };
  if (show_progress) {
    auto last = std::make_shared<std::pair<int, int>>(-1, -1);
    cb.on_progress = [tty, last](int layer, int layers, int done, int total) {
      if (*last == std::make_pair(layer, done)) return;
      *last = {layer, done};
      // In place on a terminal; otherwise one line per change. The final
      // answer is layer layers+1, as the MoA paper counts.
      std::fprintf(stderr, "%slayer %d/%d: %d of %d proposals%s", tty ? "\r\033[K" : "", layer,
                   layers + 1, done, total, tty ? "" : "\n");
      if (layer == layers && done == total) {
        std::fprintf(stderr, "%slayer %d/%d: aggregating%s", tty ? "\r\033[K" : "", layers + 1,
                     layers + 1, tty ? "" : "\n");
      }
      std::fflush(stderr);
    };
  }
  if (absl::GetFlag(FLAGS_show_proposals)) {
    cb.on_proposal_done = [tty](const v1::ProposalDone& d) {
      std::fprintf(stderr, "%s--- layer %d, %s ---\n%s\n", tty ? "\r\033[K" : "", d.ref().layer(),
                   d.ref().model().c_str(), d.text().c_str());
    };
  }
  return cb;
}

int Ask(const std::vector<std::string>& words) {
  if (words.empty()) {
    std::fprintf(stderr, "usage: moa ask [--pipeline P] \"question\"\n");
    return 2;
  }
  auto stub = Connect();
  v1::ChatRequest req = BaseRequest();
  v1::ChatMessage* m = req.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content(absl::StrJoin(words, " "));
  bool tty = isatty(2);
  bool started_answer = false;
  ChatCallbacks cb = Callbacks(true);
  auto print = cb.on_answer_delta;
  cb.on_answer_delta = [&](const std::string& text) {
    if (!started_answer) {
      started_answer = true;
      std::fprintf(stderr, "%sanswer:\n", tty ? "\r\033[K" : "");
    }
    print(text);
  };
  ChatResult r = RunChat(*stub, req, absl::GetFlag(FLAGS_timeout), cb);
  std::printf("\n");
  std::fflush(stdout);
  if (absl::GetFlag(FLAGS_table) && !r.rows.empty()) {
    std::fprintf(stderr, "\n%s", FormatTable(r.rows).c_str());
  }
  if (r.summary) {
    std::fprintf(
        stderr, "total %.2fs, answer first token after %.2fs, cost $%.6f\n",
        r.summary->total().seconds() + r.summary->total().nanos() / 1e9,
        r.summary->time_to_first_token().seconds() + r.summary->time_to_first_token().nanos() / 1e9,
        r.summary->cost_dollars());
  }
  return r.status.ok() ? 0 : ReportError(r.status);
}

int Chat() {
  auto stub = Connect();
  v1::ChatRequest conversation = BaseRequest();
  std::fprintf(stderr, "moa chat: type a message; 'exit' or Ctrl-D to quit.\n");
  std::string line;
  while (true) {
    std::printf(">>> ");
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "exit" || line == "quit") break;
    if (line.empty()) continue;
    v1::ChatRequest req = absl::GetFlag(FLAGS_multi_turn) ? conversation : BaseRequest();
    v1::ChatMessage* m = req.add_messages();
    m->set_role(v1::ROLE_USER);
    m->set_content(line);
    ChatResult r = RunChat(*stub, req, absl::GetFlag(FLAGS_timeout), Callbacks(false));
    std::printf("\n");
    if (!r.status.ok()) {
      ReportError(r.status);
      continue;  // The failed turn is not added to the conversation.
    }
    if (absl::GetFlag(FLAGS_multi_turn)) {
      conversation = req;
      v1::ChatMessage* a = conversation.add_messages();
      a->set_role(v1::ROLE_ASSISTANT);
      a->set_content(r.answer);
    }
  }
  std::printf("\n");
  return 0;
}

int Batch() {
  auto stub = Connect();
  BatchOptions o;
  o.format = absl::GetFlag(FLAGS_format);
  o.input = absl::GetFlag(FLAGS_input);
  o.output = absl::GetFlag(FLAGS_output);
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.timeout = absl::GetFlag(FLAGS_timeout);
  o.base = BaseRequest();
  o.base.clear_params();
  if (absl::GetFlag(FLAGS_max_tokens) > 0) {
    o.base.mutable_params()->set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  }
  if (absl::GetFlag(FLAGS_temperature) >= 0)
    o.temperature_override = absl::GetFlag(FLAGS_temperature);
  o.generator = absl::GetFlag(FLAGS_generator);
  if (o.generator.empty()) {
    o.generator = absl::GetFlag(FLAGS_pipeline).empty() ? "moa" : absl::GetFlag(FLAGS_pipeline);
  }
  return RunBatch(*stub, o);
}

int Pipelines() {
  auto stub = Connect();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListPipelinesResponse resp;
  grpc::Status s = stub->ListPipelines(&ctx, v1::ListPipelinesRequest(), &resp);
  if (!s.ok()) return ReportError(s);
  for (const v1::PipelineInfo& p : resp.pipelines()) {
    if (p.has_route()) {
      // A route: what it may choose, its default first.
      const v1::RouteInfo& r = p.route();
      std::printf(
          "%s: route to %s (%d rule%s%s; default %s)\n", p.name().c_str(),
          absl::StrJoin(r.pipelines(), " | ").c_str(), r.rules(), r.rules() == 1 ? "" : "s",
          r.classifier().empty() ? "" : absl::StrCat(", classifier ", r.classifier()).c_str(),
          r.pipelines().empty() ? "" : r.pipelines(0).c_str());
      continue;
    }
    // Each step as "kind [models]" ("[models]" alone for propose and
    // synthesize, as a `layers:` pipeline reads), then the terminal step.
    std::vector<std::string> steps;
    for (int i = 0; i < p.layers_size(); ++i) {
      const std::string kind = i < p.steps_size() ? p.steps(i) : "";
      std::string models = p.layers(i).models().empty()
                               ? ""
                               : absl::StrCat("[", absl::StrJoin(p.layers(i).models(), ", "), "]");
      if (kind.empty() || kind == "propose" || kind == "synthesize") {
        steps.push_back(models);
      } else {
        steps.push_back(models.empty() ? kind : absl::StrCat(kind, " ", models));
      }
    }
    steps.push_back(p.terminal() == "vote" ? "vote" : p.aggregator());
    std::printf("%s%s: %s\n", p.name().c_str(), p.default_() ? " (default)" : "",
                absl::StrJoin(steps, " -> ").c_str());
  }
  for (const v1::PresetInfo& p : resp.presets()) {
    std::printf("preset %s: %s\n", p.name().c_str(), p.description().c_str());
  }
  return 0;
}

// The orchestrator's admin key for `command` (keys, spend), from
// MOA_ADMIN_KEY, never a flag (flags show in process lists); nullptr, said
// on stderr, when it is not set.
const char* AdminKeyFromEnv(const char* command) {
  const char* admin_key = std::getenv("MOA_ADMIN_KEY");
  if (admin_key == nullptr || *admin_key == '\0') {
    std::fprintf(stderr, "moa %s: set MOA_ADMIN_KEY to the orchestrator's admin key\n", command);
    return nullptr;
  }
  return admin_key;
}

// `moa spend`: through the admin API, or from the config's store.
int Spend() {
  absl::StatusOr<std::string> report;
  if (!absl::GetFlag(FLAGS_admin_url).empty()) {
    const char* admin_key = AdminKeyFromEnv("spend");
    if (admin_key == nullptr) return 2;
    report = SpendThroughAdmin(absl::GetFlag(FLAGS_admin_url), admin_key,
                               absl::GetFlag(FLAGS_tls_ca_file), absl::GetFlag(FLAGS_timeout));
  } else {
    report = SpendReport(absl::GetFlag(FLAGS_config), absl::GetFlag(FLAGS_keys_file), absl::Now());
  }
  if (!report.ok()) {
    std::fprintf(stderr, "moa: %s\n", std::string(report.status().message()).c_str());
    return 1;
  }
  std::fputs(report->c_str(), stdout);
  return 0;
}

// Prints "model NAME PORT" per model and "aggregator PORT" for scripts that
// start a local cluster from a config.
int Endpoints() {
  auto cfg = config::LoadClusterConfig(absl::GetFlag(FLAGS_config));
  if (!cfg.ok()) {
    std::fprintf(stderr, "moa: %s\n", std::string(cfg.status().message()).c_str());
    return 2;
  }
  auto port_of = [](const std::string& endpoint) {
    return endpoint.substr(endpoint.rfind(':') + 1);
  };
  for (const auto& m : cfg->models) {
    std::printf("model %s %s\n", m.name.c_str(), port_of(m.endpoint).c_str());
  }
  if (!cfg->aggregator_endpoint.empty()) {
    std::printf("aggregator %s\n", port_of(cfg->aggregator_endpoint).c_str());
  }
  return 0;
}

// Exit 0 when the gRPC server at --target reports SERVING (for scripts).
// An HTTP probe for services without gRPC (the upstream simulator): the
// container image has no curl command, so the health check is ours.
int HttpHealth(const std::string& url, absl::Duration timeout) {
  absl::StatusOr<AdminReply> reply =
      CallHttp(url, "", absl::GetFlag(FLAGS_tls_ca_file), "GET", "", "", timeout);
  if (!reply.ok()) {
    std::fprintf(stderr, "moa: %s\n", std::string(reply.status().message()).c_str());
    return 1;
  }
  if (reply->status >= 200 && reply->status < 300) return 0;
  std::fprintf(stderr, "moa: %s answered HTTP %ld\n", url.c_str(), reply->status);
  return 1;
}

// The limit flags given on the command line, as admin API fields: a
// positive value sets a limit, 0 (or an empty --allowed_pipelines) clears
// it; `all` takes the unset ones as well (for a new key).
// The command line as given (this abseil keeps whether a flag was given
// private), for `keys limit` to tell a flag set to 0 from one left out.
std::vector<std::string>& RawArgs() {
  static auto* args = new std::vector<std::string>();
  return *args;
}

json::Json LimitFlags(bool all) {
  json::Json j = json::Json::object();
  auto given = [all](const std::string& flag) {
    if (all) return true;
    for (const std::string& a : RawArgs()) {
      for (const std::string& form : {"--" + flag, "-" + flag}) {
        if (a == form || absl::StartsWith(a, form + "=")) return true;
      }
    }
    return false;
  };
  auto number = [&](const char* flag, auto value) {
    if (!given(flag)) return;
    if (value > 0) {
      j[flag] = value;
    } else if (!all) {
      j[flag] = nullptr;
    }
  };
  number("requests_per_minute", absl::GetFlag(FLAGS_requests_per_minute));
  number("tokens_per_minute", absl::GetFlag(FLAGS_tokens_per_minute));
  number("concurrent_requests", absl::GetFlag(FLAGS_concurrent_requests));
  number("budget_dollars_per_day", absl::GetFlag(FLAGS_budget_dollars_per_day));
  number("budget_dollars_per_month", absl::GetFlag(FLAGS_budget_dollars_per_month));
  if (given("preset")) {
    if (!absl::GetFlag(FLAGS_preset).empty()) {
      j["preset"] = absl::GetFlag(FLAGS_preset);
    } else if (!all) {
      j["preset"] = nullptr;
    }
  }
  if (given("allowed_pipelines")) {
    std::vector<std::string> pipelines =
        absl::StrSplit(absl::GetFlag(FLAGS_allowed_pipelines), ',', absl::SkipWhitespace());
    if (!pipelines.empty()) {
      j["pipelines"] = pipelines;
    } else if (!all) {
      j["pipelines"] = nullptr;
    }
  }
  return j;
}

// `moa keys add|limit|revoke|list --admin_url URL`: through the admin API.
int KeysThroughAdmin(const std::vector<std::string>& args) {
  const std::string url = absl::GetFlag(FLAGS_admin_url);
  const char* admin_key = AdminKeyFromEnv("keys");
  if (admin_key == nullptr) return 2;
  const std::string& verb = args[0];
  const std::string name = args.size() > 1 ? args[1] : "";
  std::string method = "GET", path = "/admin/v1/keys", body;
  if (verb == "add") {
    json::Json j = LimitFlags(true);
    j["name"] = name;
    method = "POST";
    body = json::Dump(j);
  } else if (verb == "limit") {
    method = "PATCH";
    path += "/" + name;
    body = json::Dump(LimitFlags(false));
  } else if (verb == "revoke") {
    method = "DELETE";
    path += "/" + name;
  }
  absl::StatusOr<AdminReply> reply = CallHttp(url, admin_key, absl::GetFlag(FLAGS_tls_ca_file),
                                              method, path, body, absl::GetFlag(FLAGS_timeout));
  if (!reply.ok()) {
    std::fprintf(stderr, "moa keys: %s\n", std::string(reply.status().message()).c_str());
    return 1;
  }
  if (reply->status < 200 || reply->status >= 300) {
    std::fprintf(stderr, "moa keys %s: %s\n", verb.c_str(), AdminError(*reply).c_str());
    return 1;
  }
  absl::StatusOr<json::Json> j = json::Parse(reply->body);
  if (verb == "list") {
    absl::StatusOr<std::string> table = KeyTable(reply->body);
    if (!table.ok()) {
      std::fprintf(stderr, "moa keys list: %s\n", std::string(table.status().message()).c_str());
      return 1;
    }
    std::fputs(table->c_str(), stdout);
    return 0;
  }
  const json::Json* secret = j.ok() ? json::Member(*j, "key") : nullptr;
  if (verb == "add") {
    if (secret == nullptr || !secret->is_string()) {
      std::fprintf(stderr, "moa keys add: the admin API answered without a key\n");
      return 1;
    }
    std::printf("%s\n", secret->get<std::string>().c_str());
    std::fprintf(stderr,
                 "key '%s' added to the shared store through %s. The secret above is shown "
                 "once: give it to its user now. Every replica accepts it within a second.\n",
                 name.c_str(), url.c_str());
    return 0;
  }
  const json::Json* limits = j.ok() ? json::Member(*j, "limits") : nullptr;
  if (verb == "limit") {
    std::printf("%s\n", limits != nullptr ? json::Dump(*limits).c_str() : "{}");
  } else {
    std::fprintf(stderr, "key '%s' revoked: every replica refuses it within a second.\n",
                 name.c_str());
  }
  return 0;
}

int Keys(const std::vector<std::string>& args) {
  static const char kUsage[] =
      "usage: moa keys add NAME (--keys_file FILE | --admin_url URL) [limits]\n"
      "       moa keys limit NAME --admin_url URL [limits]\n"
      "       moa keys revoke NAME --admin_url URL\n"
      "       moa keys list --admin_url URL\n";
  const bool named =
      !args.empty() && (args[0] == "add" || args[0] == "limit" || args[0] == "revoke");
  if (args.empty() || (named && args.size() != 2) ||
      (!named && (args[0] != "list" || args.size() != 1))) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (!absl::GetFlag(FLAGS_admin_url).empty()) return KeysThroughAdmin(args);
  if (args[0] != "add") {
    std::fprintf(stderr,
                 "moa keys %s: --admin_url is required (keys in a file change only by "
                 "editing it)\n",
                 args[0].c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_keys_file).empty()) {
    std::fprintf(stderr, "moa keys: --keys_file or --admin_url is required\n");
    return 2;
  }
  NewKey key;
  key.name = args[1];
  auto positive = [](auto v) { return v > 0 ? std::make_optional(v) : std::nullopt; };
  key.requests_per_minute = positive(absl::GetFlag(FLAGS_requests_per_minute));
  key.tokens_per_minute = positive(absl::GetFlag(FLAGS_tokens_per_minute));
  key.concurrent_requests = positive(absl::GetFlag(FLAGS_concurrent_requests));
  key.budget_dollars_per_day = positive(absl::GetFlag(FLAGS_budget_dollars_per_day));
  key.budget_dollars_per_month = positive(absl::GetFlag(FLAGS_budget_dollars_per_month));
  for (absl::string_view p :
       absl::StrSplit(absl::GetFlag(FLAGS_allowed_pipelines), ',', absl::SkipWhitespace())) {
    key.pipelines.emplace_back(p);
  }
  key.preset = absl::GetFlag(FLAGS_preset);
  absl::StatusOr<std::string> secret = AddKey(absl::GetFlag(FLAGS_keys_file), key);
  if (!secret.ok()) {
    std::fprintf(stderr, "moa keys: %s\n", std::string(secret.status().message()).c_str());
    return 2;
  }
  std::printf("%s\n", secret->c_str());
  std::fprintf(stderr,
               "key '%s' added to %s (its SHA-256 only). The secret above is shown once: "
               "give it to its user now. Restart the orchestrator to load it (with a shared "
               "store, add keys with --admin_url instead: no restart).\n",
               key.name.c_str(), absl::GetFlag(FLAGS_keys_file).c_str());
  return 0;
}

int Health() {
  std::string target = absl::GetFlag(FLAGS_target);
  if (target.empty()) target = OrchestratorAddress();
  if (absl::StartsWith(target, "http://") || absl::StartsWith(target, "https://")) {
    return HttpHealth(target, absl::GetFlag(FLAGS_timeout));
  }
  int status = server::HealthCheck(
      grpc::CreateChannel(target, Credentials()),
      std::chrono::milliseconds(absl::ToInt64Milliseconds(absl::GetFlag(FLAGS_timeout))));
  if (status == 1) return 0;
  std::fprintf(stderr, "moa: %s is %s\n", target.c_str(),
               status == 2 ? "NOT_SERVING" : "not reachable");
  return 1;
}

}  // namespace
}  // namespace moa::cli

namespace moa::cli {
namespace {

struct Command {
  const char* name;
  const char* usage;
  const char* what;
  std::vector<std::string> flags;
};

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"ask",
       "moa ask [flags] \"question\"",
       "stream one answer, then a per-model table on stderr",
       {"orchestrator", "tls_ca_file", "pipeline", "preset", "reference_models", "aggregator",
        "rounds", "temperature", "max_tokens", "streaming", "step_seed", "system", "show_proposals",
        "table", "timeout"}},
      {"chat",
       "moa chat [flags]",
       "interactive multi-turn chat (one question per line)",
       {"orchestrator", "tls_ca_file", "pipeline", "preset", "reference_models", "aggregator",
        "rounds", "temperature", "max_tokens", "streaming", "step_seed", "system", "multi_turn",
        "show_proposals", "timeout"}},
      {"batch",
       "moa batch --format F --input IN --output OUT [flags]",
       "answer a benchmark file (AlpacaEval, MT-Bench or FLASK), resumable",
       {"orchestrator", "tls_ca_file", "pipeline", "preset", "reference_models", "aggregator",
        "rounds", "temperature", "max_tokens", "step_seed", "format", "input", "output",
        "concurrency", "generator", "timeout"}},
      {"pipelines",
       "moa pipelines [--orchestrator ADDR]",
       "list the cluster's pipelines, routes and presets",
       {"orchestrator", "tls_ca_file"}},
      {"endpoints",
       "moa endpoints --config FILE",
       "print the model and aggregator ports of a cluster config (for scripts)",
       {"config"}},
      {"keys",
       "moa keys add NAME (--keys_file FILE | --admin_url URL) [--requests_per_minute N] "
       "[--tokens_per_minute N] [--concurrent_requests N] [--allowed_pipelines a,b] "
       "[--budget_dollars_per_day X] [--budget_dollars_per_month X] [--preset P]\n"
       "       moa keys limit NAME --admin_url URL [limits; 0 clears one]\n"
       "       moa keys revoke NAME --admin_url URL\n"
       "       moa keys list --admin_url URL",
       "client keys: add one (its secret printed once) to a keys file or, through the admin "
       "API (MOA_ADMIN_KEY), to the shared store; limit, revoke or list them there",
       {"keys_file", "admin_url", "tls_ca_file", "timeout", "requests_per_minute",
        "tokens_per_minute", "concurrent_requests", "allowed_pipelines", "budget_dollars_per_day",
        "budget_dollars_per_month", "preset"}},
      {"spend",
       "moa spend (--admin_url URL | --config FILE --keys_file FILE)",
       "what each key spent today and this month (UTC), in total and by model, across replicas: "
       "every key through the admin API (MOA_ADMIN_KEY), or a keys file's from the config's "
       "store",
       {"admin_url", "tls_ca_file", "timeout", "config", "keys_file"}},
      {"health",
       "moa health --target HOST:PORT|URL",
       "exit 0 when the gRPC server reports SERVING (or the http:// URL answers 2xx)",
       {"target", "tls_ca_file", "tls_cert_file", "tls_key_file", "timeout"}},
  };
  return *commands;
}

std::string Overview() {
  std::string out =
      "moa: the command-line client of moa-orchestrator (docs/cli.md).\n\n"
      "usage: moa COMMAND [flags]; moa help COMMAND (or moa COMMAND --help) for its flags\n\n"
      "commands:\n";
  for (const Command& c : Commands())
    absl::StrAppend(&out, absl::StrFormat("  %-10s %s\n", c.name, c.what));
  return out;
}

// `moa help [COMMAND]` and `moa COMMAND --help`: -1 when argv asks for no
// help, else the exit code after printing it.
int MaybeHelp(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string topic;
  if (!args.empty() && args[0] == "help") {
    if (args.size() > 1) topic = args[1];
  } else if (!args.empty() && (args.size() > 1) &&
             std::any_of(args.begin() + 1, args.end(), [](const std::string& a) {
               return a == "--help" || a == "-h" || a == "--helpshort";
             })) {
    topic = args[0];
  } else {
    return -1;
  }
  if (topic.empty()) {
    std::fputs(Overview().c_str(), stdout);
    return 0;
  }
  for (const Command& c : Commands()) {
    if (topic != c.name) continue;
    std::printf("usage: %s\n%s\n\nflags:\n%s", c.usage, c.what,
                server::DescribeFlags(c.flags).c_str());
    return 0;
  }
  std::fprintf(stderr, "moa: unknown command '%s'\n\n%s", topic.c_str(), Overview().c_str());
  return 2;
}

}  // namespace
}  // namespace moa::cli

int main(int argc, char** argv) {
  moa::server::ConfigureHelp();
  if (int code = moa::cli::MaybeHelp(argc, argv); code >= 0) return code;
  // abseil's --help puts "moa: " before the message: the overview without its own.
  absl::SetProgramUsageMessage(moa::cli::Overview().substr(std::string_view("moa: ").size()));
  moa::cli::RawArgs().assign(argv + 1, argv + argc);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() < 2) {
    std::fputs(moa::cli::Overview().c_str(), stderr);
    return 2;
  }
  std::string command = positional[1];
  std::vector<std::string> rest(positional.begin() + 2, positional.end());
  if (const std::string streaming = absl::GetFlag(FLAGS_streaming);
      !streaming.empty() && streaming != "normal" && streaming != "staircase") {
    std::fprintf(stderr, "moa: --streaming must be normal or staircase, not '%s'\n",
                 streaming.c_str());
    return 2;
  }
  if (command == "ask") return moa::cli::Ask(rest);
  if (command == "chat") return moa::cli::Chat();
  if (command == "batch") return moa::cli::Batch();
  if (command == "pipelines") return moa::cli::Pipelines();
  if (command == "endpoints") return moa::cli::Endpoints();
  if (command == "health") return moa::cli::Health();
  if (command == "keys") return moa::cli::Keys(rest);
  if (command == "spend") return moa::cli::Spend();
  std::fprintf(stderr,
               "moa: unknown command '%s' (ask, chat, batch, pipelines, endpoints, keys, "
               "spend, health)\n",
               command.c_str());
  return 2;
}
