// The cluster config file (YAML): models with their proposer endpoints and
// upstreams, the aggregator, pipelines and the default pipeline. Validated
// as a whole: unknown keys, undefined models and empty layers are errors that
// name the file, line and column.
#ifndef MOA_LIB_CONFIG_CLUSTER_CONFIG_H_
#define MOA_LIB_CONFIG_CLUSTER_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace moa::config {

// How a proposer reaches its upstream model (read by moa-proposer --config).
struct UpstreamConfig {
  std::string base_url;     // OpenAI-compatible base URL ending in /v1.
  std::string model;        // Model id sent upstream; defaults to the cluster name.
  std::string api_key_env;  // Env var holding the key; empty: no key.
  std::string ca_file;      // CA bundle for an https upstream with a private CA; empty: system's.
  std::optional<absl::Duration> connect_timeout;
  std::optional<absl::Duration> first_token_timeout;
  std::optional<absl::Duration> idle_timeout;
  std::optional<absl::Duration> total_timeout;
  std::optional<int> max_attempts;
  std::optional<int> max_inflight;
  // How its proposer asks it to continue a cut answer: prefill, vllm or
  // instruction (empty: the proposer's --continuation).
  std::string continuation;
  // The API it speaks: "openai" (default), "azure" (then api_version is
  // required and `model` is the deployment's name), "anthropic" or
  // "gemini".
  std::string api = "openai";
  std::string api_version;
  // `reasoning:` for reasoning models: effort (openai, azure) or
  // budget_tokens (anthropic, gemini); include_text puts the thinking text
  // into the model's answer, marked (off: it never reaches a prompt).
  std::string reasoning_effort;
  std::optional<int> reasoning_budget_tokens;
  bool reasoning_include_text = false;
};

// What a model's tokens cost (the `price:` of a model), in dollars per
// million tokens.
struct Price {
  double input_per_million = 0;
  double output_per_million = 0;
  double Cost(int64_t prompt_tokens, int64_t completion_tokens) const {
    return (static_cast<double>(prompt_tokens) * input_per_million +
            static_cast<double>(completion_tokens) * output_per_million) /
           1e6;
  }
};

struct ModelConfig {
  std::string name;      // Cluster name, the key under `models`.
  std::string endpoint;  // gRPC target of the model's proposer.
  // Models asked instead, in order, when a layer call to this one fails
  // before any text.
  std::vector<std::string> fallbacks;
  std::optional<UpstreamConfig> upstream;
  std::optional<Price> price;  // Unset: its calls cost nothing in the accounts.
  // What the model is given beyond text (`capabilities:`). The final
  // answer's model always gets the client's tools; a model with
  // `layer_tools` gets them in a layer too (its calls join its proposal as
  // text).
  bool layer_tools = false;
  // `vision`: it reads images; without it, the model is sent the text only.
  bool vision = false;
};

// One of several samples of the same model in a layer (Self-MoA): its
// number (1-based; 0 for a model listed once) and its own temperature.
// Samples get distinct seeds (see SlotNames and docs/configuration.md, "Self-MoA").
struct Sample {
  int index = 0;
  std::optional<double> temperature;
  bool operator==(const Sample& o) const {
    return index == o.index && temperature == o.temperature;
  }
};

// The name each slot of each layer goes by in events, references and
// metrics: the model, or "model#k" for sample k.
std::vector<std::vector<std::string>> SlotNames(const std::vector<std::vector<std::string>>& layers,
                                                const std::vector<std::vector<Sample>>& samples);

