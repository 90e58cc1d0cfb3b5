// Resolves a Chat request's pipeline (by name, default, or inline spec)
// against the cluster config.
#ifndef MOA_SERVICES_ORCHESTRATOR_PIPELINE_H_
#define MOA_SERVICES_ORCHESTRATOR_PIPELINE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/config/cluster_config.h"
#include "lib/llm/types.h"
#include "moa/v1/orchestrator.pb.h"

namespace moa::orchestrator {

struct ResolvedPipeline {
  std::string name;  // Config name, or "inline" for a spec.
  // As PipelineConfig: every step but the terminal one, each with its
  // `layers` entry (an inline spec: propose, then synthesize per round).
  std::vector<config::StepConfig> steps;
  config::StepKind terminal = config::StepKind::kAggregate;
  bool vote_normalize = true;
  std::vector<std::vector<std::string>> layers;
  // As PipelineConfig::samples (Self-MoA); empty for an inline spec.
  std::vector<std::vector<config::Sample>> samples;
  std::string aggregator;
  // Tried in order when the final answer fails before its first byte.
  std::vector<std::string> aggregator_fallbacks;
  // Each layer model's fallbacks (models.<m>.fallbacks), asked in order in
  // its slot when it fails before any text.
  std::map<std::string, std::vector<std::string>> fallbacks;
  llm::SamplingParams params;         // Pipeline defaults overridden by the request's.
  config::LayerPolicy policy;         // The pipeline's (none for an inline spec).
  config::StreamingConfig streaming;  // Likewise.
  std::optional<config::EarlyStopConfig> early_stop;  // Likewise.
  std::string preset;                                 // The preset applied ("" for none).
  // The slots the preset's max_proposers left out (Summary.skipped_calls).
  std::vector<std::string> trimmed;
};

// NOT_FOUND for an unknown pipeline name (listing the known ones);
// INVALID_ARGUMENT naming the field for a bad spec (no models, unknown
// model, rounds outside 1..limits.max_layers (unset means 1), more models
// or upstream calls than the limits allow) or bad params.
absl::StatusOr<ResolvedPipeline> ResolvePipeline(const v1::ChatRequest& request,
                                                 const config::ClusterConfig& config);

// Applies a preset (config::PresetConfig) to a resolved pipeline: each
// propose, synthesize and refine step keeps its first max_proposers models;
// its policy and streaming fields replace the pipeline's; its early_stop
// replaces the pipeline's. INVALID_ARGUMENT naming the preset when the
// result cannot run (staircase where the step before aggregate cannot feed
// it).
absl::Status ApplyPreset(const config::PresetConfig& preset, ResolvedPipeline* pipeline);
// What a preset sets, in words ("max_proposers 2, early_stop"): its
// description when it has one.
std::string DescribePreset(const config::PresetConfig& preset);

// Pipeline defaults with the request's params on top.
v1::SamplingParams MergeParams(const config::PipelineConfig* pipeline,
                               const v1::SamplingParams& request);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_PIPELINE_H_
