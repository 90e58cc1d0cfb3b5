#include "lib/config/cluster_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "absl/strings/str_cat.h"

namespace moa::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kValid[] = R"(models:
  llama:
    endpoint: 127.0.0.1:50061
    upstream:
      base_url: https://api.together.xyz/v1
      model: meta-llama/Llama-3.3-70B-Instruct-Turbo
      api_key_env: TOGETHER_API_KEY
      first_token_timeout_seconds: 30
      max_attempts: 2
  qwen:
    endpoint: 127.0.0.1:50062
    upstream:
      base_url: http://127.0.0.1:8000/v1
aggregator:
  endpoint: 127.0.0.1:50070
pipelines:
  moa:
    layers:
      - [llama, qwen]
    aggregator: qwen
    temperature: 0.7
    max_tokens: 512
  deep:
    layers: [[llama, qwen], [llama, qwen]]
    aggregator: llama
default_pipeline: deep
)";

TEST(ClusterConfigTest, ParsesEveryField) {
  auto cfg = ParseClusterConfig(kValid, "cluster.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_EQ(cfg->models.size(), 2u);
  const ModelConfig* llama = cfg->FindModel("llama");
  ASSERT_NE(llama, nullptr);
  EXPECT_EQ(llama->endpoint, "127.0.0.1:50061");
  ASSERT_TRUE(llama->upstream);
  EXPECT_EQ(llama->upstream->model, "meta-llama/Llama-3.3-70B-Instruct-Turbo");
  EXPECT_EQ(llama->upstream->api_key_env, "TOGETHER_API_KEY");
  EXPECT_EQ(llama->upstream->first_token_timeout, absl::Seconds(30));
  EXPECT_EQ(llama->upstream->max_attempts, 2);
  EXPECT_EQ(cfg->FindModel("qwen")->upstream->model, "qwen") << "defaults to the cluster name";
  EXPECT_EQ(cfg->aggregator_endpoint, "127.0.0.1:50070");
  const PipelineConfig* moa = cfg->FindPipeline("moa");
  ASSERT_NE(moa, nullptr);
  EXPECT_THAT(moa->layers, ElementsAre(ElementsAre("llama", "qwen")));
  EXPECT_EQ(moa->aggregator, "qwen");
  EXPECT_EQ(moa->temperature, 0.7);
  EXPECT_EQ(moa->max_tokens, 512);
  EXPECT_EQ(cfg->FindPipeline("deep")->layers.size(), 2u);
  EXPECT_EQ(cfg->default_pipeline, "deep");
}

TEST(ClusterConfigTest, DefaultPipelineIsTheFirstWhenUnset) {
  auto cfg = ParseClusterConfig(R"(models: {a: {endpoint: "x:1"}}
pipelines:
  first: {layers: [[a]], aggregator: a}
  second: {layers: [[a]], aggregator: a}
)",
                                "c.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->default_pipeline, "first");
}

TEST(ClusterConfigTest, UnknownKeyIsAnErrorNamingFileLineAndKey) {
  auto cfg = ParseClusterConfig("models:\n  a:\n    endpoint: x:1\n    endpiont: y\n", "c.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cfg.status().message(), HasSubstr("c.yaml:4:5"));
  EXPECT_THAT(cfg.status().message(), HasSubstr("unknown key 'endpiont' in models.a"));
}

TEST(ClusterConfigTest, UndefinedModelInALayerIsAnErrorNamingIt) {
  auto cfg = ParseClusterConfig(R"(models: {a: {endpoint: "x:1"}}
pipelines:
  p:
    layers: [[a, ghost]]
    aggregator: a
)",
                                "c.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(cfg.status().message(), HasSubstr("c.yaml:4:"));
  EXPECT_THAT(cfg.status().message(), HasSubstr("pipelines.p.layers[0] names model 'ghost'"));
}

TEST(ClusterConfigTest, UndefinedAggregatorModelIsAnError) {
  auto cfg = ParseClusterConfig(R"(models: {a: {endpoint: "x:1"}}
pipelines:
  p: {layers: [[a]], aggregator: nobody}
)",
                                "c.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(cfg.status().message(), HasSubstr("pipelines.p.aggregator names model 'nobody'"));
}

TEST(ClusterConfigTest, EmptyLayerIsAnError) {
  auto cfg = ParseClusterConfig(R"(models: {a: {endpoint: "x:1"}}
pipelines:
  p: {layers: [[a], []], aggregator: a}
)",
                                "c.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(cfg.status().message(), HasSubstr("pipelines.p.layers[1] must be a non-empty list"));
}

TEST(ClusterConfigTest, MissingLayersIsAnError) {
  auto cfg = ParseClusterConfig("models: {a: {endpoint: 'x:1'}}\npipelines: {p: {aggregator: a}}\n",
                                "c.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(cfg.status().message(), HasSubstr("pipelines.p.layers must be a non-empty list"));
}

TEST(ClusterConfigTest, UnknownDefaultPipelineIsAnError) {
  auto cfg = ParseClusterConfig(R"(models: {a: {endpoint: "x:1"}}
pipelines: {p: {layers: [[a]], aggregator: a}}
default_pipeline: q
)",
                                "c.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(cfg.status().message(), HasSubstr("c.yaml:3:"));
  EXPECT_THAT(cfg.status().message(), HasSubstr("default_pipeline names pipeline 'q'"));
}

TEST(ClusterConfigTest, OutOfRangeSamplingDefaultIsAnError) {
  auto cfg = ParseClusterConfig(R"(models: {a: {endpoint: "x:1"}}
pipelines: {p: {layers: [[a]], aggregator: a, temperature: 3}}
)",
                                "c.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(cfg.status().message(), HasSubstr("pipelines.p.temperature must be in [0, 2]"));
}

TEST(ClusterConfigTest, MissingEndpointAndBadYamlAreErrors) {
  EXPECT_THAT(ParseClusterConfig("models: {a: {}}\n", "c.yaml").status().message(),
              HasSubstr("models.a.endpoint is required"));
  EXPECT_THAT(ParseClusterConfig("models: [unclosed\n", "c.yaml").status().message(),
              HasSubstr("c.yaml:"));
  EXPECT_EQ(LoadClusterConfig("/nonexistent/cluster.yaml").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ClusterConfigTest, LimitsHaveDocumentedDefaultsAndDeriveTheHopLimit) {
  auto cfg = ParseClusterConfig(kValid, "c.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->limits.max_request_bytes, 4 << 20);
  EXPECT_EQ(cfg->limits.max_messages, 512);
  EXPECT_EQ(cfg->limits.max_models_per_layer, 16);
  EXPECT_EQ(cfg->limits.max_layers, 8);
  EXPECT_EQ(cfg->limits.max_upstream_calls, 64);
  EXPECT_EQ(cfg->limits.max_answer_bytes, 1 << 20);
  // The conversation, one layer's answers as references, and the slack.
  EXPECT_EQ(cfg->limits.HopMessageBytes(), (4 << 20) + 17 * (1 << 20) + (1 << 20))
      << "16 references, a judge's analysis, the instruction's room";
}

TEST(ClusterConfigTest, LimitsAreReadAndPipelinesMustFitThem) {
  std::string yaml =
      std::string(kValid) +
      "limits: {max_request_bytes: 65536, max_answer_bytes: 4096, max_messages: 8}\n";
  auto cfg = ParseClusterConfig(yaml, "c.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->limits.max_request_bytes, 65536);
  EXPECT_EQ(cfg->limits.max_answer_bytes, 4096);
  EXPECT_EQ(cfg->limits.max_messages, 8);

  auto too_wide =
      ParseClusterConfig(std::string(kValid) + "limits: {max_models_per_layer: 1}\n", "c.yaml");
  ASSERT_FALSE(too_wide.ok());
  EXPECT_THAT(too_wide.status().message(), HasSubstr("over limits.max_models_per_layer (1)"));
  auto too_deep = ParseClusterConfig(std::string(kValid) + "limits: {max_layers: 1}\n", "c.yaml");
  ASSERT_FALSE(too_deep.ok());
  EXPECT_THAT(too_deep.status().message(), HasSubstr("over limits.max_layers (1)"));
  auto too_many =
      ParseClusterConfig(std::string(kValid) + "limits: {max_upstream_calls: 4}\n", "c.yaml");
  ASSERT_FALSE(too_many.ok());
  EXPECT_THAT(too_many.status().message(), HasSubstr("5 upstream calls"));
}

TEST(ClusterConfigTest, LimitsRejectUnknownKeysBadTypesAndRanges) {
  for (const char* bad :
       {"limits: {max_request: 5}\n", "limits: {max_messages: lots}\n",
        "limits: {max_messages: 0}\n", "limits: {max_answer_bytes: 1}\n", "limits: [1]\n",
        "limits: {max_request_bytes: 268435456, max_models_per_layer: 256, "
        "max_answer_bytes: 67108864}\n"}) {
    auto cfg = ParseClusterConfig(std::string(kValid) + bad, "c.yaml");
    EXPECT_FALSE(cfg.ok()) << bad;
    if (!cfg.ok()) {
      EXPECT_THAT(cfg.status().message(), HasSubstr("c.yaml:")) << bad;
    }
  }
}

TEST(ClusterConfigTest, HostileYamlIsAnErrorNotACrash) {
  for (std::string bad :
       {std::string(5000, '['), std::string("models: {[a]: 1}"),
        std::string("models:\n  ? [a, b]\n  : {endpoint: x}\n"), std::string("&a [*a]"),
        std::string("models: !!binary AAAA"), std::string("\xff\xfe: 1")}) {
    EXPECT_NO_THROW({
      auto cfg = ParseClusterConfig(bad, "c.yaml");
      EXPECT_FALSE(cfg.ok());
    });
  }
}

}  // namespace
}  // namespace moa::config

namespace moa::config {
namespace {

constexpr char kPolicyBase[] = R"(models:
  a: {endpoint: 'x:1'}
  b: {endpoint: 'x:2'}
aggregator: {endpoint: 'x:3'}
pipelines:
  moa:
    layers: [[a, b]]
    aggregator: a
)";

TEST(ClusterConfigTest, APipelinePolicyParsesAndAllMeansWaitForEveryModel) {
  auto cfg = ParseClusterConfig(absl::StrCat(kPolicyBase,
                                             "    policy: {min_proposals: all, "
                                             "straggler_grace_seconds: 2.5, "
                                             "straggler_grace_factor: 0.5, "
                                             "layer_deadline_share: 0.4}\n"),
                                "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const LayerPolicy& p = cfg->pipelines[0].policy;
  EXPECT_EQ(p.min_proposals, std::numeric_limits<int>::max());
  EXPECT_EQ(p.straggler_grace, absl::Milliseconds(2500));
  EXPECT_EQ(p.straggler_grace_factor, 0.5);
  EXPECT_EQ(p.layer_deadline_share, 0.4);
  auto plain = ParseClusterConfig(kPolicyBase, "test.yaml");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->pipelines[0].policy.min_proposals) << "unset: the engine's default";
}

TEST(ClusterConfigTest, StreamingIsAModeOrAModeWithItsSchedule) {
  auto scalar =
      ParseClusterConfig(absl::StrCat(kPolicyBase, "    streaming: staircase\n"), "test.yaml");
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_EQ(scalar->pipelines[0].streaming.mode, StreamingConfig::Mode::kStaircase);
  EXPECT_FALSE(scalar->pipelines[0].streaming.first_chunk_tokens);
  auto map = ParseClusterConfig(
      absl::StrCat(kPolicyBase,
                   "    streaming: {mode: staircase, first_chunk_tokens: 8, growth: 1.5, "
                   "max_steps: 4}\n"),
      "test.yaml");
  ASSERT_TRUE(map.ok()) << map.status();
  const StreamingConfig& s = map->pipelines[0].streaming;
  EXPECT_EQ(s.first_chunk_tokens, 8);
  EXPECT_EQ(s.growth, 1.5);
  EXPECT_EQ(s.max_steps, 4);
  auto plain = ParseClusterConfig(kPolicyBase, "test.yaml");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->pipelines[0].streaming.mode) << "unset: normal";
  const char* cases[][2] = {
      {"    streaming: stairs\n", "pipelines.moa.streaming must be 'normal' or 'staircase'"},
      {"    streaming: {mode: staircase, growth: 0.5}\n", "pipelines.moa.streaming.growth"},
      {"    streaming: {first_chunk_tokens: 0}\n", "pipelines.moa.streaming.first_chunk_tokens"},
      {"    streaming: {max_steps: 1}\n", "pipelines.moa.streaming.max_steps"},
      {"    streaming: {chunk: 3}\n", "chunk"},
      {"    streaming: [staircase]\n", "pipelines.moa.streaming"},
  };
  for (const auto& c : cases) {
    auto cfg = ParseClusterConfig(absl::StrCat(kPolicyBase, c[0]), "test.yaml");
    EXPECT_FALSE(cfg.ok()) << c[0];
    EXPECT_THAT(cfg.status().message(), ::testing::HasSubstr(c[1])) << c[0];
  }
}

TEST(ClusterConfigTest, AModelsPriceIsDollarsPerMillionTokens) {
  auto cfg = ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1', price: {input_per_million: 0.5, output_per_million: 2}}\n"
      "  b: {endpoint: 'x:2'}\naggregator: {endpoint: 'x:3'}\n"
      "pipelines:\n  moa: {layers: [[a, b]], aggregator: a}\n",
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const ModelConfig* a = cfg->FindModel("a");
  ASSERT_TRUE(a->price);
  EXPECT_DOUBLE_EQ(a->price->Cost(1'000'000, 0), 0.5);
  EXPECT_DOUBLE_EQ(a->price->Cost(2000, 500), 0.001 + 0.001);
  EXPECT_FALSE(cfg->FindModel("b")->price) << "no price: costs nothing";
  for (const char* bad : {"price: {input_per_million: -1}", "price: {per_token: 1}", "price: 3"}) {
    auto c = ParseClusterConfig(absl::StrCat("models:\n  a:\n    endpoint: 'x:1'\n    ", bad,
                                             "\naggregator: {endpoint: 'x:3'}\n"
                                             "pipelines:\n  moa: {layers: [[a]], aggregator: a}\n"),
                                "test.yaml");
    EXPECT_FALSE(c.ok()) << bad;
    EXPECT_THAT(c.status().message(), ::testing::HasSubstr("models.a.price")) << bad;
  }
}

TEST(ClusterConfigTest, ATlsSectionNamesItsThreeFilesAndARefresh) {
  auto cfg = ParseClusterConfig(
      absl::StrCat(kPolicyBase,
                   "tls: {ca_file: /t/ca.crt, cert_file: /t/tls.crt, key_file: /t/tls.key}\n"),
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_TRUE(cfg->tls);
  EXPECT_EQ(cfg->tls->ca_file, "/t/ca.crt");
  EXPECT_EQ(cfg->tls->key_file, "/t/tls.key");
  EXPECT_EQ(cfg->tls->refresh_seconds, 60);
  EXPECT_FALSE(ParseClusterConfig(kPolicyBase, "test.yaml")->tls) << "unset: plaintext";
  const char* cases[][2] = {
      {"tls: {ca_file: a, cert_file: b}\n", "tls.key_file is required"},
      {"tls: {ca_file: a, cert_file: b, key_file: c, refresh_seconds: 0}\n", "tls.refresh_seconds"},
      {"tls: {ca_file: a, cert_file: b, key_file: c, verify: false}\n", "verify"},
  };
  for (const auto& c : cases) {
    auto bad = ParseClusterConfig(absl::StrCat(kPolicyBase, c[0]), "test.yaml");
    EXPECT_FALSE(bad.ok()) << c[0];
    EXPECT_THAT(bad.status().message(), ::testing::HasSubstr(c[1])) << c[0];
  }
}

TEST(ClusterConfigTest, ABadPolicyNamesItsKey) {
  const char* cases[][2] = {
      {"    policy: {min_proposals: 0}\n", "pipelines.moa.policy.min_proposals"},
      {"    policy: {layer_deadline_share: 2}\n", "pipelines.moa.policy.layer_deadline_share"},
      {"    policy: {straggler_grace_seconds: -1}\n",
       "pipelines.moa.policy.straggler_grace_seconds"},
      {"    policy: {quorum: 2}\n", "quorum"},
  };
  for (const auto& c : cases) {
    auto cfg = ParseClusterConfig(absl::StrCat(kPolicyBase, c[0]), "test.yaml");
    EXPECT_FALSE(cfg.ok()) << c[0];
    EXPECT_THAT(cfg.status().message(), ::testing::HasSubstr(c[1])) << c[0];
  }
}

}  // namespace
}  // namespace moa::config

namespace moa::config {
namespace {

TEST(ClusterConfigTest, AModelsFallbacksAreOtherModelsOfTheCluster) {
  auto cfg = ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1', fallbacks: [b]}\n  b: {endpoint: 'x:2'}\n"
      "aggregator: {endpoint: 'x:3'}\npipelines:\n  moa: {layers: [[a]], aggregator: a}\n",
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_THAT(cfg->models[0].fallbacks, ::testing::ElementsAre("b"));
  auto self = ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1', fallbacks: [a]}\n"
      "aggregator: {endpoint: 'x:3'}\npipelines:\n  moa: {layers: [[a]], aggregator: a}\n",
      "test.yaml");
  EXPECT_THAT(self.status().message(), ::testing::HasSubstr("models.a.fallbacks names model 'a'"));
}

std::string ManyModels(size_t n) {
  std::string yaml = "models:\n";
  for (size_t i = 0; i < n; ++i) {
    absl::StrAppend(&yaml, "  m", i, ": {endpoint: 'x:1', fallbacks: [m", (i + 1) % n, "]}\n");
  }
  return yaml +
         "aggregator: {endpoint: 'x:3'}\npipelines:\n  p: {layers: [[m0]], aggregator: m1}\n";
}

// A config is bounded before it is parsed (400,000 models once took more
// than a minute and 2.6 GB in every binary): kMaxModels models parse, with
// fallbacks naming models further down; one more, or more than
// kMaxConfigBytes of text, is refused by name.
TEST(ClusterConfigTest, AConfigIsBoundedInModelsAndBytes) {
  auto most = ParseClusterConfig(ManyModels(kMaxModels), "big.yaml");
  ASSERT_TRUE(most.ok()) << most.status();
  EXPECT_EQ(most->models.size(), kMaxModels);
  EXPECT_THAT(most->models.back().fallbacks, ElementsAre("m0"));
  auto over = ParseClusterConfig(ManyModels(kMaxModels + 1), "big.yaml");
  EXPECT_THAT(over.status().message(),
              HasSubstr("models defines 4097 models; a config may define at most 4096"));
  std::string padded = ManyModels(2) + "# " + std::string(kMaxConfigBytes, 'x') + "\n";
  EXPECT_THAT(ParseClusterConfig(padded, "big.yaml").status().message(),
              HasSubstr("it may be at most 4 MiB"));
  const std::string path = ::testing::TempDir() + "/moa-big-config.yaml";
  std::ofstream(path) << padded;
  EXPECT_THAT(LoadClusterConfig(path).status().message(), HasSubstr("it may be at most 4 MiB"));
  std::filesystem::remove(path);
}

TEST(ClusterConfigTest, AggregatorFallbacksAreModelsOfTheCluster) {
  auto cfg = ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\n  b: {endpoint: 'x:2'}\naggregator: {endpoint: 'x:3'}\n"
      "pipelines:\n  moa: {layers: [[a]], aggregator: a, aggregator_fallbacks: [b]}\n",
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_THAT(cfg->pipelines[0].aggregator_fallbacks, ::testing::ElementsAre("b"));
  auto bad = ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\naggregator: {endpoint: 'x:3'}\n"
      "pipelines:\n  moa: {layers: [[a]], aggregator: a, aggregator_fallbacks: [ghost]}\n",
      "test.yaml");
  EXPECT_THAT(bad.status().message(),
              ::testing::HasSubstr("pipelines.moa.aggregator_fallbacks names model 'ghost'"));
}

}  // namespace
}  // namespace moa::config

namespace moa::config {
namespace {

TEST(ClusterConfigTest, ALayerMaySampleOneModelSeveralTimes) {
  auto cfg = ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\n  b: {endpoint: 'x:2'}\naggregator: {endpoint: 'x:3'}\n"
      "pipelines:\n  self:\n    layers: [[{model: a, samples: 3, temperatures: [0.2, 0.7, 1.0]}, "
      "b]]\n    aggregator: a\n",
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const PipelineConfig& p = cfg->pipelines[0];
  EXPECT_THAT(p.layers[0], ::testing::ElementsAre("a", "a", "a", "b"));
  ASSERT_EQ(p.samples[0].size(), 4u);
  EXPECT_EQ(p.samples[0][1].index, 2);
  EXPECT_EQ(p.samples[0][1].temperature, 0.7);
  EXPECT_EQ(p.samples[0][3].index, 0) << "b is listed once";
  EXPECT_THAT(SlotNames(p.layers, p.samples)[0], ::testing::ElementsAre("a#1", "a#2", "a#3", "b"));
  auto bad = ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\naggregator: {endpoint: 'x:3'}\n"
      "pipelines:\n  self: {layers: [[{model: a, samples: 2, temperatures: [0.5]}]], "
      "aggregator: a}\n",
      "test.yaml");
  EXPECT_THAT(bad.status().message(),
              ::testing::HasSubstr("layers[0][0].temperatures must list one temperature per"));
  auto many = ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\naggregator: {endpoint: 'x:3'}\n"
      "pipelines:\n  self: {layers: [[{model: a, samples: 17}]], aggregator: a}\n",
      "test.yaml");
  EXPECT_THAT(many.status().message(), ::testing::HasSubstr("limits.max_models_per_layer (16)"));
  auto huge = ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\naggregator: {endpoint: 'x:3'}\n"
      "pipelines:\n  self: {layers: [[{model: a, samples: 2000000000}]], aggregator: a}\n",
      "test.yaml");
  EXPECT_THAT(huge.status().message(),
              ::testing::HasSubstr(".samples is 2000000000, over limits.max_models_per_layer"))
      << "refused before 2e9 slots are laid out";
}

