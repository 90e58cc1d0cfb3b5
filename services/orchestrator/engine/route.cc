#include "services/orchestrator/engine/route.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "lib/base/log.h"
#include "lib/base/utf8.h"
#include "services/orchestrator/engine/engine.h"

namespace moa::orchestrator {
namespace {

// A classifier answers one word; more than this is no label whatever it says.
constexpr size_t kMaxClassifierAnswer = 256;

v1::RouteChoice Choice(const config::RouteConfig& route, const std::string& pipeline,
                       const char* by, std::string reason) {
  v1::RouteChoice c;
  c.set_route(route.name);
  c.set_pipeline(pipeline);
  c.set_by(by);
  c.set_reason(std::move(reason));
  return c;
}

// The request as if it had named `pipeline`, planned.
absl::StatusOr<MoaCall::Options> PlanOn(const std::string& pipeline, const v1::ChatRequest& request,
                                        const config::ClusterConfig& config, const Caller& caller) {
  v1::ChatRequest on = request;
  on.set_pipeline(pipeline);
  return PlanChat(on, config, caller);
}

// The default pipeline with `reason`; its error is the request's (a
// request the default cannot serve is refused as if it had named it).
absl::StatusOr<MoaCall::Options> PlanDefault(const config::RouteConfig& route,
                                             const v1::ChatRequest& request,
                                             const config::ClusterConfig& config,
                                             const Caller& caller, std::string reason) {
  absl::StatusOr<MoaCall::Options> options =
      PlanOn(route.default_pipeline, request, config, caller);
  if (!options.ok()) return options;
  options->route = Choice(route, route.default_pipeline, "default", std::move(reason));
  return options;
}

// A pipeline the route chose, or its default when that one cannot serve
// the request.
absl::StatusOr<MoaCall::Options> PlanChosen(const config::RouteConfig& route,
                                            const std::string& pipeline, const char* by,
                                            std::string reason, const v1::ChatRequest& request,
                                            const config::ClusterConfig& config,
                                            const Caller& caller) {
  absl::StatusOr<MoaCall::Options> chosen = PlanOn(pipeline, request, config, caller);
  if (chosen.ok()) {
    chosen->route = Choice(route, pipeline, by, std::move(reason));
    return chosen;
  }
  return PlanDefault(
      route, request, config, caller,
      absl::StrCat(reason, " chose pipeline '", pipeline, "', which cannot serve this request (",
                   Utf8Prefix(chosen.status().message(), 300), ")"));
}

// The fields the servers and the key limiter set on a plan after PlanChat
// (engine.h, the servers, KeyLimiter::Admit), carried onto the plan of the
// pipeline the classifier chose.
void CarryRequestFields(MoaCall::Options& from, MoaCall::Options& to) {
  to.deadline = from.deadline;
  to.trace = std::move(from.trace);
  to.end_user = std::move(from.end_user);
  to.key_name = std::move(from.key_name);
  to.on_spent = std::move(from.on_spent);
}

// Asks the classifier, then starts the MoaCall. Exactly one of OnDone and
// Cancel (before the decision) finishes the sink when no MoaCall started.
class RouteCall final : public RunningCall, public std::enable_shared_from_this<RouteCall> {
 public:
  RouteCall(MoaCall::Options options, const MoaEnv& env, std::shared_ptr<MoaCallSink> sink)
      : options_(std::move(options)), env_(env), sink_(std::move(sink)) {}

  void Begin() {
    const PendingRoute& pending = *options_.pending_route;
    const config::RouteClassifier& classifier = *pending.route->classifier;
    cluster::GenerationCall call;
    call.model = classifier.model;
    call.messages = ClassifierConversation(classifier, FactsOf(pending.request, "").last_user);
    call.params.temperature = 0;
    call.params.max_tokens = 16;
    call.deadline = std::min(options_.deadline, env_.clock->Now() + classifier.timeout);
    call.trace = options_.trace;
    auto handle = env_.backends.proposers->Start(std::move(call),
                                                 std::make_shared<Observer>(shared_from_this()));
    bool cancel = false;
    {
      absl::MutexLock lock(&mu_);
      if (!decided_) handle_ = handle;
      cancel = cancelled_;
    }
    if (cancel) handle->Cancel();
  }

  void Cancel(absl::Status reason) override {
    std::shared_ptr<llm::CallHandle> handle;
    std::shared_ptr<MoaCall> call;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      cancelled_ = true;
      cancel_reason_ = reason;
      if (!decided_) {
        finish = true;
        handle = std::move(handle_);
      }
      call = call_;  // Null while the decision's MoaCall is starting: it checks cancelled_.
    }
    if (handle) handle->Cancel();
    if (finish) {
      // No MoaCall will report: the key's accounts and the log hear it here
      // (the cancelled classifier call's tokens are not known).
      if (options_.on_spent) options_.on_spent(Spending{});
      LogFor(LogLevel::kWarning, "moa-orchestrator",
             {{"request_id", options_.trace.request_id},
              {"route", options_.pending_route->route->name},
              {"key", options_.key_name}},
             absl::StrCat("request failed while its route's classifier was asked: ",
                          reason.ToString()));
      sink_->OnFinish(std::move(reason));
    }
    if (call) call->Cancel(std::move(reason));
  }

