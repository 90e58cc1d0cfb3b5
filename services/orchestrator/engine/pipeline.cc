#include "services/orchestrator/engine/pipeline.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/wire/wire.h"
#include "services/orchestrator/engine/layer_policy.h"

namespace moa::orchestrator {

v1::SamplingParams MergeParams(const config::PipelineConfig* pipeline,
                               const v1::SamplingParams& request) {
  v1::SamplingParams p;
  if (pipeline != nullptr) {
    if (pipeline->temperature) p.set_temperature(*pipeline->temperature);
    if (pipeline->max_tokens) p.set_max_tokens(*pipeline->max_tokens);
    if (pipeline->top_p) p.set_top_p(*pipeline->top_p);
  }
  if (request.has_temperature()) p.set_temperature(request.temperature());
  if (request.has_max_tokens()) p.set_max_tokens(request.max_tokens());
  if (request.has_top_p()) p.set_top_p(request.top_p());
  if (request.has_seed()) p.set_seed(request.seed());
  *p.mutable_stop() = request.stop();
  return p;
}

namespace {

void AddFallbacks(const config::ClusterConfig& config, ResolvedPipeline* out) {
  for (const auto& layer : out->layers) {
    for (const std::string& m : layer) {
      const config::ModelConfig* model = config.FindModel(m);
      if (model != nullptr && !model->fallbacks.empty()) out->fallbacks[m] = model->fallbacks;
    }
  }
}

}  // namespace

absl::StatusOr<ResolvedPipeline> ResolvePipeline(const v1::ChatRequest& request,
                                                 const config::ClusterConfig& config) {
  ResolvedPipeline out;
  if (request.has_spec()) {
    const v1::PipelineSpec& spec = request.spec();
    const config::Limits& limits = config.limits;
    if (spec.reference_models().empty()) {
      return absl::InvalidArgumentError("spec.reference_models: at least one model is required");
    }
    if (spec.reference_models_size() > limits.max_models_per_layer) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.reference_models: ", spec.reference_models_size(),
          " models, over limits.max_models_per_layer (", limits.max_models_per_layer, ")"));
    }
    std::vector<std::string> models;
    for (int i = 0; i < spec.reference_models_size(); ++i) {
      const std::string& m = spec.reference_models(i);
      if (config.FindModel(m) == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("spec.reference_models[", i, "]: model '", m,
                                                       "' is not defined in the cluster config"));
      }
      models.push_back(m);
    }
    if (spec.aggregator().empty()) {
      return absl::InvalidArgumentError("spec.aggregator: the aggregator model is required");
    }
    if (config.FindModel(spec.aggregator()) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("spec.aggregator: model '", spec.aggregator(),
                                                     "' is not defined in the cluster config"));
    }
    const int rounds = spec.has_rounds() ? spec.rounds() : 1;
    if (rounds < 1 || rounds > limits.max_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.rounds must be in 1..", limits.max_layers,
                       " (limits.max_layers; unset means 1), got ", rounds));
    }
    if (int64_t calls = int64_t{rounds} * spec.reference_models_size() + 1;
        calls > limits.max_upstream_calls) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.rounds: ", rounds, " rounds of ", spec.reference_models_size(),
                       " models make ", calls, " upstream calls, over limits.max_upstream_calls (",
                       limits.max_upstream_calls, ")"));
    }
    out.name = "inline";
    out.layers.assign(rounds, models);
    for (int i = 0; i < rounds; ++i) {
      config::StepConfig step;
      step.kind = i == 0 ? config::StepKind::kPropose : config::StepKind::kSynthesize;
      out.steps.push_back(step);
    }
    AddFallbacks(config, &out);
    out.aggregator = spec.aggregator();
    absl::StatusOr<llm::SamplingParams> params =
        wire::ToParams(MergeParams(nullptr, request.params()));
    if (!params.ok()) return params.status();
    out.params = *std::move(params);
    return out;
  }
  std::string name = request.pipeline().empty() ? config.default_pipeline : request.pipeline();
  const config::PipelineConfig* p = config.FindPipeline(name);
  if (p == nullptr) {
    std::vector<std::string> known;
    for (const auto& q : config.pipelines) known.push_back(q.name);
    if (name.empty()) {
      return absl::NotFoundError("no pipeline given and the cluster config has no pipelines");
    }
    return absl::NotFoundError(absl::StrCat(
        "pipeline '", name, "' is not defined; available: ", absl::StrJoin(known, ", ")));
  }
  out.name = p->name;
  out.steps = p->steps;
  out.terminal = p->terminal;
  out.vote_normalize = p->vote_normalize;
  out.early_stop = p->early_stop;
  out.layers = p->layers;
  out.samples = p->samples;
  out.aggregator = p->aggregator;
  out.aggregator_fallbacks = p->aggregator_fallbacks;
  out.policy = p->policy;
  out.streaming = p->streaming;
  absl::StatusOr<llm::SamplingParams> params = wire::ToParams(MergeParams(p, request.params()));
  if (!params.ok()) return params.status();
  out.params = *std::move(params);
  AddFallbacks(config, &out);
  return out;
}

