#include "services/orchestrator/engine/pipeline.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/wire/wire.h"

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

}  // namespace moa::orchestrator