constexpr char kStepsBase[] = R"(models:
  a: {endpoint: 'x:1'}
  b: {endpoint: 'x:2'}
  c: {endpoint: 'x:3'}
aggregator: {endpoint: 'x:9'}
pipelines:
  p:
)";

absl::StatusOr<ClusterConfig> Steps(const std::string& steps) {
  return ParseClusterConfig(absl::StrCat(kStepsBase, "    steps: ", steps, "\n"), "test.yaml");
}

TEST(ClusterConfigTest, StepsParseEveryKindWithTheirSettings) {
  auto cfg = Steps(
      "[{propose: [a, b, {model: c, samples: 2}]}, shuffle, {dropout: {rate: 0.25, min_keep: 2}},"
      " {rank: {model: c, keep: 3}}, {judge: {model: a}}, {refine: [a, b]},"
      " {synthesize: [c]}, {aggregate: {model: b, fallbacks: [a]}}]");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const PipelineConfig& p = cfg->pipelines[0];
  EXPECT_THAT(StepKindNames(p.steps),
              ::testing::ElementsAre("propose", "shuffle", "dropout", "rank", "judge", "refine",
                                     "synthesize"));
  ASSERT_EQ(p.layers.size(), 7u);
  EXPECT_THAT(p.layers[0], ::testing::ElementsAre("a", "b", "c", "c"));
  EXPECT_TRUE(p.layers[1].empty());
  EXPECT_EQ(p.steps[2].rate, 0.25);
  EXPECT_EQ(p.steps[2].min_keep, 2);
  EXPECT_THAT(p.layers[3], ::testing::ElementsAre("c"));
  EXPECT_EQ(p.steps[3].keep, 3);
  EXPECT_THAT(p.layers[5], ::testing::ElementsAre("a", "b"));
  EXPECT_EQ(p.terminal, StepKind::kAggregate);
  EXPECT_EQ(p.aggregator, "b");
  EXPECT_THAT(p.aggregator_fallbacks, ::testing::ElementsAre("a"));

  auto vote = Steps("[{propose: [a, b, c]}, {vote: {normalize: false}}]");
  ASSERT_TRUE(vote.ok()) << vote.status();
  EXPECT_EQ(vote->pipelines[0].terminal, StepKind::kVote);
  EXPECT_FALSE(vote->pipelines[0].vote_normalize);
  EXPECT_EQ(vote->pipelines[0].aggregator, "");
  EXPECT_TRUE(Steps("[{propose: [a, b]}, vote]").ok());
  EXPECT_TRUE(Steps("[{propose: [a, b]}, {aggregate: c}]").ok());
}

