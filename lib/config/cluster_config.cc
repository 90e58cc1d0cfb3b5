#include "lib/config/cluster_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/base/status_macros.h"

namespace moa::config {
const std::map<std::string, std::set<std::string>>& ConfigKeys() {
  static const auto* keys = new std::map<std::string, std::set<std::string>>{
      {"",
       {"models", "aggregator", "pipelines", "default_pipeline", "routes", "presets", "limits",
        "tls", "store"}},
      {"models.NAME", {"endpoint", "upstream", "fallbacks", "price", "capabilities"}},
      {"models.NAME.upstream",
       {"base_url", "model", "api_key_env", "ca_file", "connect_timeout_seconds",
        "first_token_timeout_seconds", "idle_timeout_seconds", "total_timeout_seconds",
        "max_attempts", "max_inflight", "continuation", "api", "api_version", "reasoning"}},
      {"models.NAME.upstream.reasoning", {"effort", "budget_tokens", "include_text"}},
      {"models.NAME.price", {"input_per_million", "output_per_million"}},
      {"aggregator", {"endpoint"}},
      {"pipelines.NAME",
       {"layers", "steps", "aggregator", "aggregator_fallbacks", "temperature", "max_tokens",
        "top_p", "policy", "streaming", "early_stop"}},
      {"pipelines.NAME.layers[i][j]", {"model", "samples", "temperatures"}},
      {"pipelines.NAME.policy",
       {"min_proposals", "straggler_grace_seconds", "straggler_grace_factor",
        "layer_deadline_share"}},
      {"pipelines.NAME.streaming", {"mode", "first_chunk_tokens", "growth", "max_steps"}},
      {"pipelines.NAME.early_stop", {"similarity", "min_answers", "then"}},
      {"pipelines.NAME.steps[i].propose", {"models", "prompt_file"}},
      {"pipelines.NAME.steps[i].dropout", {"rate", "min_keep"}},
      {"pipelines.NAME.steps[i].rank", {"model", "keep", "prompt_file"}},
      {"pipelines.NAME.steps[i].judge", {"model", "prompt_file"}},
      {"pipelines.NAME.steps[i].aggregate", {"model", "fallbacks"}},
      {"pipelines.NAME.steps[i].vote", {"normalize"}},
      {"presets.NAME", {"description", "max_proposers", "policy", "streaming", "early_stop"}},
      {"routes.NAME", {"rules", "classifier", "default_pipeline"}},
      {"routes.NAME.rules[i]",
       {"pipeline", "min_chars", "max_chars", "contains", "keys", "tools", "images"}},
      {"routes.NAME.classifier", {"model", "labels", "instruction", "timeout_seconds"}},
      {"limits",
       {"max_request_bytes", "max_messages", "max_models_per_layer", "max_layers",
        "max_upstream_calls", "max_answer_bytes"}},
      {"tls", {"ca_file", "cert_file", "key_file", "refresh_seconds"}},
      {"store", {"redis", "password_env", "timeout_seconds", "failure"}},
  };
  return *keys;
}

namespace {

// The keys a mapping takes (ConfigKeys); every caller names a section there.
const std::set<std::string>& Keys(const std::string& section) { return ConfigKeys().at(section); }

// Carries the file name so every error can say where it is.
class Reader {
 public:
  explicit Reader(absl::string_view source) : source_(source) {}

  absl::Status Error(const YAML::Node& node, absl::string_view what) const {
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) return absl::InvalidArgumentError(absl::StrCat(source_, ": ", what));
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", mark.line + 1, ":", mark.column + 1, ": ", what));
  }

  absl::Status ExpectMap(const YAML::Node& node, absl::string_view path) const {
    if (!node.IsMap()) return Error(node, absl::StrCat(path, " must be a mapping"));
    return absl::OkStatus();
  }

