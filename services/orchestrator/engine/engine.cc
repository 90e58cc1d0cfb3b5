#include "services/orchestrator/engine/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/base/utf8.h"
#include "lib/wire/wire.h"
#include "services/orchestrator/engine/layer_policy.h"
#include "services/orchestrator/engine/pipeline.h"
#include "services/orchestrator/engine/route.h"

namespace moa::orchestrator {
namespace {

// Forwards a call's events and gives its admission slot back after the
// last one.
class SlotReleasingSink final : public MoaCallSink {
 public:
  SlotReleasingSink(std::shared_ptr<MoaCallSink> sink, Admission::Slot slot)
      : sink_(std::move(sink)), slot_(std::move(slot)) {}
  void OnEvent(v1::ChatEvent event) override { sink_->OnEvent(std::move(event)); }
  void OnFinish(absl::Status status) override {
    sink_->OnFinish(std::move(status));
    slot_.Release();
  }

 private:
  const std::shared_ptr<MoaCallSink> sink_;
  Admission::Slot slot_;
};

}  // namespace

absl::StatusOr<MoaCall::Options> PlanChat(const v1::ChatRequest& request,
                                          const config::ClusterConfig& config,
                                          const Caller& caller) {
  if (const config::RouteConfig* route = config.FindRoute(request.pipeline())) {
    return PlanRoute(*route, request, config, caller);
  }
  const config::Limits& limits = config.limits;
  if (int64_t size = static_cast<int64_t>(request.ByteSizeLong());
      size > limits.max_request_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("messages: the request is ", size,
                                                   " bytes, over limits.max_request_bytes (",
                                                   limits.max_request_bytes, ")"));
  }
  if (request.messages_size() > limits.max_messages) {
    return absl::InvalidArgumentError(absl::StrCat("messages: ", request.messages_size(),
                                                   " messages, over limits.max_messages (",
                                                   limits.max_messages, ")"));
  }
  MoaCall::Options options;
  // Params are checked before the pipeline is looked up, as one more field
  // of the request; the merged result is checked again in ResolvePipeline.
  if (auto params = wire::ToParams(request.params()); !params.ok()) return params.status();
  absl::StatusOr<std::vector<llm::Message>> conversation = wire::ToMessages(request.messages());
  if (!conversation.ok()) return conversation.status();
  options.conversation = *std::move(conversation);
  absl::StatusOr<ResolvedPipeline> pipeline = ResolvePipeline(request, config);
  if (!pipeline.ok()) return pipeline.status();
  options.pipeline = *std::move(pipeline);
  const bool preset_of_key = request.preset().empty();
  if (const std::string& name = preset_of_key ? caller.preset : request.preset(); !name.empty()) {
    const config::PresetConfig* preset = config.FindPreset(name);
    if (preset == nullptr) {
      std::vector<std::string> known;
      for (const config::PresetConfig& p : config.presets) known.push_back(p.name);
      return absl::InvalidArgumentError(absl::StrCat(
          "preset: ", preset_of_key ? "the key's preset '" : "'", Utf8Prefix(name, 64),
          "' is not defined; available: ", known.empty() ? "none" : absl::StrJoin(known, ", ")));
    }
    if (absl::Status s = ApplyPreset(*preset, &options.pipeline); !s.ok()) return s;
  }
  options.stream_proposals = request.stream_proposals();
  absl::StatusOr<config::LayerPolicy> policy = PolicyFromProto(request.policy());
  if (!policy.ok()) return policy.status();
  options.policy = MergePolicy(options.pipeline.policy, *policy);
  absl::StatusOr<config::StreamingConfig> streaming = StreamingFromProto(request.streaming());
  if (!streaming.ok()) return streaming.status();
  options.staircase = ResolveStaircase(options.pipeline.streaming, *streaming);
  if (options.staircase) {
    if (!config::StaircaseFits(options.pipeline.steps, options.pipeline.terminal)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "streaming: staircase needs the step before aggregate to be propose or synthesize; "
          "pipeline '",
          options.pipeline.name, "' ends in ",
          options.pipeline.steps.empty() ? ""
                                         : config::StepKindName(options.pipeline.steps.back().kind),
          " then ", config::StepKindName(options.pipeline.terminal)));
    }
  }
  options.step_seed =
      request.has_step_seed() ? std::optional<uint64_t>(request.step_seed()) : std::nullopt;
  auto format = AnswerFormat::FromProto(request.response_format());
  if (!format.ok()) return format.status();
  if (*format != nullptr) {
    // Checked whole, asked again when it fails: an answer that streams in
    // steps, or a vote's (one proposal as written), cannot be.
    if (options.staircase) {
      return absl::InvalidArgumentError(
          "response_format: a structured answer is checked whole, so it cannot stream in "
          "staircase steps; ask with streaming \"normal\"");
    }
    if (options.pipeline.terminal == config::StepKind::kVote) {
      return absl::InvalidArgumentError(absl::StrCat(
          "response_format: pipeline '", options.pipeline.name,
          "' ends in vote, whose answer is one proposal as written and cannot be asked again"));
    }
    options.answer_format = *std::move(format);
    // Every model reads the format first, in the system message.
    const std::string& instruction = options.answer_format->instruction();
    if (!options.conversation.empty() && options.conversation[0].role == llm::Role::kSystem) {
      absl::StrAppend(&options.conversation[0].content, "\n\n", instruction);
    } else {
      options.conversation.insert(options.conversation.begin(),
                                  llm::Message{llm::Role::kSystem, instruction});
    }
  }
  // An image needs a final step that sees it: the panel may read the text
  // only (its models are said in `accepted`), the answer's model may not.
  for (size_t i = 0; i < options.conversation.size(); ++i) {
    if (options.conversation[i].images.empty()) continue;
    if (options.pipeline.terminal == config::StepKind::kVote) break;
    const config::ModelConfig* final_model = config.FindModel(options.pipeline.aggregator);
    if (final_model == nullptr || !final_model->vision) {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "]: the message has images, and pipeline '",
                       options.pipeline.name, "' ends with model ", options.pipeline.aggregator,
                       ", which reads no images (its config has no capabilities: [vision])"));
    }
    break;
  }
  absl::StatusOr<llm::ToolOptions> tools = wire::ToTools(request.tools());
  if (!tools.ok()) return tools.status();
  if (!tools->empty()) {
    // The final answer may be tool calls: a whole call of one model.
    if (options.staircase) {
      return absl::InvalidArgumentError(
          "tools: an answer that may call tools is written by one call, so it cannot stream in "
          "staircase steps; ask with streaming \"normal\"");
    }
    if (options.pipeline.terminal == config::StepKind::kVote) {
      return absl::InvalidArgumentError(
          absl::StrCat("tools: pipeline '", options.pipeline.name,
                       "' ends in vote, which picks a proposal and cannot call tools"));
    }
    options.tools = *std::move(tools);
  }
  return options;
}

absl::StatusOr<MoaCall::Options> Engine::Plan(const v1::ChatRequest& request,
                                              absl::Time client_deadline,
                                              const Caller& caller) const {
  absl::StatusOr<MoaCall::Options> options = PlanChat(request, *config_, caller);
  if (!options.ok()) return options;
  options->deadline = std::min(client_deadline, env_.clock->Now() + options_.request_timeout);
  return options;
}

std::shared_ptr<RunningCall> Engine::Start(Admission::Slot slot, MoaCall::Options options,
                                           std::shared_ptr<MoaCallSink> sink) {
  auto releasing = std::make_shared<SlotReleasingSink>(std::move(sink), std::move(slot));
  std::shared_ptr<RunningCall> call;
  if (options.pending_route != nullptr) {
    call = StartRouted(std::move(options), env_, std::move(releasing));
  } else {
    call = MoaCall::Start(std::move(options), env_, std::move(releasing));
  }
  admission_->Track(call);
  return call;
}

}  // namespace moa::orchestrator