TEST(ClusterConfigTest, LayersMeanProposeThenSynthesizeThenAggregate) {
  auto cfg = ParseClusterConfig(
      absl::StrCat(kStepsBase, "    layers: [[a, b], [a, b], [c]]\n", "    aggregator: c\n"),
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_THAT(StepKindNames(cfg->pipelines[0].steps),
              ::testing::ElementsAre("propose", "synthesize", "synthesize"));
  EXPECT_EQ(cfg->pipelines[0].terminal, StepKind::kAggregate);
}

TEST(ClusterConfigTest, EarlyStopIsReadAndRefusedWhereItCannotWork) {
  auto cfg =
      ParseClusterConfig(absl::StrCat(kStepsBase, "    layers: [[a, b]]\n    aggregator: c\n",
                                      "    early_stop: {similarity: 0.9, min_answers: 3}\n"),
                         "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_TRUE(cfg->pipelines[0].early_stop);
  EXPECT_EQ(cfg->pipelines[0].early_stop->similarity, 0.9);
  EXPECT_EQ(cfg->pipelines[0].early_stop->min_answers, 3);
  auto defaults = ParseClusterConfig(
      absl::StrCat(kStepsBase, "    layers: [[a, b]]\n    aggregator: c\n    early_stop: {}\n"),
      "test.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->pipelines[0].early_stop->similarity, 1);
  EXPECT_EQ(defaults->pipelines[0].early_stop->min_answers, 2);
  EXPECT_EQ(defaults->pipelines[0].early_stop->then, EarlyStopConfig::Then::kAnswer);
  EXPECT_EQ(ParseClusterConfig(absl::StrCat(kStepsBase, "    layers: [[a, b]]\n    aggregator: c\n",
                                            "    early_stop: {then: aggregate}\n"),
                               "test.yaml")
                ->pipelines[0]
                .early_stop->then,
            EarlyStopConfig::Then::kAggregate);
  EXPECT_FALSE(
      ParseClusterConfig(absl::StrCat(kStepsBase, "    layers: [[a, b]]\n    aggregator: c\n"),
                         "test.yaml")
          ->pipelines[0]
          .early_stop);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"early_stop: {similarity: 0.2}", "early_stop.similarity must be in [0.5, 1]"},
      {"early_stop: {min_answers: 1}", "early_stop.min_answers"},
      {"early_stop: {when: always}", "unknown key 'when' in pipelines.p.early_stop"},
      {"early_stop: {then: vote}", "early_stop.then must be answer or aggregate"},
      {"early_stop: yes", "pipelines.p.early_stop must be a map"},
      {"early_stop: {}\n    streaming: staircase", "cannot stop on the layer's agreement"},
  };
  for (const auto& [yaml, message] : cases) {
    auto bad = ParseClusterConfig(
        absl::StrCat(kStepsBase, "    layers: [[a, b]]\n    aggregator: c\n    ", yaml, "\n"),
        "test.yaml");
    ASSERT_FALSE(bad.ok()) << yaml;
    EXPECT_THAT(bad.status().message(), ::testing::HasSubstr(message)) << yaml;
  }
}

constexpr char kRoutesBase[] = R"(models:
  a: {endpoint: 'x:1'}
  b: {endpoint: 'x:2'}
aggregator: {endpoint: 'x:9'}
pipelines:
  quick: {layers: [[a]], aggregator: b}
  deep: {layers: [[a, b]], aggregator: b}
default_pipeline: quick
routes:
)";