absl::Status ApplyPreset(const config::PresetConfig& preset, ResolvedPipeline* p) {
  if (preset.max_proposers) {
    const auto n = static_cast<size_t>(*preset.max_proposers);
    for (size_t i = 0; i < p->steps.size() && i < p->layers.size(); ++i) {
      const config::StepKind kind = p->steps[i].kind;
      if (kind != config::StepKind::kPropose && kind != config::StepKind::kSynthesize &&
          kind != config::StepKind::kRefine) {
        continue;
      }
      if (p->layers[i].size() > n) {
        p->trimmed.insert(p->trimmed.end(), p->layers[i].begin() + static_cast<ptrdiff_t>(n),
                          p->layers[i].end());
        p->layers[i].resize(n);
      }
      if (i < p->samples.size() && p->samples[i].size() > n) p->samples[i].resize(n);
    }
  }
  p->policy = MergePolicy(p->policy, preset.policy);
  const config::StreamingConfig& st = preset.streaming;
  if (st.mode) p->streaming.mode = st.mode;
  if (st.first_chunk_tokens) p->streaming.first_chunk_tokens = st.first_chunk_tokens;
  if (st.growth) p->streaming.growth = st.growth;
  if (st.max_steps) p->streaming.max_steps = st.max_steps;
  if (preset.early_stop) p->early_stop = *preset.early_stop;
  if (p->streaming.mode == config::StreamingConfig::Mode::kStaircase) {
    if (!config::StaircaseFits(p->steps, p->terminal)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "preset: '", preset.name, "' streams in staircase steps, which pipeline '", p->name,
          "' cannot (the step before its answer is not propose or synthesize); ask it without "
          "the preset"));
    }
    // Staircase starts the answer before a layer ends: nothing to stop on.
    if (!preset.early_stop) p->early_stop.reset();
  }
  p->preset = preset.name;
  return absl::OkStatus();
}

std::string DescribePreset(const config::PresetConfig& preset) {
  if (!preset.description.empty()) return preset.description;
  std::vector<std::string> parts;
  if (preset.max_proposers) parts.push_back(absl::StrCat("max_proposers ", *preset.max_proposers));
  const config::LayerPolicy& pol = preset.policy;
  if (pol.min_proposals) {
    parts.push_back(*pol.min_proposals == std::numeric_limits<int>::max()
                        ? std::string("min_proposals all")
                        : absl::StrCat("min_proposals ", *pol.min_proposals));
  }
  if (pol.straggler_grace) {
    parts.push_back(absl::StrCat("straggler_grace ", absl::FormatDuration(*pol.straggler_grace)));
  }
  if (preset.streaming.mode == config::StreamingConfig::Mode::kStaircase) {
    parts.push_back("staircase");
  }
  if (preset.early_stop) parts.push_back(*preset.early_stop ? "early_stop" : "early_stop off");
  return parts.empty() ? "the pipeline as configured" : absl::StrJoin(parts, ", ");
}

}  // namespace moa::orchestrator