// When a proposer layer goes on without its slowest models (the `policy:`
// of a pipeline, or a request's override). Unset fields take the defaults
// of the orchestrator's engine (services/orchestrator/engine/layer_policy.h).
struct LayerPolicy {
  // Answers a layer needs before it may go on without the rest (k of n);
  // a value >= n waits for every model, as the paper does.
  std::optional<int> min_proposals;
  // Once k answers are in, the longest wait for the rest: at most this,
  // and at most straggler_grace_factor x the median duration of the answers
  // in; the smaller bound wins.
  std::optional<absl::Duration> straggler_grace;
  std::optional<double> straggler_grace_factor;
  // A layer may use at most this share of the time left to the request's
  // deadline when it starts, so the final answer always keeps time to run.
  std::optional<double> layer_deadline_share;
};

// How the final answer streams (the `streaming:` of a pipeline, or a
// request's override). Staircase: the aggregator starts on the proposals'
// first chunks and writes the answer chunk by chunk as more of them arrive
// (docs/streaming.md, "Staircase streaming"). Unset fields take the engine's defaults
// (services/orchestrator/engine/staircase.h).
struct StreamingConfig {
  enum class Mode { kNormal, kStaircase };
  std::optional<Mode> mode;
  std::optional<int> first_chunk_tokens;  // Chunk 1, in (estimated) tokens.
  std::optional<double> growth;           // Chunk j+1 = growth x chunk j.
  std::optional<int> max_steps;           // The last step always waits for every proposal.
};

// One step of a pipeline (docs/pipelines.md, "Composable steps"). A `layers:`
// pipeline is propose, synthesize per later layer, then aggregate.
enum class StepKind {
  kPropose,     // Each model answers the conversation.
  kSynthesize,  // Each model synthesizes the texts so far.
  kShuffle,     // The texts in a seeded random order.
  kDropout,     // Each text left out with probability `rate`, keeping `min_keep`.
  kRank,        // One model orders the texts; the best `keep` go on.
  kJudge,       // One model analyses the texts; the next step gets the analysis too.
  kRefine,      // Text i is improved on its own by the step's model i.
  kAggregate,   // The final, streamed answer (the terminal step).
  kVote,        // The most frequent text is the answer (the terminal step).
};
// "propose", "synthesize", ...: the name in the config, events and metrics.
const char* StepKindName(StepKind kind);
// True for the steps that call models (their models are a `layers` entry).
bool StepCallsModels(StepKind kind);

struct StepConfig {
  StepKind kind = StepKind::kPropose;
  double rate = 0;        // dropout
  int min_keep = 1;       // dropout
  int keep = 1;           // rank
  bool normalize = true;  // vote: compare texts case-, space- and punctuation-blind
  // rank, judge, refine: the instruction, from `prompt_file` (read when the
  // config is loaded from a file); empty: ours.
  std::string prompt_file;
  std::string prompt;
};

// Early stop on agreement (docs/pipelines.md, "Early stop"): when every answer of a
// step that calls models agrees, the steps after it and the aggregator are
// skipped and the agreed answer is the final one.
struct EarlyStopConfig {
  // 1: the texts must be equal as the vote compares them (normalized);
  // below 1: every pair's word-set overlap (shared words / all words, of
  // the normalized texts) must reach it.
  double similarity = 1.0;
  int min_answers = 2;  // Fewer answers (the rest cut or failed) never agree.
  // What answers then: the agreed text as is (no final call), or the
  // aggregator from the agreed answer alone (one reference instead of n: a
  // smaller prompt, its voice and format; tools and response_format still
  // apply). A vote pipeline always answers the agreed text.
  enum class Then { kAnswer, kAggregate };
  Then then = Then::kAnswer;
};