TEST(ClusterConfigTest, RoutesAreReadWithTheirRulesClassifierAndDefault) {
  auto cfg = ParseClusterConfig(absl::StrCat(kRoutesBase, R"(  auto:
    rules:
      - {pipeline: deep, min_chars: 10, max_chars: 2000, contains: [prove], keys: [k1],
         tools: false, images: true}
    classifier: {model: a, labels: {easy: quick, hard: deep}, instruction: 'Say easy or hard.',
                 timeout_seconds: 0.5}
    default_pipeline: deep
  other: {rules: [{pipeline: deep, max_chars: 5}]}
)"),
                                "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_EQ(cfg->routes.size(), 2u);
  const RouteConfig* r = cfg->FindRoute("auto");
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->rules.size(), 1u);
  EXPECT_EQ(r->rules[0].pipeline, "deep");
  EXPECT_EQ(r->rules[0].min_chars, 10);
  EXPECT_EQ(r->rules[0].max_chars, 2000);
  EXPECT_THAT(r->rules[0].contains, ::testing::ElementsAre("prove"));
  EXPECT_THAT(r->rules[0].keys, ::testing::ElementsAre("k1"));
  EXPECT_EQ(r->rules[0].tools, false);
  EXPECT_EQ(r->rules[0].images, true);
  ASSERT_TRUE(r->classifier);
  EXPECT_EQ(r->classifier->model, "a");
  EXPECT_EQ(r->classifier->labels.size(), 2u);
  EXPECT_EQ(r->classifier->labels[1], std::make_pair(std::string("hard"), std::string("deep")));
  EXPECT_EQ(r->classifier->instruction, "Say easy or hard.");
  EXPECT_EQ(r->classifier->timeout, absl::Milliseconds(500));
  EXPECT_EQ(r->default_pipeline, "deep");
  EXPECT_EQ(cfg->FindRoute("other")->default_pipeline, "quick") << "the cluster's default";
  EXPECT_EQ(cfg->FindRoute("other")->classifier, std::nullopt);
  EXPECT_EQ(cfg->FindRoute("quick"), nullptr);
}