 private:
  class Observer final : public cluster::GenerationObserver {
   public:
    explicit Observer(std::shared_ptr<RouteCall> call) : call_(std::move(call)) {}
    void OnDelta(absl::string_view text) override {
      if (answer_.size() < kMaxClassifierAnswer) {
        const absl::string_view part = text.substr(0, kMaxClassifierAnswer - answer_.size());
        answer_.append(part.data(), part.size());
      }
    }
    void OnDone(absl::StatusOr<llm::Completion> result) override {
      call_->OnDone(std::move(result), answer_);
    }

   private:
    const std::shared_ptr<RouteCall> call_;
    std::string answer_;
  };

  void OnDone(absl::StatusOr<llm::Completion> result, const std::string& answer) {
    {
      absl::MutexLock lock(&mu_);
      handle_.reset();
      if (cancelled_) return;  // Cancel finished the sink.
      decided_ = true;
    }
    const PendingRoute& pending = *options_.pending_route;
    const config::RouteConfig& route = *pending.route;
    const config::ClusterConfig& config = *env_.config;
    const std::string& model = route.classifier->model;
    absl::StatusOr<MoaCall::Options> chosen;
    if (!result.ok()) {
      chosen = PlanDefault(route, pending.request, config, pending.caller,
                           absl::StrCat("the classifier ", model, " failed (",
                                        absl::StatusCodeToString(result.status().code()), ": ",
                                        Utf8Prefix(result.status().message(), 200), ")"));
    } else if (absl::StatusOr<std::string> label = LabelOf(*route.classifier, answer);
               !label.ok()) {
      chosen = PlanDefault(route, pending.request, config, pending.caller,
                           absl::StrCat("the classifier ", model, " ", label.status().message()));
    } else {
      std::string pipeline;
      for (const auto& [l, p] : route.classifier->labels) {
        if (l == *label) pipeline = p;
      }
      chosen = PlanChosen(route, pipeline, "classifier",
                          absl::StrCat("the classifier ", model, " answered '", *label, "'"),
                          pending.request, config, pending.caller);
    }
    MoaCall::Options options;
    if (chosen.ok()) {
      options = *std::move(chosen);
    } else {
      // PlanChat served the default when the request came; it still does
      // (the config does not change), but a plan that fails must not lose
      // the request: run the plan made then.
      LogFor(LogLevel::kWarning, "moa-orchestrator",
             {{"request_id", options_.trace.request_id}, {"route", route.name}},
             absl::StrCat("re-planning the default failed: ", chosen.status().ToString()));
      options = options_;
      options.route = Choice(route, route.default_pipeline, "default", "re-planning failed");
    }
    CarryRequestFields(options_, options);
    options.pending_route = nullptr;
    if (result.ok()) options.route_usage.emplace(model, result->usage);
    std::shared_ptr<MoaCall> call = MoaCall::Start(std::move(options), env_, sink_);
    std::optional<absl::Status> cancel;
    {
      absl::MutexLock lock(&mu_);
      call_ = call;
      if (cancelled_) cancel = cancel_reason_;
    }
    if (cancel) call->Cancel(*std::move(cancel));
  }

