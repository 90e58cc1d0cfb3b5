#include "services/orchestrator/cluster_view.h"

#include <google/protobuf/util/json_util.h>

#include "services/orchestrator/engine/pipeline.h"
#include "services/orchestrator/key_directory.h"

namespace moa::orchestrator {

v1::ListPipelinesResponse DescribePipelines(const config::ClusterConfig& config) {
  v1::ListPipelinesResponse response;
  for (const config::PipelineConfig& p : config.pipelines) {
    v1::PipelineInfo* info = response.add_pipelines();
    info->set_name(p.name);
    for (const auto& layer : p.layers) {
      auto* l = info->add_layers();
      for (const auto& m : layer) l->add_models(m);
    }
    info->set_aggregator(p.aggregator);
    for (const config::StepConfig& s : p.steps) info->add_steps(config::StepKindName(s.kind));
    info->set_terminal(config::StepKindName(p.terminal));
    *info->mutable_params() = MergeParams(&p, v1::SamplingParams());
    info->set_default_(p.name == config.default_pipeline);
  }
  for (const config::RouteConfig& r : config.routes) {
    // The route's default pipeline describes what it runs when nothing decides.
    v1::PipelineInfo* info = response.add_pipelines();
    *info = response.pipelines(
        static_cast<int>(config.FindPipeline(r.default_pipeline) - config.pipelines.data()));
    info->set_name(r.name);
    info->set_default_(false);
    v1::RouteInfo* route = info->mutable_route();
    route->add_pipelines(r.default_pipeline);
    auto add = [&](const std::string& p) {
      for (const std::string& q : route->pipelines()) {
        if (q == p) return;
      }
      route->add_pipelines(p);
    };
    for (const config::RouteRule& rule : r.rules) add(rule.pipeline);
    if (r.classifier) {
      route->set_classifier(r.classifier->model);
      for (const auto& [label, p] : r.classifier->labels) add(p);
    }
    route->set_rules(static_cast<int>(r.rules.size()));
  }
  for (const config::PresetConfig& p : config.presets) {
    v1::PresetInfo* info = response.add_presets();
    info->set_name(p.name);
    info->set_description(DescribePreset(p));
  }
  return response;
}

std::vector<ModelStatus> ModelStatuses(const std::vector<std::string>& models,
                                       const cluster::BreakingBackend* proposer_breakers,
                                       const cluster::BreakingBackend* aggregator_breakers,
                                       cluster::HedgingBackend* proposer_hedging,
                                       cluster::HedgingBackend* aggregator_hedging) {
  // Worse first: open, half-open, closed.
  auto rank = [](CircuitBreaker::State s) {
    return s == CircuitBreaker::State::kOpen ? 2 : s == CircuitBreaker::State::kHalfOpen ? 1 : 0;
  };
  std::vector<ModelStatus> out;
  for (const std::string& m : models) {
    ModelStatus s;
    s.model = m;
    std::optional<CircuitBreaker::State> worst;
    for (const cluster::BreakingBackend* b : {proposer_breakers, aggregator_breakers}) {
      if (b == nullptr) continue;
      std::optional<CircuitBreaker::State> state = b->StateOf(m);
      if (state && (!worst || rank(*state) > rank(*worst))) worst = state;
    }
    if (worst) s.breaker = std::string(BreakerStateName(*worst));
    for (cluster::HedgingBackend* h : {proposer_hedging, aggregator_hedging}) {
      if (h == nullptr) continue;
      cluster::HedgingBackend::FirstByte f = h->RecentFirstByte(m);
      if (f.samples <= s.first_byte_samples) continue;
      s.first_byte_samples = f.samples;
      s.first_byte_p50 = f.p50;
      s.first_byte_p95 = f.p95;
    }
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

json::Json PipelinesJson(const config::ClusterConfig& config) {
  // The proto's own JSON form, so the page reads what a gRPC client gets.
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(DescribePipelines(config), &text, options)
           .ok()) {
    return json::Json::object();
  }
  auto parsed = json::Parse(text);
  return parsed.ok() ? *std::move(parsed) : json::Json::object();
}

}  // namespace

json::Json ClusterViewJson(const ClusterViewInput& in) {
  const config::ClusterConfig& config = *in.config;
  json::Json view = PipelinesJson(config);
  json::Json models = json::Json::array();
  for (const config::ModelConfig& m : config.models) {
    json::Json j = {{"name", m.name}, {"vision", m.vision}, {"breaker", "unknown"}};
    if (m.price) {
      j["price"] = {{"input_per_million", m.price->input_per_million},
                    {"output_per_million", m.price->output_per_million}};
    }
    if (m.upstream) j["upstream"] = m.upstream->model;
    for (const ModelStatus& s : in.models) {
      if (s.model != m.name) continue;
      j["breaker"] = s.breaker;
      j["first_byte"] = {{"samples", s.first_byte_samples},
                         {"p50_ms", Ms(s.first_byte_p50)},
                         {"p95_ms", Ms(s.first_byte_p95)}};
    }
    models.push_back(std::move(j));
  }
  view["models"] = std::move(models);
  json::Json keys = {{"enabled", in.keys_enabled}, {"admin_api", in.admin_api}};
  if (in.caller != nullptr) {
    json::Json caller = {{"name", in.caller->name}, {"limits", KeyLimitsJson(in.caller->limits)}};
    if (in.caller_usage) {
      const KeyLimiter::LocalUsage& u = *in.caller_usage;
      caller["this_replica"] = {{"in_flight", u.in_flight},
                                {"requests_last_minute", u.requests_last_minute},
                                {"tokens_last_minute", u.tokens_last_minute},
                                {"today_dollars", u.today_dollars},
                                {"this_month_dollars", u.this_month_dollars}};
    }
    keys["caller"] = std::move(caller);
  }
  view["keys"] = std::move(keys);
  view["grpc_port"] = in.grpc_port;
  return view;
}

}  // namespace moa::orchestrator