TEST(ClusterConfigTest, ABadRouteNamesTheRouteAndTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"quick: {rules: [{pipeline: deep, max_chars: 5}]}",
       "routes.quick: 'quick' is also a pipeline"},
      {"auto: {}", "routes.auto has neither rules nor a classifier"},
      {"auto: {rules: [{pipeline: deep}]}", "routes.auto.rules[0] has no condition"},
      {"auto: {rules: [{pipeline: nope, max_chars: 1}]}",
       "routes.auto.rules[0].pipeline names 'nope'"},
      {"auto: {rules: [{pipeline: deep, length: 1}]}",
       "unknown key 'length' in routes.auto.rules[0]"},
      {"auto: {rules: [{pipeline: deep, max_chars: -1}]}", "rules[0].max_chars must be in"},
      {"auto: {rules: [{pipeline: deep, contains: []}]}", "contains must be a list of 1 to 256"},
      {"auto: {rules: [{pipeline: deep, tools: maybe}]}", "rules[0].tools must be true or false"},
      {"auto: {rules: {pipeline: deep}}", "routes.auto.rules must be a list"},
      {"auto: {classifier: {model: zz, labels: {a: deep}}}", "classifier.model names 'zz'"},
      {"auto: {classifier: {labels: {a: deep}}}", "classifier.model is required"},
      {"auto: {classifier: {model: a}}", "classifier.labels must map 1 to 64 labels"},
      {"auto: {classifier: {model: a, labels: {Hard: deep}}}",
       "labels.Hard: a label is a lowercase"},
      {"auto: {classifier: {model: a, labels: {hard: nope}}}", "labels.hard names 'nope'"},
      {"auto: {classifier: {model: a, labels: {hard: deep}, timeout_seconds: 0}}",
       "timeout_seconds must be in [0.01, 60]"},
      {"auto: {classifier: {model: a, labels: {hard: deep}}, default_pipeline: nope}",
       "routes.auto.default_pipeline names 'nope'"},
      {"auto: [a]", "routes.auto must be a mapping"},
  };
  for (const auto& [yaml, message] : cases) {
    auto bad = ParseClusterConfig(absl::StrCat(kRoutesBase, "  ", yaml, "\n"), "test.yaml");
    ASSERT_FALSE(bad.ok()) << yaml;
    EXPECT_THAT(bad.status().message(), ::testing::HasSubstr(message)) << yaml;
  }
}