struct PipelineConfig {
  std::string name;
  // Every step but the terminal one, in order. Each step's models (its
  // slots) are the `layers` entry of the same index: empty for shuffle and
  // dropout, the one model of rank and judge. For a `layers:` pipeline:
  // propose, then synthesize per later layer.
  std::vector<StepConfig> steps;
  // kAggregate (by `aggregator`) or kVote.
  StepKind terminal = StepKind::kAggregate;
  bool vote_normalize = true;                    // The vote's setting.
  std::vector<std::vector<std::string>> layers;  // Each step's models (see `steps`).
  // Same shape as `layers`: which slots are samples of one model.
  std::vector<std::vector<Sample>> samples;
  std::string aggregator;  // Model that writes the final answer ("" for vote).
  // Models that write the final answer, in order, when the aggregator's
  // call fails before the first byte of the answer reached the client.
  std::vector<std::string> aggregator_fallbacks;
  std::optional<double> temperature;
  std::optional<int> max_tokens;
  std::optional<double> top_p;
  LayerPolicy policy;
  StreamingConfig streaming;
  std::optional<EarlyStopConfig> early_stop;
};

// Staircase streaming reads the growing texts of the step before
// aggregate: only a propose or synthesize step has them.
bool StaircaseFits(const std::vector<StepConfig>& steps, StepKind terminal);
// Each step's kind name (StepKindName), in order.
std::vector<std::string> StepKindNames(const std::vector<StepConfig>& steps);

// Bounds every request stays within (the `limits:` section). The message
// size limit of every gRPC server and channel between services is derived
// from them, so a request the servers accept never fails for size further in.
struct Limits {
  // A request's size: the HTTP body, or the serialized gRPC ChatRequest.
  int64_t max_request_bytes = 4 << 20;
  int max_messages = 512;              // Messages in a conversation.
  int max_models_per_layer = 16;       // Also: references one aggregation sees.
  int max_layers = 8;                  // Proposer layers (inline `rounds` too).
  int max_upstream_calls = 64;         // Per request: every layer's models + the final answer.
  int64_t max_answer_bytes = 1 << 20;  // Text one model call may produce; more is cut ("length").

  // Room for the synthesis instruction and protobuf framing in a hop.
  static constexpr int64_t kHopSlackBytes = 1 << 20;
  // Largest gRPC message between two services: the conversation plus one
  // layer's answers as references, a judge step's analysis (one answer
  // more) and the instruction.
  int64_t HopMessageBytes() const {
    return max_request_bytes + int64_t{max_models_per_layer + 1} * max_answer_bytes +
           kHopSlackBytes;
  }
  // The orchestrator's gRPC receive limit: requests up to twice the limit
  // still arrive, so they are refused with INVALID_ARGUMENT naming the limit
  // rather than by gRPC's own RESOURCE_EXHAUSTED.
  int64_t FrontReceiveBytes() const { return 2 * max_request_bytes + kHopSlackBytes; }
};

// mTLS between the cluster's services (the `tls:` section): every
// proposer's and aggregator's gRPC server requires a client certificate
// signed by the CA, and every channel to them presents this process's
// certificate and checks theirs. The files are re-read every
// refresh_seconds, so rotated certificates take effect without a restart.
struct TlsConfig {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  int refresh_seconds = 60;
};

// The optional shared store of client limits (`store:`): Redis at
// host:port. `fail_closed`: when it cannot be reached, requests of keys with
// a shared limit are refused (503) instead of decided by the replica alone.
struct StoreConfig {
  std::string host;
  int port = 6379;
  std::string password_env;  // Env var with the password; empty: none.
  absl::Duration timeout = absl::Milliseconds(50);
  bool fail_closed = false;
};

// A preset (`presets:`, docs/pipelines.md "Presets"): a named way to run whichever
// pipeline a request names, chosen by the request (ChatRequest.preset,
// OpenAI `moa_preset`) or by its client key. What it sets replaces the
// pipeline's; the request's own policy and streaming go on top of it.
struct PresetConfig {
  std::string name;
  std::string description;  // One line for `moa pipelines` and the docs.
  // Each propose, synthesize and refine step keeps its first n models.
  std::optional<int> max_proposers;
  LayerPolicy policy;         // Set fields replace the pipeline's.
  StreamingConfig streaming;  // Likewise.
  // Set: replaces the pipeline's early_stop (nullopt inside: `off`).
  std::optional<std::optional<EarlyStopConfig>> early_stop;
};

