// The cluster config the fuzz targets validate requests against.
#ifndef MOA_FUZZ_FUZZ_CONFIG_H_
#define MOA_FUZZ_FUZZ_CONFIG_H_

#include "lib/config/cluster_config.h"

namespace moa::fuzz {

// Two models, a two-model pipeline and one of composable steps, a route
// with every kind of rule and a classifier, and small limits so that the
// limit checks are reached by small inputs.
inline const config::ClusterConfig& Config() {
  static const config::ClusterConfig config = *config::ParseClusterConfig(
      "models:\n  a: {endpoint: 'x:1'}\n  b: {endpoint: 'x:2'}\n"
      "aggregator: {endpoint: 'x:3'}\n"
      "pipelines:\n  moa: {layers: [[a, b]], aggregator: a}\n"
      "  steps: {steps: [{propose: [a, b]}, shuffle, {dropout: {rate: 0.5}},"
      " {rank: {model: a, keep: 1}}, {aggregate: b}]}\n"
      "routes:\n  auto:\n    rules:\n"
      "      - {pipeline: steps, max_chars: 8, min_chars: 2, tools: false}\n"
      "      - {pipeline: moa, contains: [prove, 'aab'], images: true}\n"
      "      - {pipeline: steps, keys: [k]}\n"
      "    classifier: {model: a, labels: {easy: moa, hard: steps}}\n"
      "limits: {max_request_bytes: 65536, max_messages: 16, max_answer_bytes: 4096}\n",
      "fuzz");
  return config;
}

}  // namespace moa::fuzz

#endif  // MOA_FUZZ_FUZZ_CONFIG_H_