TEST(ClusterConfigTest, PresetsAreReadAndABadOneIsNamed) {
  auto cfg = ParseClusterConfig(
      absl::StrCat(kRoutesBase, R"(  auto: {rules: [{pipeline: deep, max_chars: 5}]}
presets:
  budget: {max_proposers: 2, early_stop: {similarity: 0.9}, description: 'two, stop early'}
  quality: {policy: {min_proposals: all}, early_stop: off}
  fast: {streaming: {mode: staircase, growth: 3}}
  balanced: {}
)"),
      "test.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_EQ(cfg->presets.size(), 4u);
  const PresetConfig* budget = cfg->FindPreset("budget");
  ASSERT_NE(budget, nullptr);
  EXPECT_EQ(budget->max_proposers, 2);
  EXPECT_EQ(budget->description, "two, stop early");
  ASSERT_TRUE(budget->early_stop && *budget->early_stop);
  EXPECT_EQ((*budget->early_stop)->similarity, 0.9);
  const PresetConfig* quality = cfg->FindPreset("quality");
  ASSERT_TRUE(quality->early_stop);
  EXPECT_FALSE(*quality->early_stop) << "off";
  EXPECT_EQ(cfg->FindPreset("fast")->streaming.growth, 3);
  EXPECT_FALSE(cfg->FindPreset("balanced")->early_stop) << "the pipeline's own";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"p: {max_proposers: 0}", "presets.p.max_proposers must be in [1, 1024]"},
      {"p: {early_stop: sometimes}", "presets.p.early_stop must be a mapping"},
      {"p: {streaming: staircase, early_stop: {}}", "presets.p.early_stop: staircase streaming"},
      {"p: {layers: [[a]]}", "unknown key 'layers' in presets.p"},
      {"p: {policy: {min_proposals: none}}", "presets.p.policy.min_proposals must be an integer"},
      {"p: []", "presets.p must be a mapping"},
  };
  for (const auto& [yaml, message] : cases) {
    auto bad = ParseClusterConfig(
        absl::StrCat(kRoutesBase, "  auto: {rules: [{pipeline: deep, max_chars: 5}]}\npresets:\n  ",
                     yaml, "\n"),
        "test.yaml");
    ASSERT_FALSE(bad.ok()) << yaml;
    EXPECT_THAT(bad.status().message(), ::testing::HasSubstr(message)) << yaml;
  }
}

