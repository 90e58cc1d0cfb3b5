// Pipeline resolution: by name, the default, an inline spec, and the limits.
#include "services/orchestrator/engine/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moa::orchestrator {
namespace {

using ::testing::HasSubstr;

config::ClusterConfig Config() {
  return *config::ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\n  b: {endpoint: 'x:2'}\n  z: {endpoint: 'x:3'}\n"
      "aggregator: {endpoint: 'x:4'}\n"
      "pipelines:\n"
      "  moa: {layers: [[a, b], [a]], aggregator: z, temperature: 0.5, max_tokens: 100}\n"
      "  solo: {layers: [[b]], aggregator: z}\n"
      "default_pipeline: moa\n"
      "limits: {max_layers: 3, max_models_per_layer: 2, max_upstream_calls: 5}\n",
      "test");
}

TEST(PipelineTest, ResolvesTheDefaultANamedPipelineAndMergesParams) {
  config::ClusterConfig config = Config();
  v1::ChatRequest request;
  request.mutable_params()->set_max_tokens(7);
  auto p = ResolvePipeline(request, config);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "moa");
  EXPECT_EQ(p->layers, (std::vector<std::vector<std::string>>{{"a", "b"}, {"a"}}));
  EXPECT_EQ(p->aggregator, "z");
  EXPECT_EQ(p->params.temperature, 0.5) << "the pipeline's default";
  EXPECT_EQ(p->params.max_tokens, 7) << "the request's override";
  request.set_pipeline("solo");
  p = ResolvePipeline(request, config);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->name, "solo");
  EXPECT_FALSE(p->params.temperature);
}

TEST(PipelineTest, AnUnknownNameIsNotFoundListingTheKnownOnes) {
  v1::ChatRequest request;
  request.set_pipeline("nope");
  auto p = ResolvePipeline(request, Config());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(p.status().message(), HasSubstr("available: moa, solo"));
}

TEST(PipelineTest, AnInlineSpecRunsItsRoundsWithinTheLimits) {
  config::ClusterConfig config = Config();
  v1::ChatRequest request;
  request.mutable_spec()->add_reference_models("a");
  request.mutable_spec()->add_reference_models("b");
  request.mutable_spec()->set_aggregator("z");
  auto p = ResolvePipeline(request, config);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "inline");
  EXPECT_EQ(p->layers.size(), 1u) << "unset rounds means 1";
  request.mutable_spec()->set_rounds(2);
  p = ResolvePipeline(request, config);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->layers.size(), 2u);

  struct Case {
    std::function<void(v1::PipelineSpec&)> change;
    const char* message;
  };
  const Case cases[] = {
      {[](v1::PipelineSpec& s) { s.set_rounds(0); }, "spec.rounds must be in 1..3"},
      {[](v1::PipelineSpec& s) { s.set_rounds(4); }, "spec.rounds must be in 1..3"},
      {[](v1::PipelineSpec& s) { s.set_rounds(3); }, "limits.max_upstream_calls (5)"},
      {[](v1::PipelineSpec& s) { s.add_reference_models("z"); }, "limits.max_models_per_layer"},
      {[](v1::PipelineSpec& s) { s.set_reference_models(0, "ghost"); }, "spec.reference_models[0]"},
      {[](v1::PipelineSpec& s) { s.set_aggregator(""); }, "spec.aggregator"},
      {[](v1::PipelineSpec& s) { s.clear_reference_models(); }, "spec.reference_models"},
  };
  for (const Case& c : cases) {
    v1::ChatRequest bad = request;
    c.change(*bad.mutable_spec());
    auto r = ResolvePipeline(bad, config);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message));
  }
}

TEST(PipelineTest, BadParamsAreNamed) {
  v1::ChatRequest request;
  request.mutable_params()->set_top_p(2);
  auto p = ResolvePipeline(request, Config());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("params.top_p"));
}

}  // namespace
}  // namespace moa::orchestrator
