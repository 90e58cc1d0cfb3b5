// Routing (docs/pipelines.md, "Routing"): a request that names a route (`routes:` of
// the config, e.g. `auto`) runs the pipeline the route picks for it: the
// first of its rules that holds for the request, else the label one
// classifier call gives, else its default. Routing never fails a request
// the default pipeline can serve: a classifier that fails, is late or
// answers no label, and a chosen pipeline that cannot serve the request
// (tools on a vote, images for a text-only aggregator), all fall back to
// the default, and the decision says why.
#ifndef MOA_SERVICES_ORCHESTRATOR_ENGINE_ROUTE_H_
#define MOA_SERVICES_ORCHESTRATOR_ENGINE_ROUTE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/config/cluster_config.h"
#include "lib/llm/types.h"
#include "moa/v1/orchestrator.pb.h"
#include "services/orchestrator/engine/engine.h"
#include "services/orchestrator/engine/moa_call.h"

namespace moa::orchestrator {

// What a route's rules look at.
struct RouteFacts {
  absl::string_view last_user;  // The last user message's text ("" without one).
  std::string key_name;         // The client's key ("" when the cluster has no keys).
  bool tools = false;           // The request offers tools.
  bool images = false;          // A message of the conversation has images.
};
// `request` must outlive the facts (last_user points into it).
RouteFacts FactsOf(const v1::ChatRequest& request, absl::string_view key_name);

// The index of the first rule of `route` whose every condition holds.
std::optional<size_t> FirstRuleThatHolds(const config::RouteConfig& route, const RouteFacts& facts);
// A rule in words, for the decision's reason: "rules[0] (max_chars 200)".
std::string DescribeRule(const config::RouteConfig& route, size_t index);

// The classifier's conversation: the instruction (ours names the labels),
// then the last user message, cut to kClassifiedBytes.
inline constexpr size_t kClassifiedBytes = 16 << 10;
std::vector<llm::Message> ClassifierConversation(const config::RouteClassifier& classifier,
                                                 absl::string_view last_user);
// The label a classifier's answer names: the answer without surrounding
// space, quotes and end punctuation, compared ignoring ASCII case. Nothing
// else counts (a sentence that mentions a label is not a label): NOT_FOUND
// saying what it answered.
absl::StatusOr<std::string> LabelOf(const config::RouteClassifier& classifier,
                                    absl::string_view answer);

// What PlanChat leaves for Engine::Start when the route's classifier is to
// be asked: the request as it came and whom it came from.
struct PendingRoute {
  const config::RouteConfig* route;
  v1::ChatRequest request;
  Caller caller;
};

// PlanChat for a request whose `pipeline` names `route` (engine.h).
absl::StatusOr<MoaCall::Options> PlanRoute(const config::RouteConfig& route,
                                           const v1::ChatRequest& request,
                                           const config::ClusterConfig& config,
                                           const Caller& caller);

// Asks the classifier of `options.pending_route`, then starts the MoaCall
// on the pipeline it chose (or the default) with `sink`. The returned call
// cancels the classifier, or the MoaCall once started.
std::shared_ptr<RunningCall> StartRouted(MoaCall::Options options, const MoaEnv& env,
                                         std::shared_ptr<MoaCallSink> sink);

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_ENGINE_ROUTE_H_