  // Unknown keys are errors, so a typo never silently falls back to a default.
  absl::Status CheckKeys(const YAML::Node& node, absl::string_view path,
                         const std::set<std::string>& allowed) const {
    for (const auto& kv : node) {
      std::string key = kv.first.as<std::string>();
      if (allowed.count(key) == 0) {
        return Error(kv.first, absl::StrCat("unknown key '", key, "' in ", path,
                                            " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const YAML::Node& node, absl::string_view path) const {
    if (!node.IsScalar()) return Error(node, absl::StrCat(path, " must be a string"));
    std::string value = node.as<std::string>();
    if (value.empty()) return Error(node, absl::StrCat(path, " must not be empty"));
    return value;
  }

  // A scalar of type T (a number or an integer: `kind`) in [min, max].
  template <typename T>
  absl::StatusOr<T> Ranged(const YAML::Node& node, absl::string_view path, absl::string_view kind,
                           T min, T max) const {
    T value;
    if (!node.IsScalar() || !YAML::convert<T>::decode(node, value)) {
      return Error(node, absl::StrCat(path, " must be ", kind));
    }
    if (value < min || value > max) {
      return Error(node, absl::StrCat(path, " must be in [", min, ", ", max, "], got ", value));
    }
    return value;
  }

  absl::StatusOr<double> Number(const YAML::Node& node, absl::string_view path, double min,
                                double max) const {
    return Ranged<double>(node, path, "a number", min, max);
  }

  absl::StatusOr<int> Int(const YAML::Node& node, absl::string_view path, int min) const {
    int value;
    if (!node.IsScalar() || !YAML::convert<int>::decode(node, value)) {
      return Error(node, absl::StrCat(path, " must be an integer"));
    }
    if (value < min) return Error(node, absl::StrCat(path, " must be >= ", min));
    return value;
  }

  absl::StatusOr<bool> Bool(const YAML::Node& node, absl::string_view path) const {
    bool value;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
      return Error(node, absl::StrCat(path, " must be true or false"));
    }
    return value;
  }

  absl::StatusOr<int64_t> Int64(const YAML::Node& node, absl::string_view path, int64_t min,
                                int64_t max) const {
    return Ranged<int64_t>(node, path, "an integer", min, max);
  }

  absl::StatusOr<absl::Duration> Seconds(const YAML::Node& node, absl::string_view path) const {
    MOA_ASSIGN_OR_RETURN(double s, Number(node, path, 0.001, 86400));
    return absl::Seconds(s);
  }

 private:
  std::string source_;
};

absl::StatusOr<UpstreamConfig> ParseUpstream(const Reader& r, const YAML::Node& node,
                                             const std::string& model_name,
                                             const std::string& path) {
  MOA_RETURN_IF_ERROR(r.ExpectMap(node, path));
  MOA_RETURN_IF_ERROR(r.CheckKeys(node, path, Keys("models.NAME.upstream")));
  UpstreamConfig u;
  if (!node["base_url"]) return r.Error(node, absl::StrCat(path, ".base_url is required"));
  MOA_ASSIGN_OR_RETURN(u.base_url, r.String(node["base_url"], path + ".base_url"));
  u.model = model_name;
  if (node["model"]) {
    MOA_ASSIGN_OR_RETURN(u.model, r.String(node["model"], path + ".model"));
  }
  if (node["api_key_env"]) {
    MOA_ASSIGN_OR_RETURN(u.api_key_env, r.String(node["api_key_env"], path + ".api_key_env"));
  }
  auto seconds = [&](const char* key, std::optional<absl::Duration>& out) -> absl::Status {
    if (!node[key]) return absl::OkStatus();
    MOA_ASSIGN_OR_RETURN(out, r.Seconds(node[key], absl::StrCat(path, ".", key)));
    return absl::OkStatus();
  };
  MOA_RETURN_IF_ERROR(seconds("connect_timeout_seconds", u.connect_timeout));
  MOA_RETURN_IF_ERROR(seconds("first_token_timeout_seconds", u.first_token_timeout));
  MOA_RETURN_IF_ERROR(seconds("idle_timeout_seconds", u.idle_timeout));
  MOA_RETURN_IF_ERROR(seconds("total_timeout_seconds", u.total_timeout));
  if (node["max_attempts"]) {
    MOA_ASSIGN_OR_RETURN(u.max_attempts, r.Int(node["max_attempts"], path + ".max_attempts", 1));
  }
  if (node["max_inflight"]) {
    MOA_ASSIGN_OR_RETURN(u.max_inflight, r.Int(node["max_inflight"], path + ".max_inflight", 1));
  }
  if (node["ca_file"]) {
    MOA_ASSIGN_OR_RETURN(u.ca_file, r.String(node["ca_file"], path + ".ca_file"));
  }
  if (node["api"]) {
    MOA_ASSIGN_OR_RETURN(u.api, r.String(node["api"], path + ".api"));
    if (u.api != "openai" && u.api != "azure" && u.api != "anthropic" && u.api != "gemini") {
      return r.Error(node["api"],
                     absl::StrCat(path, ".api must be openai, azure, anthropic or gemini"));
    }
  }
  if (node["api_version"]) {
    MOA_ASSIGN_OR_RETURN(u.api_version, r.String(node["api_version"], path + ".api_version"));
  }
  if ((u.api == "azure") != !u.api_version.empty()) {
    return r.Error(node,
                   absl::StrCat(path, u.api == "azure" ? ".api_version is required with api: azure"
                                                       : ".api_version goes only with api: azure"));
  }
  if (node["continuation"]) {
    MOA_ASSIGN_OR_RETURN(u.continuation, r.String(node["continuation"], path + ".continuation"));
    if (u.continuation != "prefill" && u.continuation != "vllm" &&
        u.continuation != "instruction") {
      return r.Error(node["continuation"],
                     absl::StrCat(path, ".continuation must be prefill, vllm or instruction"));
    }
    // vLLM's flags exist only in its OpenAI API; Gemini has no prefill (a
    // trailing model turn is not continued).
    if (u.continuation == "vllm" && u.api != "openai") {
      return r.Error(node["continuation"],
                     absl::StrCat(path, ".continuation vllm is for openai upstreams (vLLM)"));
    }
    if (u.continuation == "prefill" && u.api == "gemini") {
      return r.Error(node["continuation"],
                     absl::StrCat(path,
                                  ".continuation prefill: the Gemini API cannot continue "
                                  "a model turn; use instruction"));
    }
  }
  if (const YAML::Node reasoning = node["reasoning"]) {
    const std::string rpath = path + ".reasoning";
    MOA_RETURN_IF_ERROR(r.ExpectMap(reasoning, rpath));
    MOA_RETURN_IF_ERROR(r.CheckKeys(reasoning, rpath, Keys("models.NAME.upstream.reasoning")));
    const bool budget_api = u.api == "anthropic" || u.api == "gemini";
    if (reasoning["effort"]) {
      if (budget_api) {
        return r.Error(reasoning["effort"],
                       absl::StrCat(rpath, ".effort is for openai and azure; an ", u.api,
                                    " upstream takes budget_tokens"));
      }
      MOA_ASSIGN_OR_RETURN(u.reasoning_effort, r.String(reasoning["effort"], rpath + ".effort"));
      if (u.reasoning_effort != "minimal" && u.reasoning_effort != "low" &&
          u.reasoning_effort != "medium" && u.reasoning_effort != "high") {
        return r.Error(reasoning["effort"],
                       absl::StrCat(rpath, ".effort must be minimal, low, medium or high"));
      }
    }
    if (reasoning["budget_tokens"]) {
      if (!budget_api) {
        return r.Error(reasoning["budget_tokens"],
                       absl::StrCat(rpath, ".budget_tokens is for anthropic and gemini; an ", u.api,
                                    " upstream takes effort"));
      }
      // Anthropic's smallest budget is 1024; Gemini's 0 turns thinking
      // off and -1 lets the model decide.
      MOA_ASSIGN_OR_RETURN(u.reasoning_budget_tokens,
                           r.Int(reasoning["budget_tokens"], rpath + ".budget_tokens",
                                 u.api == "anthropic" ? 1024 : -1));
    }
    if (reasoning["include_text"]) {
      MOA_ASSIGN_OR_RETURN(u.reasoning_include_text,
                           r.Bool(reasoning["include_text"], rpath + ".include_text"));
    }
  }
  return u;
}

absl::StatusOr<Limits> ParseLimits(const Reader& r, const YAML::Node& node) {
  MOA_RETURN_IF_ERROR(r.ExpectMap(node, "limits"));
  MOA_RETURN_IF_ERROR(r.CheckKeys(node, "limits", Keys("limits")));
  Limits l;
  auto field = [&](const char* key, auto& out, int64_t min, int64_t max) -> absl::Status {
    if (!node[key]) return absl::OkStatus();
    MOA_ASSIGN_OR_RETURN(int64_t v, r.Int64(node[key], absl::StrCat("limits.", key), min, max));
    out = static_cast<std::remove_reference_t<decltype(out)>>(v);
    return absl::OkStatus();
  };
  MOA_RETURN_IF_ERROR(field("max_request_bytes", l.max_request_bytes, 1 << 10, 256 << 20));
  MOA_RETURN_IF_ERROR(field("max_messages", l.max_messages, 1, 100000));
  MOA_RETURN_IF_ERROR(field("max_models_per_layer", l.max_models_per_layer, 1, 256));
  MOA_RETURN_IF_ERROR(field("max_layers", l.max_layers, 1, 64));
  MOA_RETURN_IF_ERROR(field("max_upstream_calls", l.max_upstream_calls, 2, 100000));
  MOA_RETURN_IF_ERROR(field("max_answer_bytes", l.max_answer_bytes, 1 << 10, 64 << 20));
  // gRPC takes message limits as int; keep every derived one far below.
  if (l.HopMessageBytes() > (int64_t{1} << 30)) {
    return r.Error(node, absl::StrCat("limits: max_request_bytes + max_models_per_layer * "
                                      "max_answer_bytes must stay under 1 GiB, got ",
                                      l.HopMessageBytes(), " bytes"));
  }
  return l;
}

}  // namespace

const char* StepKindName(StepKind kind) {
  switch (kind) {
    case StepKind::kPropose:
      return "propose";
    case StepKind::kSynthesize:
      return "synthesize";
    case StepKind::kShuffle:
      return "shuffle";
    case StepKind::kDropout:
      return "dropout";
    case StepKind::kRank:
      return "rank";
    case StepKind::kJudge:
      return "judge";
    case StepKind::kRefine:
      return "refine";
    case StepKind::kAggregate:
      return "aggregate";
    case StepKind::kVote:
      return "vote";
  }
  return "unknown";
}

bool StepCallsModels(StepKind kind) {
  return kind != StepKind::kShuffle && kind != StepKind::kDropout && kind != StepKind::kVote;
}

bool StaircaseFits(const std::vector<StepConfig>& steps, StepKind terminal) {
  return terminal == StepKind::kAggregate && !steps.empty() &&
         (steps.back().kind == StepKind::kPropose || steps.back().kind == StepKind::kSynthesize);
}

std::vector<std::string> StepKindNames(const std::vector<StepConfig>& steps) {
  std::vector<std::string> names;
  for (const StepConfig& s : steps) names.push_back(StepKindName(s.kind));
  return names;
}

std::vector<std::vector<std::string>> SlotNames(const std::vector<std::vector<std::string>>& layers,
                                                const std::vector<std::vector<Sample>>& samples) {
  std::vector<std::vector<std::string>> names = layers;
  for (size_t i = 0; i < names.size() && i < samples.size(); ++i) {
    for (size_t j = 0; j < names[i].size() && j < samples[i].size(); ++j) {
      if (samples[i][j].index > 0)
        names[i][j] = absl::StrCat(names[i][j], "#", samples[i][j].index);
    }
  }
  return names;
}

namespace {

absl::StatusOr<LayerPolicy> ParseLayerPolicy(const Reader& r, const YAML::Node& node,
                                             const std::string& path) {
  MOA_RETURN_IF_ERROR(r.ExpectMap(node, path));
  MOA_RETURN_IF_ERROR(r.CheckKeys(node, path, Keys("pipelines.NAME.policy")));
  LayerPolicy p;
  if (const YAML::Node k = node["min_proposals"]) {
    if (k.IsScalar() && k.Scalar() == "all") {
      p.min_proposals = std::numeric_limits<int>::max();
    } else {
      MOA_ASSIGN_OR_RETURN(p.min_proposals, r.Int(k, path + ".min_proposals", 1));
    }
  }
  if (const YAML::Node g = node["straggler_grace_seconds"]) {
    MOA_ASSIGN_OR_RETURN(double s, r.Number(g, path + ".straggler_grace_seconds", 0, 86400));
    p.straggler_grace = absl::Seconds(s);
  }
  if (const YAML::Node f = node["straggler_grace_factor"]) {
    MOA_ASSIGN_OR_RETURN(p.straggler_grace_factor,
                         r.Number(f, path + ".straggler_grace_factor", 0, 1000));
  }
  if (const YAML::Node d = node["layer_deadline_share"]) {
    MOA_ASSIGN_OR_RETURN(p.layer_deadline_share,
                         r.Number(d, path + ".layer_deadline_share", 0.01, 1));
  }
  return p;
}

// `staircase` / `normal`, or a map with `mode` and the chunk schedule.
absl::StatusOr<StreamingConfig> ParseStreaming(const Reader& r, const YAML::Node& node,
                                               const std::string& path) {
  StreamingConfig c;
  auto mode = [&](const YAML::Node& m, const std::string& mpath) -> absl::Status {
    MOA_ASSIGN_OR_RETURN(std::string name, r.String(m, mpath));
    if (name == "staircase") {
      c.mode = StreamingConfig::Mode::kStaircase;
    } else if (name == "normal") {
      c.mode = StreamingConfig::Mode::kNormal;
    } else {
      return r.Error(m, absl::StrCat(mpath, " must be 'normal' or 'staircase', not '", name, "'"));
    }
    return absl::OkStatus();
  };
  if (node.IsScalar()) {
    MOA_RETURN_IF_ERROR(mode(node, path));
    return c;
  }
  MOA_RETURN_IF_ERROR(r.ExpectMap(node, path));
  MOA_RETURN_IF_ERROR(r.CheckKeys(node, path, Keys("pipelines.NAME.streaming")));
  if (const YAML::Node m = node["mode"]) MOA_RETURN_IF_ERROR(mode(m, path + ".mode"));
  if (const YAML::Node f = node["first_chunk_tokens"]) {
    MOA_ASSIGN_OR_RETURN(c.first_chunk_tokens,
                         r.Ranged<int>(f, path + ".first_chunk_tokens", "an integer", 1, 4096));
  }
  if (const YAML::Node g = node["growth"]) {
    MOA_ASSIGN_OR_RETURN(c.growth, r.Number(g, path + ".growth", 1, 8));
  }
  if (const YAML::Node n = node["max_steps"]) {
    MOA_ASSIGN_OR_RETURN(c.max_steps, r.Ranged<int>(n, path + ".max_steps", "an integer", 2, 32));
  }
  return c;
}

// A list of model names or {model, samples, temperatures} entries (Self-MoA)
// at `path`: the slots of one layer or step.
absl::Status ParseModelList(const Reader& r, const YAML::Node& list, const std::string& path,
                            const ClusterConfig& cfg, std::vector<std::string>* models,
                            std::vector<Sample>* samples) {
  if (!list.IsSequence() || list.size() == 0) {
    return r.Error(list, absl::StrCat(path, " must be a non-empty list of model names"));
  }
  for (size_t j = 0; j < list.size(); ++j) {
    const std::string entry_path = absl::StrCat(path, "[", j, "]");
    // A model name, or {model: X, samples: N, temperatures: [...]} (Self-MoA).
    const YAML::Node model_node = list[j].IsMap() ? list[j]["model"] : list[j];
    if (list[j].IsMap()) {
      MOA_RETURN_IF_ERROR(r.CheckKeys(list[j], entry_path, Keys("pipelines.NAME.layers[i][j]")));
      if (!model_node) return r.Error(list[j], entry_path + ".model is required");
    }
    MOA_ASSIGN_OR_RETURN(std::string m, r.String(model_node, entry_path));
    if (cfg.FindModel(m) == nullptr) {
      return r.Error(model_node, absl::StrCat(path, " names model '", m,
                                              "', which is not defined under models"));
    }
    if (!list[j].IsMap()) {
      models->push_back(std::move(m));
      samples->push_back({});
      continue;
    }
    int count = 1;
    if (list[j]["samples"]) {
      MOA_ASSIGN_OR_RETURN(count, r.Int(list[j]["samples"], entry_path + ".samples", 1));
      // Checked before the samples are laid out: a huge count must not
      // allocate before the layer's size limit is looked at.
      if (count > cfg.limits.max_models_per_layer) {
        return r.Error(list[j]["samples"], absl::StrCat(entry_path, ".samples is ", count,
                                                        ", over limits.max_models_per_layer (",
                                                        cfg.limits.max_models_per_layer, ")"));
      }
    }
    std::vector<double> temperatures;
    if (const YAML::Node t = list[j]["temperatures"]) {
      if (!t.IsSequence() || static_cast<int>(t.size()) != count) {
        return r.Error(
            t, absl::StrCat(entry_path, ".temperatures must list one temperature per sample (",
                            count, ")"));
      }
      for (size_t k = 0; k < t.size(); ++k) {
        MOA_ASSIGN_OR_RETURN(
            double v, r.Number(t[k], absl::StrCat(entry_path, ".temperatures[", k, "]"), 0, 2));
        temperatures.push_back(v);
      }
    }
    for (int k = 1; k <= count; ++k) {
      models->push_back(m);
      Sample s;
      s.index = k;
      if (!temperatures.empty()) s.temperature = temperatures[static_cast<size_t>(k - 1)];
      samples->push_back(s);
    }
  }
  return absl::OkStatus();
}

// A model name at `path` that the config defines.
absl::StatusOr<std::string> ParseModelName(const Reader& r, const YAML::Node& node,
                                           const std::string& path, const ClusterConfig& cfg) {
  MOA_ASSIGN_OR_RETURN(std::string m, r.String(node, path));
  if (cfg.FindModel(m) == nullptr) {
    return r.Error(node,
                   absl::StrCat(path, " names model '", m, "', which is not defined under models"));
  }
  return m;
}

// Longest pipeline in steps, whatever the limits say: a config is bounded.
constexpr size_t kMaxSteps = 32;

// `steps:`: a list of step names (shuffle, vote) or one-key maps naming the
// step and holding its settings. The first step proposes; the last
// aggregates or votes.
absl::Status ParseSteps(const Reader& r, const YAML::Node& list, const std::string& path,
                        const ClusterConfig& cfg, PipelineConfig* p) {
  if (!list.IsSequence() || list.size() < 2) {
    return r.Error(list, absl::StrCat(path,
                                      " must be a list of at least two steps (propose, then "
                                      "aggregate or vote)"));
  }
  if (list.size() > kMaxSteps) {
    return r.Error(list, absl::StrCat(path, " has ", list.size(), " steps, over ", kMaxSteps));
  }
  static const std::map<std::string, StepKind> kKinds = {
      {"propose", StepKind::kPropose}, {"synthesize", StepKind::kSynthesize},
      {"shuffle", StepKind::kShuffle}, {"dropout", StepKind::kDropout},
      {"rank", StepKind::kRank},       {"judge", StepKind::kJudge},
      {"refine", StepKind::kRefine},   {"aggregate", StepKind::kAggregate},
      {"vote", StepKind::kVote}};
  std::string known;
  for (const auto& [name, kind] : kKinds) absl::StrAppend(&known, known.empty() ? "" : ", ", name);
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node item = list[i];
    std::string step_path = absl::StrCat(path, "[", i, "]");
    const bool one_key = item.IsMap() && item.size() == 1;
    if (!item.IsScalar() && !one_key) {
      return r.Error(item, absl::StrCat(step_path, " must be a step name or a one-key map ",
                                        "{step: settings}"));
    }
    if (one_key && !item.begin()->first.IsScalar()) {
      return r.Error(item, absl::StrCat(step_path, ": a step's name must be a plain word"));
    }
    const std::string name = one_key ? item.begin()->first.Scalar() : item.Scalar();
    // The step's settings; null for a bare name.
    const YAML::Node body = one_key ? item.begin()->second : YAML::Node();
    auto found = kKinds.find(name);
    if (found == kKinds.end()) {
      return r.Error(item, absl::StrCat(step_path, ": unknown step '", name, "' (", known, ")"));
    }
    step_path = absl::StrCat(step_path, ".", name);
    const StepKind kind = found->second;
    const bool first = i == 0, last = i + 1 == list.size();
    if (first != (kind == StepKind::kPropose)) {
      return r.Error(item, absl::StrCat(step_path, ": a pipeline starts with propose, and only ",
                                        "its first step proposes"));
    }
    if (last != (kind == StepKind::kAggregate || kind == StepKind::kVote)) {
      return r.Error(item, absl::StrCat(step_path, ": a pipeline ends in aggregate or vote, and ",
                                        "only its last step does"));
    }
    StepConfig step;
    step.kind = kind;
    std::vector<std::string> models;
    std::vector<Sample> samples;
    auto settings = [&](const std::set<std::string>& keys) -> absl::Status {
      if (!body || body.IsNull()) return absl::OkStatus();
      MOA_RETURN_IF_ERROR(r.ExpectMap(body, step_path));
      return r.CheckKeys(body, step_path, keys);
    };
    auto prompt_file = [&]() -> absl::Status {
      if (body && body.IsMap() && body["prompt_file"]) {
        MOA_ASSIGN_OR_RETURN(step.prompt_file,
                             r.String(body["prompt_file"], step_path + ".prompt_file"));
      }
      return absl::OkStatus();
    };
    switch (kind) {
      case StepKind::kPropose:
      case StepKind::kSynthesize:
      case StepKind::kRefine: {
        // A list of models, or (refine) {models: [...], prompt_file}.
        // (YAML::Node's operator= writes through to the node it refers to:
        // each node here is made once, never reassigned.)
        const bool refine_map = kind == StepKind::kRefine && body && body.IsMap();
        const YAML::Node models_node = refine_map ? body["models"] : body;
        if (refine_map) {
          MOA_RETURN_IF_ERROR(settings(Keys("pipelines.NAME.steps[i].propose")));
          MOA_RETURN_IF_ERROR(prompt_file());
          if (!models_node) return r.Error(body, step_path + ".models is required");
          step_path += ".models";
        }
        if (!models_node) return r.Error(item, step_path + " needs a list of models");
        MOA_RETURN_IF_ERROR(ParseModelList(r, models_node, step_path, cfg, &models, &samples));
        if (static_cast<int>(models.size()) > cfg.limits.max_models_per_layer) {
          return r.Error(models_node, absl::StrCat(step_path, " has ", models.size(),
                                                   " models, over limits.max_models_per_layer (",
                                                   cfg.limits.max_models_per_layer, ")"));
        }
        break;
      }
      case StepKind::kShuffle:
        if (body && !body.IsNull()) return r.Error(body, step_path + " takes no settings");
        break;
      case StepKind::kDropout: {
        MOA_RETURN_IF_ERROR(settings(Keys("pipelines.NAME.steps[i].dropout")));
        if (!body || !body["rate"]) return r.Error(item, step_path + ".rate is required");
        MOA_ASSIGN_OR_RETURN(step.rate, r.Number(body["rate"], step_path + ".rate", 0, 1));
        if (body["min_keep"]) {
          MOA_ASSIGN_OR_RETURN(
              step.min_keep, r.Ranged<int>(body["min_keep"], step_path + ".min_keep", "an integer",
                                           1, cfg.limits.max_models_per_layer));
        }
        break;
      }
      case StepKind::kRank:
      case StepKind::kJudge: {
        MOA_RETURN_IF_ERROR(
            settings(Keys(kind == StepKind::kRank ? "pipelines.NAME.steps[i].rank"
                                                  : "pipelines.NAME.steps[i].judge")));
        if (!body || !body["model"]) return r.Error(item, step_path + ".model is required");
        MOA_ASSIGN_OR_RETURN(std::string m,
                             ParseModelName(r, body["model"], step_path + ".model", cfg));
        models.push_back(std::move(m));
        samples.push_back({});
        if (kind == StepKind::kRank) {
          if (!body["keep"]) return r.Error(body, step_path + ".keep is required");
          MOA_ASSIGN_OR_RETURN(step.keep,
                               r.Ranged<int>(body["keep"], step_path + ".keep", "an integer", 1,
                                             cfg.limits.max_models_per_layer));
        }
        MOA_RETURN_IF_ERROR(prompt_file());
        break;
      }
      case StepKind::kAggregate: {
        // A model name, or {model, fallbacks}.
        const YAML::Node model_node = body && body.IsMap() ? body["model"] : body;
        if (body && body.IsMap()) {
          MOA_RETURN_IF_ERROR(settings(Keys("pipelines.NAME.steps[i].aggregate")));
          if (!model_node) return r.Error(body, step_path + ".model is required");
          if (const YAML::Node f = body["fallbacks"]) {
            if (!f.IsSequence()) return r.Error(f, step_path + ".fallbacks must be a list");
            for (size_t k = 0; k < f.size(); ++k) {
              MOA_ASSIGN_OR_RETURN(
                  std::string m,
                  ParseModelName(r, f[k], absl::StrCat(step_path, ".fallbacks[", k, "]"), cfg));
              p->aggregator_fallbacks.push_back(std::move(m));
            }
          }
        }
        if (!model_node) return r.Error(item, step_path + " needs its model");
        MOA_ASSIGN_OR_RETURN(
            p->aggregator,
            ParseModelName(r, model_node, body.IsMap() ? step_path + ".model" : step_path, cfg));
        p->terminal = kind;
        continue;
      }
      case StepKind::kVote: {
        MOA_RETURN_IF_ERROR(settings(Keys("pipelines.NAME.steps[i].vote")));
        if (body && body.IsMap() && body["normalize"]) {
          bool normalize;
          if (!body["normalize"].IsScalar() ||
              !YAML::convert<bool>::decode(body["normalize"], normalize)) {
            return r.Error(body["normalize"], step_path + ".normalize must be true or false");
          }
          step.normalize = normalize;
        }
        p->terminal = kind;
        p->vote_normalize = step.normalize;
        continue;
      }
    }
    p->steps.push_back(std::move(step));
    p->layers.push_back(std::move(models));
    p->samples.push_back(std::move(samples));
  }
  return absl::OkStatus();
}

// `early_stop:` of a pipeline or a preset: a map, `{}` for the defaults.
absl::StatusOr<EarlyStopConfig> ParseEarlyStop(const Reader& r, const YAML::Node& e,
                                               const std::string& epath) {
  MOA_RETURN_IF_ERROR(r.ExpectMap(e, epath));
  MOA_RETURN_IF_ERROR(r.CheckKeys(e, epath, Keys("pipelines.NAME.early_stop")));
  EarlyStopConfig es;
  if (e["similarity"]) {
    MOA_ASSIGN_OR_RETURN(es.similarity, r.Number(e["similarity"], epath + ".similarity", 0.5, 1));
  }
  if (e["min_answers"]) {
    MOA_ASSIGN_OR_RETURN(es.min_answers, r.Ranged<int>(e["min_answers"], epath + ".min_answers",
                                                       "an integer", 2, 64));
  }
  if (e["then"]) {
    MOA_ASSIGN_OR_RETURN(std::string then, r.String(e["then"], epath + ".then"));
    if (then == "aggregate") {
      es.then = EarlyStopConfig::Then::kAggregate;
    } else if (then != "answer") {
      return r.Error(e["then"], epath + ".then must be answer or aggregate");
    }
  }
  return es;
}

absl::StatusOr<PipelineConfig> ParsePipeline(const Reader& r, const YAML::Node& node,
                                             const std::string& name, const ClusterConfig& cfg) {
  std::string path = absl::StrCat("pipelines.", name);
  MOA_RETURN_IF_ERROR(r.ExpectMap(node, path));
  MOA_RETURN_IF_ERROR(r.CheckKeys(node, path, Keys("pipelines.NAME")));
  PipelineConfig p;
  p.name = name;
  const YAML::Node steps = node["steps"];
  const YAML::Node layers = node["layers"];
  if (steps) {
    if (layers || node["aggregator"] || node["aggregator_fallbacks"]) {
      return r.Error(node, absl::StrCat(path, " has steps: (which name the aggregator) and ",
                                        "layers:/aggregator:; use one form"));
    }
    MOA_RETURN_IF_ERROR(ParseSteps(r, steps, path + ".steps", cfg, &p));
  } else {
    if (!layers || !layers.IsSequence() || layers.size() == 0) {
      return r.Error(layers ? layers : node,
                     absl::StrCat(path, ".layers must be a non-empty list of model lists"));
    }
    for (size_t i = 0; i < layers.size(); ++i) {
      std::vector<std::string> models;
      std::vector<Sample> samples;
      MOA_RETURN_IF_ERROR(ParseModelList(r, layers[i], absl::StrCat(path, ".layers[", i, "]"), cfg,
                                         &models, &samples));
      StepConfig step;
      step.kind = i == 0 ? StepKind::kPropose : StepKind::kSynthesize;
      p.steps.push_back(step);
      p.layers.push_back(std::move(models));
      p.samples.push_back(std::move(samples));
    }
  }
  const Limits& limits = cfg.limits;
  const YAML::Node where = steps ? steps : layers;
  const char* what = steps ? ".steps" : ".layers";
  int call_steps = 0;
  int calls = p.terminal == StepKind::kAggregate ? 1 : 0;
  for (size_t i = 0; i < p.layers.size(); ++i) {
    calls += static_cast<int>(p.layers[i].size());
    call_steps += StepCallsModels(p.steps[i].kind) ? 1 : 0;
    if (static_cast<int>(p.layers[i].size()) > limits.max_models_per_layer) {
      return r.Error(where, absl::StrCat(path, what, "[", i, "] has ", p.layers[i].size(),
                                         " models, over limits.max_models_per_layer (",
                                         limits.max_models_per_layer, ")"));
    }
  }
  if (call_steps > limits.max_layers) {
    return r.Error(where, absl::StrCat(path, what, " has ", call_steps,
                                       steps ? " steps that call models" : " layers",
                                       ", over limits.max_layers (", limits.max_layers, ")"));
  }
  if (calls > limits.max_upstream_calls) {
    return r.Error(where, absl::StrCat(path, " makes ", calls,
                                       " upstream calls per request, over "
                                       "limits.max_upstream_calls (",
                                       limits.max_upstream_calls, ")"));
  }
  if (!steps) {
    if (!node["aggregator"]) return r.Error(node, absl::StrCat(path, ".aggregator is required"));
    MOA_ASSIGN_OR_RETURN(p.aggregator,
                         ParseModelName(r, node["aggregator"], path + ".aggregator", cfg));
  }
  if (node["temperature"]) {
    MOA_ASSIGN_OR_RETURN(p.temperature, r.Number(node["temperature"], path + ".temperature", 0, 2));
  }
  if (node["max_tokens"]) {
    MOA_ASSIGN_OR_RETURN(p.max_tokens, r.Int(node["max_tokens"], path + ".max_tokens", 1));
  }
  if (node["top_p"]) {
    MOA_ASSIGN_OR_RETURN(p.top_p, r.Number(node["top_p"], path + ".top_p", 1e-9, 1));
  }
  if (const YAML::Node fallbacks = node["aggregator_fallbacks"]) {
    const std::string fpath = path + ".aggregator_fallbacks";
    if (!fallbacks.IsSequence()) return r.Error(fallbacks, fpath + " must be a list of models");
    for (size_t i = 0; i < fallbacks.size(); ++i) {
      MOA_ASSIGN_OR_RETURN(std::string m, r.String(fallbacks[i], absl::StrCat(fpath, "[", i, "]")));
      if (cfg.FindModel(m) == nullptr) {
        return r.Error(fallbacks[i], absl::StrCat(fpath, " names model '", m,
                                                  "', which is not defined under models"));
      }
      p.aggregator_fallbacks.push_back(std::move(m));
    }
  }
  if (node["policy"]) {
    MOA_ASSIGN_OR_RETURN(p.policy, ParseLayerPolicy(r, node["policy"], path + ".policy"));
  }
  if (node["streaming"]) {
    MOA_ASSIGN_OR_RETURN(p.streaming, ParseStreaming(r, node["streaming"], path + ".streaming"));
    if (p.streaming.mode == StreamingConfig::Mode::kStaircase &&
        !StaircaseFits(p.steps, p.terminal)) {
      return r.Error(node["streaming"],
                     absl::StrCat(path, ".streaming: staircase needs the step before aggregate to ",
                                  "be propose or synthesize (it feeds their growing texts)"));
    }
  }
  if (const YAML::Node e = node["early_stop"]) {
    const std::string epath = path + ".early_stop";
    MOA_ASSIGN_OR_RETURN(p.early_stop, ParseEarlyStop(r, e, epath));
    if (p.streaming.mode == StreamingConfig::Mode::kStaircase) {
      return r.Error(e, absl::StrCat(epath, ": staircase streaming starts the answer before a ",
                                     "layer ends, so it cannot stop on the layer's agreement"));
    }
  }
  return p;
}

absl::StatusOr<PresetConfig> ParsePreset(const Reader& r, const YAML::Node& node,
                                         const std::string& name) {
  const std::string path = "presets." + name;
  MOA_RETURN_IF_ERROR(r.ExpectMap(node, path));
  MOA_RETURN_IF_ERROR(r.CheckKeys(node, path, Keys("presets.NAME")));
  PresetConfig p;
  p.name = name;
  if (node["description"]) {
    MOA_ASSIGN_OR_RETURN(p.description, r.String(node["description"], path + ".description"));
    if (p.description.size() > 200) {
      return r.Error(node["description"], path + ".description is at most 200 bytes");
    }
  }
  if (node["max_proposers"]) {
    MOA_ASSIGN_OR_RETURN(
        p.max_proposers,
        r.Ranged<int>(node["max_proposers"], path + ".max_proposers", "an integer", 1, 1024));
  }
  if (node["policy"]) {
    MOA_ASSIGN_OR_RETURN(p.policy, ParseLayerPolicy(r, node["policy"], path + ".policy"));
  }
  if (node["streaming"]) {
    MOA_ASSIGN_OR_RETURN(p.streaming, ParseStreaming(r, node["streaming"], path + ".streaming"));
  }
  if (const YAML::Node e = node["early_stop"]) {
    if (e.IsScalar() && e.Scalar() == "off") {
      p.early_stop.emplace(std::nullopt);
    } else {
      MOA_ASSIGN_OR_RETURN(EarlyStopConfig es, ParseEarlyStop(r, e, path + ".early_stop"));
      p.early_stop.emplace(es);
      if (p.streaming.mode == StreamingConfig::Mode::kStaircase) {
        return r.Error(e, absl::StrCat(path, ".early_stop: staircase streaming starts the answer ",
                                       "before a layer ends, so it cannot stop on the layer's "
                                       "agreement"));
      }
    }
  }
  return p;
}

// A classifier label: what a model can be asked to answer with one word.
bool IsLabel(const std::string& s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

absl::StatusOr<RouteRule> ParseRouteRule(const Reader& r, const YAML::Node& node,
                                         const std::string& path, const ClusterConfig& cfg) {
  MOA_RETURN_IF_ERROR(r.ExpectMap(node, path));
  MOA_RETURN_IF_ERROR(r.CheckKeys(node, path, Keys("routes.NAME.rules[i]")));
  RouteRule rule;
  if (!node["pipeline"]) return r.Error(node, path + ".pipeline is required");
  MOA_ASSIGN_OR_RETURN(rule.pipeline, r.String(node["pipeline"], path + ".pipeline"));
  if (cfg.FindPipeline(rule.pipeline) == nullptr) {
    return r.Error(node["pipeline"], absl::StrCat(path, ".pipeline names '", rule.pipeline,
                                                  "', which is not defined under pipelines"));
  }
  constexpr int64_t kMaxChars = int64_t{1} << 40;
  if (node["min_chars"]) {
    MOA_ASSIGN_OR_RETURN(rule.min_chars,
                         r.Int64(node["min_chars"], path + ".min_chars", 0, kMaxChars));
  }
  if (node["max_chars"]) {
    MOA_ASSIGN_OR_RETURN(rule.max_chars,
                         r.Int64(node["max_chars"], path + ".max_chars", 0, kMaxChars));
  }
  auto strings = [&](const char* key, std::vector<std::string>& out) -> absl::Status {
    const YAML::Node list = node[key];
    if (!list) return absl::OkStatus();
    const std::string lpath = absl::StrCat(path, ".", key);
    if (!list.IsSequence() || list.size() == 0 || list.size() > 256) {
      return r.Error(list, lpath + " must be a list of 1 to 256 strings");
    }
    for (size_t i = 0; i < list.size(); ++i) {
      MOA_ASSIGN_OR_RETURN(std::string v, r.String(list[i], absl::StrCat(lpath, "[", i, "]")));
      if (v.size() > 1024) return r.Error(list[i], lpath + " entries are at most 1024 bytes");
      out.push_back(std::move(v));
    }
    return absl::OkStatus();
  };
  MOA_RETURN_IF_ERROR(strings("contains", rule.contains));
  MOA_RETURN_IF_ERROR(strings("keys", rule.keys));
  if (node["tools"]) {
    MOA_ASSIGN_OR_RETURN(rule.tools, r.Bool(node["tools"], path + ".tools"));
  }
  if (node["images"]) {
    MOA_ASSIGN_OR_RETURN(rule.images, r.Bool(node["images"], path + ".images"));
  }
  if (!rule.min_chars && !rule.max_chars && rule.contains.empty() && rule.keys.empty() &&
      !rule.tools && !rule.images) {
    return r.Error(node, absl::StrCat(path, " has no condition (min_chars, max_chars, contains, ",
                                      "keys, tools, images); the route's default_pipeline is ",
                                      "what runs when no rule holds"));
  }
  return rule;
}

absl::StatusOr<RouteConfig> ParseRoute(const Reader& r, const YAML::Node& node,
                                       const std::string& name, const ClusterConfig& cfg) {
  const std::string path = "routes." + name;
  MOA_RETURN_IF_ERROR(r.ExpectMap(node, path));
  MOA_RETURN_IF_ERROR(r.CheckKeys(node, path, Keys("routes.NAME")));
  RouteConfig route;
  route.name = name;
  if (cfg.FindPipeline(name) != nullptr) {
    return r.Error(node, absl::StrCat(path, ": '", name, "' is also a pipeline's name; a ",
                                      "request names one or the other"));
  }
  if (const YAML::Node rules = node["rules"]) {
    if (!rules.IsSequence() || rules.size() > 256) {
      return r.Error(rules, path + ".rules must be a list of at most 256 rules");
    }
    for (size_t i = 0; i < rules.size(); ++i) {
      MOA_ASSIGN_OR_RETURN(RouteRule rule,
                           ParseRouteRule(r, rules[i], absl::StrCat(path, ".rules[", i, "]"), cfg));
      route.rules.push_back(std::move(rule));
    }
  }
  if (const YAML::Node c = node["classifier"]) {
    const std::string cpath = path + ".classifier";
    MOA_RETURN_IF_ERROR(r.ExpectMap(c, cpath));
    MOA_RETURN_IF_ERROR(r.CheckKeys(c, cpath, Keys("routes.NAME.classifier")));
    RouteClassifier classifier;
    if (!c["model"]) return r.Error(c, cpath + ".model is required");
    MOA_ASSIGN_OR_RETURN(classifier.model, r.String(c["model"], cpath + ".model"));
    if (cfg.FindModel(classifier.model) == nullptr) {
      return r.Error(c["model"], absl::StrCat(cpath, ".model names '", classifier.model,
                                              "', which is not defined under models"));
    }
    const YAML::Node labels = c["labels"];
    if (!labels || !labels.IsMap() || labels.size() < 1 || labels.size() > 64) {
      return r.Error(labels ? labels : c,
                     cpath + ".labels must map 1 to 64 labels to pipelines, e.g. {hard: deep}");
    }
    for (const auto& kv : labels) {
      const std::string label = kv.first.as<std::string>();
      const std::string lpath = absl::StrCat(cpath, ".labels.", label.substr(0, 64));
      if (!IsLabel(label)) {
        return r.Error(kv.first, lpath +
                                     ": a label is a lowercase word of at most 32 bytes "
                                     "(a-z, 0-9, _ and -)");
      }
      MOA_ASSIGN_OR_RETURN(std::string pipeline, r.String(kv.second, lpath));
      if (cfg.FindPipeline(pipeline) == nullptr) {
        return r.Error(kv.second, absl::StrCat(lpath, " names '", pipeline,
                                               "', which is not defined under pipelines"));
      }
      classifier.labels.emplace_back(label, std::move(pipeline));
    }
    if (c["instruction"]) {
      MOA_ASSIGN_OR_RETURN(classifier.instruction,
                           r.String(c["instruction"], cpath + ".instruction"));
      if (classifier.instruction.size() > 16384) {
        return r.Error(c["instruction"], cpath + ".instruction is at most 16 KiB");
      }
    }
    if (c["timeout_seconds"]) {
      MOA_ASSIGN_OR_RETURN(double t,
                           r.Number(c["timeout_seconds"], cpath + ".timeout_seconds", 0.01, 60));
      classifier.timeout = absl::Seconds(t);
    }
    route.classifier = std::move(classifier);
  }
  if (const YAML::Node def = node["default_pipeline"]) {
    MOA_ASSIGN_OR_RETURN(route.default_pipeline, r.String(def, path + ".default_pipeline"));
    if (cfg.FindPipeline(route.default_pipeline) == nullptr) {
      return r.Error(def, absl::StrCat(path, ".default_pipeline names '", route.default_pipeline,
                                       "', which is not defined under pipelines"));
    }
  } else {
    route.default_pipeline = cfg.default_pipeline;
  }
  if (route.rules.empty() && !route.classifier) {
    return r.Error(node, path +
                             " has neither rules nor a classifier: it would always run its "
                             "default_pipeline, which clients can name directly");
  }
  return route;
}

absl::StatusOr<ClusterConfig> Parse(const Reader& r, const YAML::Node& root) {
  MOA_RETURN_IF_ERROR(r.ExpectMap(root, "the config"));
  MOA_RETURN_IF_ERROR(r.CheckKeys(root, "the config", Keys("")));
  ClusterConfig cfg;
  if (const YAML::Node store = root["store"]) {
    MOA_RETURN_IF_ERROR(r.ExpectMap(store, "store"));
    MOA_RETURN_IF_ERROR(r.CheckKeys(store, "store", Keys("store")));
    StoreConfig s;
    if (!store["redis"]) return r.Error(store, "store.redis (host:port) is required");
    MOA_ASSIGN_OR_RETURN(std::string address, r.String(store["redis"], "store.redis"));
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(address.substr(colon + 1), &s.port) || s.port < 1 || s.port > 65535) {
      return r.Error(store["redis"], "store.redis must be host:port, e.g. 127.0.0.1:6379");
    }
    s.host = address.substr(0, colon);
    if (store["password_env"]) {
      MOA_ASSIGN_OR_RETURN(s.password_env, r.String(store["password_env"], "store.password_env"));
    }
    if (store["timeout_seconds"]) {
      MOA_ASSIGN_OR_RETURN(double t,
                           r.Number(store["timeout_seconds"], "store.timeout_seconds", 0.001, 5));
      s.timeout = absl::Seconds(t);
    }
    if (store["failure"]) {
      MOA_ASSIGN_OR_RETURN(std::string failure, r.String(store["failure"], "store.failure"));
      if (failure != "open" && failure != "closed") {
        return r.Error(store["failure"], "store.failure must be open or closed");
      }
      s.fail_closed = failure == "closed";
    }
    cfg.store = s;
  }
  if (const YAML::Node tls = root["tls"]) {
    MOA_RETURN_IF_ERROR(r.ExpectMap(tls, "tls"));
    MOA_RETURN_IF_ERROR(r.CheckKeys(tls, "tls", Keys("tls")));
    TlsConfig t;
    for (auto [field, out] : {std::pair<const char*, std::string*>{"ca_file", &t.ca_file},
                              {"cert_file", &t.cert_file},
                              {"key_file", &t.key_file}}) {
      if (!tls[field]) return r.Error(tls, absl::StrCat("tls.", field, " is required"));
      MOA_ASSIGN_OR_RETURN(*out, r.String(tls[field], absl::StrCat("tls.", field)));
    }
    if (tls["refresh_seconds"]) {
      MOA_ASSIGN_OR_RETURN(
          t.refresh_seconds,
          r.Ranged<int>(tls["refresh_seconds"], "tls.refresh_seconds", "an integer", 1, 86400));
    }
    cfg.tls = t;
  }
  if (const YAML::Node limits = root["limits"]) {
    MOA_ASSIGN_OR_RETURN(cfg.limits, ParseLimits(r, limits));
  }
  const YAML::Node models = root["models"];
  if (!models || !models.IsMap() || models.size() == 0) {
    return r.Error(models ? models : root, "models must be a non-empty mapping of model names");
  }
  if (models.size() > kMaxModels) {
    return r.Error(models, absl::StrCat("models defines ", models.size(),
                                        " models; a config may define at most ", kMaxModels));
  }
  // Each model's fallbacks node, read once: yaml-cpp looks a map key up by
  // walking the map, so models[name] per model made the parse quadratic
  // (40,000 models took 23 s).
  std::vector<YAML::Node> fallback_nodes;
  for (const auto& kv : models) {
    ModelConfig m;
    m.name = kv.first.as<std::string>();
    std::string path = absl::StrCat("models.", m.name);
    MOA_RETURN_IF_ERROR(r.ExpectMap(kv.second, path));
    MOA_RETURN_IF_ERROR(r.CheckKeys(kv.second, path, Keys("models.NAME")));
    if (!kv.second["endpoint"]) return r.Error(kv.second, path + ".endpoint is required");
    MOA_ASSIGN_OR_RETURN(m.endpoint, r.String(kv.second["endpoint"], path + ".endpoint"));
    if (kv.second["upstream"]) {
      MOA_ASSIGN_OR_RETURN(m.upstream,
                           ParseUpstream(r, kv.second["upstream"], m.name, path + ".upstream"));
    }
    if (const YAML::Node price = kv.second["price"]) {
      const std::string ppath = path + ".price";
      MOA_RETURN_IF_ERROR(r.ExpectMap(price, ppath));
      MOA_RETURN_IF_ERROR(r.CheckKeys(price, ppath, Keys("models.NAME.price")));
      Price p;
      if (price["input_per_million"]) {
        MOA_ASSIGN_OR_RETURN(p.input_per_million, r.Number(price["input_per_million"],
                                                           ppath + ".input_per_million", 0, 1e6));
      }
      if (price["output_per_million"]) {
        MOA_ASSIGN_OR_RETURN(p.output_per_million, r.Number(price["output_per_million"],
                                                            ppath + ".output_per_million", 0, 1e6));
      }
      m.price = p;
    }
    if (const YAML::Node caps = kv.second["capabilities"]) {
      const std::string cpath = path + ".capabilities";
      if (!caps.IsSequence()) return r.Error(caps, cpath + " must be a list (layer_tools, vision)");
      for (size_t i = 0; i < caps.size(); ++i) {
        MOA_ASSIGN_OR_RETURN(std::string cap, r.String(caps[i], absl::StrCat(cpath, "[", i, "]")));
        if (cap == "layer_tools") {
          m.layer_tools = true;
        } else if (cap == "vision") {
          m.vision = true;
        } else {
          return r.Error(caps[i], absl::StrCat(cpath, "[", i, "]: '", cap.substr(0, 64),
                                               "' is not a capability (layer_tools, vision)"));
        }
      }
    }
    cfg.models.push_back(std::move(m));
    fallback_nodes.push_back(kv.second["fallbacks"]);
  }
  // Fallbacks may name models defined further down.
  for (size_t mi = 0; mi < cfg.models.size(); ++mi) {
    ModelConfig& m = cfg.models[mi];
    const YAML::Node& fallbacks = fallback_nodes[mi];
    if (!fallbacks) continue;
    const std::string fpath = absl::StrCat("models.", m.name, ".fallbacks");
    if (!fallbacks.IsSequence()) return r.Error(fallbacks, fpath + " must be a list of models");
    for (size_t i = 0; i < fallbacks.size(); ++i) {
      MOA_ASSIGN_OR_RETURN(std::string f, r.String(fallbacks[i], absl::StrCat(fpath, "[", i, "]")));
      if (cfg.FindModel(f) == nullptr || f == m.name) {
        return r.Error(fallbacks[i], absl::StrCat(fpath, " names model '", f,
                                                  "', which is not another model under models"));
      }
      m.fallbacks.push_back(std::move(f));
    }
  }
  if (const YAML::Node agg = root["aggregator"]) {
    MOA_RETURN_IF_ERROR(r.ExpectMap(agg, "aggregator"));
    MOA_RETURN_IF_ERROR(r.CheckKeys(agg, "aggregator", Keys("aggregator")));
    if (!agg["endpoint"]) return r.Error(agg, "aggregator.endpoint is required");
    MOA_ASSIGN_OR_RETURN(cfg.aggregator_endpoint, r.String(agg["endpoint"], "aggregator.endpoint"));
  }
  if (const YAML::Node pipelines = root["pipelines"]) {
    MOA_RETURN_IF_ERROR(r.ExpectMap(pipelines, "pipelines"));
    for (const auto& kv : pipelines) {
      MOA_ASSIGN_OR_RETURN(PipelineConfig p,
                           ParsePipeline(r, kv.second, kv.first.as<std::string>(), cfg));
      cfg.pipelines.push_back(std::move(p));
    }
  }
  if (const YAML::Node def = root["default_pipeline"]) {
    MOA_ASSIGN_OR_RETURN(cfg.default_pipeline, r.String(def, "default_pipeline"));
    if (cfg.FindPipeline(cfg.default_pipeline) == nullptr) {
      return r.Error(def, absl::StrCat("default_pipeline names pipeline '", cfg.default_pipeline,
                                       "', which is not defined under pipelines"));
    }
  } else if (!cfg.pipelines.empty()) {
    cfg.default_pipeline = cfg.pipelines.front().name;
  }
  if (const YAML::Node presets = root["presets"]) {
    MOA_RETURN_IF_ERROR(r.ExpectMap(presets, "presets"));
    if (presets.size() > 64) return r.Error(presets, "presets holds at most 64 presets");
    for (const auto& kv : presets) {
      MOA_ASSIGN_OR_RETURN(PresetConfig preset,
                           ParsePreset(r, kv.second, kv.first.as<std::string>()));
      cfg.presets.push_back(std::move(preset));
    }
  }
  if (const YAML::Node routes = root["routes"]) {
    MOA_RETURN_IF_ERROR(r.ExpectMap(routes, "routes"));
    if (cfg.pipelines.empty()) return r.Error(routes, "routes need pipelines to route to");
    for (const auto& kv : routes) {
      MOA_ASSIGN_OR_RETURN(RouteConfig route,
                           ParseRoute(r, kv.second, kv.first.as<std::string>(), cfg));
      cfg.routes.push_back(std::move(route));
    }
  }
  return cfg;
}

}  // namespace

const ModelConfig* ClusterConfig::FindModel(absl::string_view name) const {
  for (const ModelConfig& m : models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const PipelineConfig* ClusterConfig::FindPipeline(absl::string_view name) const {
  for (const PipelineConfig& p : pipelines) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const RouteConfig* ClusterConfig::FindRoute(absl::string_view name) const {
  for (const RouteConfig& r : routes) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

const PresetConfig* ClusterConfig::FindPreset(absl::string_view name) const {
  for (const PresetConfig& p : presets) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

absl::StatusOr<ClusterConfig> ParseClusterConfig(absl::string_view yaml, absl::string_view source) {
  if (yaml.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": the config is ", yaml.size(), " bytes; it may be at most ",
                     kMaxConfigBytes >> 20, " MiB (yaml-cpp holds ~50 bytes per byte read)"));
  }
  Reader reader(source);
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    return Parse(reader, root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
}

absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  // One byte more than the bound is enough to refuse a larger file.
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return ParseClusterConfig(text, path);
}

absl::Status LoadStepPrompts(const std::string& path, ClusterConfig& cfg) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (PipelineConfig& p : cfg.pipelines) {
    for (size_t i = 0; i < p.steps.size(); ++i) {
      StepConfig& step = p.steps[i];
      if (step.prompt_file.empty()) continue;
      std::filesystem::path file(step.prompt_file);
      if (file.is_relative()) file = dir / file;
      std::ifstream prompt_in(file);
      std::stringstream prompt;
      prompt << prompt_in.rdbuf();
      step.prompt = prompt.str();
      while (!step.prompt.empty() && (step.prompt.back() == '\n' || step.prompt.back() == '\r')) {
        step.prompt.pop_back();
      }
      const std::string where = absl::StrCat(path, ": pipelines.", p.name, ".steps[", i, "].",
                                             StepKindName(step.kind), ".prompt_file ");
      if (!prompt_in)
        return absl::NotFoundError(absl::StrCat(where, "cannot read ", file.string()));
      // The hop's message limits leave 1 MiB of room for instructions.
      if (step.prompt.empty() || step.prompt.size() > (256 << 10)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, file.string(), " must hold 1 byte to 256 KiB of text"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace moa::config