TEST(ClusterConfigTest, ABadStepNamesTheStepAndTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[{propose: [a]}, {polish: [a]}, {aggregate: c}]", "steps[1]: unknown step 'polish'"},
      {"[shuffle, {propose: [a]}, {aggregate: c}]",
       "steps[0].shuffle: a pipeline starts with propose"},
      {"[{propose: [a]}, {propose: [b]}, {aggregate: c}]", "steps[1].propose: a pipeline starts"},
      {"[{propose: [a]}, shuffle]", "steps[1].shuffle: a pipeline ends in aggregate or vote"},
      {"[{propose: [a]}, vote, {aggregate: c}]", "steps[1].vote: a pipeline ends"},
      {"[{propose: [a]}]", "must be a list of at least two steps"},
      {"[{propose: [a, x]}, {aggregate: c}]", "steps[0].propose names model 'x'"},
      {"[{propose: []}, {aggregate: c}]", "steps[0].propose must be a non-empty list"},
      {"[{propose: [a]}, {dropout: {rate: 1.5}}, {aggregate: c}]",
       "steps[1].dropout.rate must be in [0, 1]"},
      {"[{propose: [a]}, {dropout: {min_keep: 1}}, {aggregate: c}]",
       "steps[1].dropout.rate is required"},
      {"[{propose: [a]}, {rank: {model: c}}, {aggregate: c}]", "steps[1].rank.keep is required"},
      {"[{propose: [a]}, {rank: {keep: 1}}, {aggregate: c}]", "steps[1].rank.model is required"},
      {"[{propose: [a]}, {judge: {model: c, keep: 1}}, {aggregate: c}]",
       "unknown key 'keep' in pipelines.p.steps[1].judge"},
      {"[{propose: [a]}, {shuffle: {seed: 1}}, {aggregate: c}]",
       "steps[1].shuffle takes no settings"},
      {"[{propose: [a]}, {aggregate: {model: y}}]", "steps[1].aggregate.model names model 'y'"},
      {"[{propose: [a]}, {vote: {normalize: maybe}}]",
       "steps[1].vote.normalize must be true or false"},
      {"[{propose: [a]}, {refine: {prompt_file: x}}, {aggregate: c}]",
       "steps[1].refine.models is required"},
      {"[{propose: [a], synthesize: [b]}, {aggregate: c}]",
       "steps[0] must be a step name or a one-key map"},
  };
  for (const auto& [steps, message] : cases) {
    auto cfg = Steps(steps);
    ASSERT_FALSE(cfg.ok()) << steps;
    EXPECT_THAT(cfg.status().message(), ::testing::HasSubstr(message)) << steps;
  }
  auto both = ParseClusterConfig(absl::StrCat(kStepsBase, "    layers: [[a]]\n    aggregator: c\n",
                                              "    steps: [{propose: [a]}, {aggregate: c}]\n"),
                                 "test.yaml");
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(both.status().message(), ::testing::HasSubstr("use one form"));
  auto stair = ParseClusterConfig(
      absl::StrCat(kStepsBase,
                   "    steps: [{propose: [a, b]}, {judge: {model: c}}, {aggregate: c}]\n",
                   "    streaming: staircase\n"),
      "test.yaml");
  ASSERT_FALSE(stair.ok());
  EXPECT_THAT(stair.status().message(),
              ::testing::HasSubstr("staircase needs the step before aggregate to be propose"));
  EXPECT_TRUE(
      ParseClusterConfig(absl::StrCat(kStepsBase,
                                      "    steps: [{propose: [a, b]}, shuffle, {synthesize: [a]}, "
                                      "{aggregate: c}]\n    streaming: staircase\n"),
                         "test.yaml")
          .ok());
}