  MoaCall::Options options_;
  const MoaEnv env_;
  const std::shared_ptr<MoaCallSink> sink_;
  absl::Mutex mu_;
  bool decided_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status cancel_reason_ ABSL_GUARDED_BY(mu_);  // Passed on to a MoaCall started after.
  std::shared_ptr<llm::CallHandle> handle_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<MoaCall> call_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

RouteFacts FactsOf(const v1::ChatRequest& request, absl::string_view key_name) {
  RouteFacts facts;
  facts.key_name = std::string(key_name);
  facts.tools = request.tools().tools_size() > 0;
  for (const v1::ChatMessage& m : request.messages()) {
    if (m.images_size() > 0) facts.images = true;
    if (m.role() == v1::ROLE_USER) facts.last_user = m.content();
  }
  return facts;
}

std::optional<size_t> FirstRuleThatHolds(const config::RouteConfig& route,
                                         const RouteFacts& facts) {
  const auto chars = static_cast<int64_t>(facts.last_user.size());
  // `contains` compares lowercased texts; the message is lowercased once,
  // when a rule first needs it. Boyer-Moore keeps each search linear in
  // the message whatever bytes a client sends.
  std::optional<std::string> lower;
  auto contains = [&](const std::string& needle) {
    if (!lower) lower = absl::AsciiStrToLower(facts.last_user);
    const std::string n = absl::AsciiStrToLower(needle);
    return std::search(lower->begin(), lower->end(),
                       std::boyer_moore_searcher(n.begin(), n.end())) != lower->end();
  };
  for (size_t i = 0; i < route.rules.size(); ++i) {
    const config::RouteRule& r = route.rules[i];
    if (r.min_chars && chars < *r.min_chars) continue;
    if (r.max_chars && chars > *r.max_chars) continue;
    if (r.tools && *r.tools != facts.tools) continue;
    if (r.images && *r.images != facts.images) continue;
    if (!r.keys.empty() &&
        std::find(r.keys.begin(), r.keys.end(), facts.key_name) == r.keys.end()) {
      continue;
    }
    if (!r.contains.empty() && std::none_of(r.contains.begin(), r.contains.end(), contains)) {
      continue;
    }
    return i;
  }
  return std::nullopt;
}

std::string DescribeRule(const config::RouteConfig& route, size_t index) {
  const config::RouteRule& r = route.rules[index];
  std::vector<std::string> parts;
  if (r.min_chars) parts.push_back(absl::StrCat("min_chars ", *r.min_chars));
  if (r.max_chars) parts.push_back(absl::StrCat("max_chars ", *r.max_chars));
  if (!r.contains.empty()) parts.push_back("contains");
  if (!r.keys.empty()) parts.push_back("keys");
  if (r.tools) parts.push_back(*r.tools ? "tools" : "no tools");
  if (r.images) parts.push_back(*r.images ? "images" : "no images");
  return absl::StrCat("rules[", index, "] (", absl::StrJoin(parts, ", "), ")");
}

std::vector<llm::Message> ClassifierConversation(const config::RouteClassifier& classifier,
                                                 absl::string_view last_user) {
  std::string instruction = classifier.instruction;
  if (instruction.empty()) {
    std::vector<std::string> labels;
    for (const auto& [label, pipeline] : classifier.labels) labels.push_back(label);
    instruction = absl::StrCat(
        "Classify the user's message below. Answer with exactly one of these labels and "
        "nothing else: ",
        absl::StrJoin(labels, ", "), ".");
  }
  return {llm::Message{llm::Role::kSystem, std::move(instruction)},
          llm::Message{llm::Role::kUser, std::string(Utf8Prefix(last_user, kClassifiedBytes))}};
}

absl::StatusOr<std::string> LabelOf(const config::RouteClassifier& classifier,
                                    absl::string_view answer) {
  absl::string_view word = absl::StripAsciiWhitespace(answer);
  auto trim = [](char c) { return c == '"' || c == '\'' || c == '`' || c == '.' || c == '*'; };
  while (!word.empty() && trim(word.front())) word.remove_prefix(1);
  while (!word.empty() && trim(word.back())) word.remove_suffix(1);
  for (const auto& [label, pipeline] : classifier.labels) {
    if (absl::EqualsIgnoreCase(word, label)) return label;
  }
  std::vector<std::string> labels;
  for (const auto& [label, pipeline] : classifier.labels) labels.push_back(label);
  // The answer is the model's bytes: cut and made printable ASCII before it
  // goes into a reason (an event, a log line).
  std::string shown;
  for (char c : Utf8Prefix(answer, 40)) {
    shown.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return absl::NotFoundError(absl::StrCat("answered '", shown, "', which is none of the labels (",
                                          absl::StrJoin(labels, ", "), ")"));
}

absl::StatusOr<MoaCall::Options> PlanRoute(const config::RouteConfig& route,
                                           const v1::ChatRequest& request,
                                           const config::ClusterConfig& config,
                                           const Caller& caller) {
  const RouteFacts facts = FactsOf(request, caller.key_name);
  if (std::optional<size_t> rule = FirstRuleThatHolds(route, facts)) {
    return PlanChosen(route, route.rules[*rule].pipeline, "rule", DescribeRule(route, *rule),
                      request, config, caller);
  }
  if (!route.classifier) {
    return PlanDefault(route, request, config, caller, "no rule held");
  }
  // The default is planned now, so a request it cannot serve is refused
  // before anything is sent, and a classifier that fails has a plan to
  // fall back on.
  absl::StatusOr<MoaCall::Options> options =
      PlanDefault(route, request, config, caller, "the classifier is to be asked");
  if (!options.ok()) return options;
  options->pending_route =
      std::make_shared<const PendingRoute>(PendingRoute{&route, request, caller});
  return options;
}

std::shared_ptr<RunningCall> StartRouted(MoaCall::Options options, const MoaEnv& env,
                                         std::shared_ptr<MoaCallSink> sink) {
  auto call = std::make_shared<RouteCall>(std::move(options), env, std::move(sink));
  call->Begin();
  return call;
}

}  // namespace moa::orchestrator