// A route (`routes:`, docs/pipelines.md "Routing"): a name clients ask for like a
// pipeline's (e.g. `auto`) that picks, per request, which pipeline runs.
// Its rules are tried in order; the first whose every condition holds
// decides. When none does and a classifier is set, one call to its model
// labels the request; otherwise, or when that call fails or answers no
// label, `default_pipeline` runs.
struct RouteRule {
  std::string pipeline;
  // Conditions on the request's last user message (characters counted as
  // bytes of UTF-8) and on the client's key; unset ones always hold.
  std::optional<int64_t> min_chars;
  std::optional<int64_t> max_chars;
  // Holds when the message contains any of these, ignoring ASCII case.
  // Substrings, not regular expressions: no pattern's cost or syntax
  // enters a request's path.
  std::vector<std::string> contains;
  std::vector<std::string> keys;  // The client key's name is one of these.
  std::optional<bool> tools;      // The request offers tools (true) or none (false).
  std::optional<bool> images;     // The conversation has images (true) or none (false).
};

struct RouteClassifier {
  std::string model;  // A model of `models:`, asked on its proposer.
  // Label the model answers -> pipeline, in file order. Labels are
  // lowercase words ([a-z0-9_-], up to 32 bytes).
  std::vector<std::pair<std::string, std::string>> labels;
  std::string instruction;  // Empty: ours, naming the labels.
  absl::Duration timeout = absl::Seconds(2);
};

struct RouteConfig {
  std::string name;
  std::vector<RouteRule> rules;
  std::optional<RouteClassifier> classifier;
  std::string default_pipeline;  // Unset in the file: the cluster's default.
};

struct ClusterConfig {
  std::vector<ModelConfig> models;  // In file order.
  std::string aggregator_endpoint;
  std::vector<PipelineConfig> pipelines;  // In file order.
  std::vector<RouteConfig> routes;        // In file order; no name is also a pipeline's.
  std::vector<PresetConfig> presets;      // In file order.
  std::string default_pipeline;
  Limits limits;
  std::optional<TlsConfig> tls;      // Unset: plaintext between services.
  std::optional<StoreConfig> store;  // Unset: limits per replica, in memory.

  const ModelConfig* FindModel(absl::string_view name) const;
  const PipelineConfig* FindPipeline(absl::string_view name) const;
  const RouteConfig* FindRoute(absl::string_view name) const;
  const PresetConfig* FindPreset(absl::string_view name) const;
};

// A config is bounded before it is parsed: its size (yaml-cpp holds about
// fifty bytes of nodes per byte of text) and its number of models.
inline constexpr size_t kMaxConfigBytes = 4 << 20;
inline constexpr size_t kMaxModels = 4096;

// Parses and validates YAML text; `source` names it in error messages.
absl::StatusOr<ClusterConfig> ParseClusterConfig(absl::string_view yaml, absl::string_view source);

// Every mapping of the config and the keys it takes, by where it sits
// ("" for the top level, "models.NAME.upstream", "pipelines.NAME.steps[i].rank").
// The parser refuses any other key with exactly these lists, and the
// configuration reference (docs/configuration.md) names each one: a test
// holds the two together.
const std::map<std::string, std::set<std::string>>& ConfigKeys();

// Reads and parses a file. NOT_FOUND when it cannot be read.
absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path);

// Reads each step's prompt_file (relative to the folder of the config at
// `path`) into its `prompt`. Only the orchestrator uses the prompts, so only
// it reads them (the other services need not have the files). NOT_FOUND
// naming the step when a file cannot be read, INVALID_ARGUMENT when it is
// empty or over 256 KiB.
absl::Status LoadStepPrompts(const std::string& path, ClusterConfig& cfg);

}  // namespace moa::config

#endif  // MOA_LIB_CONFIG_CLUSTER_CONFIG_H_