TEST(ClusterConfigTest, AStepsPromptFileIsReadBesideTheConfig) {
  const std::string dir = ::testing::TempDir() + "moa-steps-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/rank.txt") << "Order them.\n\n";
  std::ofstream(dir + "/cluster.yaml")
      << kStepsBase
      << "    steps: [{propose: [a, b]}, {rank: {model: c, keep: 1, prompt_file: rank.txt}},"
         " {aggregate: c}]\n";
  auto cfg = LoadClusterConfig(dir + "/cluster.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->pipelines[0].steps[1].prompt, "") << "read only when asked";
  ASSERT_TRUE(LoadStepPrompts(dir + "/cluster.yaml", *cfg).ok());
  EXPECT_EQ(cfg->pipelines[0].steps[1].prompt, "Order them.");
  std::ofstream(dir + "/cluster.yaml", std::ios::trunc)
      << kStepsBase
      << "    steps: [{propose: [a, b]}, {judge: {model: c, prompt_file: gone.txt}}, {aggregate: "
         "c}]\n";
  auto loaded = LoadClusterConfig(dir + "/cluster.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  absl::Status missing = LoadStepPrompts(dir + "/cluster.yaml", *loaded);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), ::testing::HasSubstr("steps[1].judge.prompt_file"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moa::config

namespace moa::config {
namespace {

absl::StatusOr<ClusterConfig> WithUpstream(const std::string& upstream) {
  return ParseClusterConfig(absl::StrCat("models:\n  m:\n    endpoint: 'x:1'\n    upstream: ",
                                         upstream, "\naggregator: {endpoint: 'x:2'}\n"),
                            "test.yaml");
}

TEST(ClusterConfigTest, AnUpstreamNamesItsApiAndAzureItsApiVersion) {
  auto azure = WithUpstream(
      "{base_url: 'https://r.openai.azure.com', model: gpt4o-prod, api: azure, "
      "api_version: '2024-10-21'}");
  ASSERT_TRUE(azure.ok()) << azure.status();
  EXPECT_EQ(azure->models[0].upstream->api, "azure");
  EXPECT_EQ(azure->models[0].upstream->api_version, "2024-10-21");
  EXPECT_EQ(WithUpstream("{base_url: 'http://h/v1'}")->models[0].upstream->api, "openai");
  EXPECT_THAT(std::string(WithUpstream("{base_url: 'https://r', api: azure}").status().message()),
              HasSubstr("api_version is required with api: azure"));
  EXPECT_THAT(
      std::string(WithUpstream("{base_url: 'http://h/v1', api_version: '1'}").status().message()),
      HasSubstr("api_version goes only with api: azure"));
  auto anthropic = WithUpstream(
      "{base_url: 'https://api.anthropic.com/v1', api: anthropic, "
      "reasoning: {budget_tokens: 2048, include_text: true}}");
  ASSERT_TRUE(anthropic.ok()) << anthropic.status();
  EXPECT_EQ(anthropic->models[0].upstream->api, "anthropic");
  EXPECT_EQ(anthropic->models[0].upstream->reasoning_budget_tokens, 2048);
  EXPECT_TRUE(anthropic->models[0].upstream->reasoning_include_text);
  auto openai = WithUpstream("{base_url: 'http://h/v1', reasoning: {effort: high}}");
  ASSERT_TRUE(openai.ok()) << openai.status();
  EXPECT_EQ(openai->models[0].upstream->reasoning_effort, "high");
  EXPECT_TRUE(WithUpstream("{base_url: 'https://g/v1beta', api: gemini, "
                           "reasoning: {budget_tokens: -1}}")
                  .ok());
  EXPECT_THAT(std::string(WithUpstream("{base_url: 'http://h', api: soap}").status().message()),
              HasSubstr("api must be openai, azure, anthropic or gemini"));
  auto refusal = [](const char* upstream) {
    return std::string(WithUpstream(upstream).status().message());
  };
  EXPECT_THAT(refusal("{base_url: 'http://h', api: anthropic, reasoning: {effort: low}}"),
              HasSubstr("reasoning.effort is for openai and azure"));
  EXPECT_THAT(refusal("{base_url: 'http://h', reasoning: {budget_tokens: 2048}}"),
              HasSubstr("reasoning.budget_tokens is for anthropic and gemini"));
  EXPECT_THAT(refusal("{base_url: 'http://h', api: anthropic, reasoning: {budget_tokens: 10}}"),
              HasSubstr("must be >= 1024"));
  EXPECT_THAT(refusal("{base_url: 'http://h', reasoning: {effort: extreme}}"),
              HasSubstr("effort must be minimal, low, medium or high"));
  EXPECT_THAT(refusal("{base_url: 'http://h', reasoning: {show: true}}"),
              HasSubstr("unknown key 'show'"));
  EXPECT_THAT(refusal("{base_url: 'http://h', api: gemini, continuation: prefill}"),
              HasSubstr("cannot continue a model turn"));
  EXPECT_THAT(refusal("{base_url: 'http://h', api: anthropic, continuation: vllm}"),
              HasSubstr("vllm is for openai upstreams"));
}

TEST(ClusterConfigTest, AStoreNamesRedisItsTimeoutAndItsFailurePolicy) {
  constexpr char kBase[] =
      "models: {a: {endpoint: \"x:1\"}}\naggregator: {endpoint: \"y:2\"}\n"
      "pipelines: {p: {layers: [[a]], aggregator: a}}\n";
  auto cfg = ParseClusterConfig(
      absl::StrCat(kBase,
                   "store: {redis: 'redis.moa:6380', password_env: REDIS_PASSWORD, "
                   "timeout_seconds: 0.1, failure: closed}\n"),
      "c.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ASSERT_TRUE(cfg->store);
  EXPECT_EQ(cfg->store->host, "redis.moa");
  EXPECT_EQ(cfg->store->port, 6380);
  EXPECT_EQ(cfg->store->password_env, "REDIS_PASSWORD");
  EXPECT_EQ(cfg->store->timeout, absl::Milliseconds(100));
  EXPECT_TRUE(cfg->store->fail_closed);
  auto open = ParseClusterConfig(absl::StrCat(kBase, "store: {redis: '127.0.0.1:6379'}\n"), "c");
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_FALSE(open->store->fail_closed);
  EXPECT_EQ(open->store->timeout, absl::Milliseconds(50));
  EXPECT_FALSE(ParseClusterConfig(kBase, "c")->store);
  for (const char* bad :
       {"store: {redis: localhost}\n", "store: {redis: ':6379'}\n", "store: {redis: 'h:99999'}\n",
        "store: {}\n", "store: {redis: 'h:1', failure: maybe}\n",
        "store: {redis: 'h:1', timeout_seconds: 60}\n", "store: {redis: 'h:1', tls: true}\n"}) {
    EXPECT_FALSE(ParseClusterConfig(absl::StrCat(kBase, bad), "c").ok()) << bad;
  }
}

}  // namespace
}  // namespace moa::config
