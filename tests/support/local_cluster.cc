#include "tests/support/local_cluster.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/server/health_check.h"

namespace moa::testing {

int WaitForLoggedPort(Process& p, const std::string& prefix, absl::Duration timeout) {
  int port = 0;
  WaitFor(
      [&] {
        std::smatch m;
        std::string out = p.Output();
        if (std::regex_search(out, m, std::regex(prefix + " (-?[0-9]+)"))) {
          port = std::stoi(m[1]);
          return true;
        }
        return false;
      },
      timeout);
  return port;
}

ClusterSpec SmallClusterSpec(const std::vector<std::string>& orchestrator_flags) {
  ClusterSpec spec;
  spec.models = {"a", "b", "z", "slow"};
  spec.pipelines_yaml =
      "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\n"
      "  slow: {layers: [[slow]], aggregator: z}\ndefault_pipeline: moa\n";
  spec.sim_profiles_yaml =
      "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 12}\n"
      "models:\n  slow: {time_to_first_token: 60}\n";
  spec.orchestrator_flags = {"--http_port=0"};
  spec.orchestrator_flags.insert(spec.orchestrator_flags.end(), orchestrator_flags.begin(),
                                 orchestrator_flags.end());
  return spec;
}

namespace {

std::vector<std::string> Wrapped(const ClusterSpec& spec, const std::string& service,
                                 std::vector<std::string> argv) {
  auto it = spec.wrap.find(service);
  if (it == spec.wrap.end()) return argv;
  std::vector<std::string> wrapped = it->second;
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

absl::Duration StartTime(const ClusterSpec& spec, const std::string& service) {
  return spec.wrap.count(service) > 0 ? absl::Minutes(1) : absl::Seconds(10);
}

}  // namespace

LocalCluster::LocalCluster(const ClusterSpec& spec) {
  char tmpl[] = "/tmp/moa-cluster-test-XXXXXX";
  dir_ = mkdtemp(tmpl);
  std::string profiles = dir_ + "/profiles.yaml";
  std::ofstream(profiles) << spec.sim_profiles_yaml;
  sim_ = std::make_unique<Process>(std::vector<std::string>{
      BinaryPath("tools/upstream-sim/moa-upstream-sim"), "--port=0", "--profiles=" + profiles,
      absl::StrCat("--latency_scale=", spec.sim_latency_scale)});
  sim_port_ = WaitForLoggedPort(*sim_, "on port");
  if (sim_port_ == 0) {
    error_ = "simulator did not start: " + sim_->Output();
    return;
  }
  const std::string shared_url = absl::StrCat("http://127.0.0.1:", sim_port_, "/v1");
  std::string models_yaml = "models:\n";
  for (const std::string& m : spec.models) {
    std::string base_url = shared_url;
    if (spec.simulator_per_model) {
      auto sim = std::make_unique<Process>(std::vector<std::string>{
          BinaryPath("tools/upstream-sim/moa-upstream-sim"), "--port=0", "--profiles=" + profiles,
          absl::StrCat("--latency_scale=", spec.sim_latency_scale)});
      int port = WaitForLoggedPort(*sim, "on port");
      if (port == 0) {
        error_ = absl::StrCat("simulator of ", m, " did not start: ", sim->Output());
        return;
      }
      model_sims_[m] = std::move(sim);
      model_sim_ports_.push_back(port);
      base_url = absl::StrCat("http://127.0.0.1:", port, "/v1");
    }
    std::string api = "openai";
    if (auto a = spec.model_api.find(m); a != spec.model_api.end()) api = a->second;
    if (api == "gemini") base_url = base_url.substr(0, base_url.size() - 3) + "/v1beta";
    auto it = spec.proposer_replicas.find(m);
    const int replicas = it == spec.proposer_replicas.end() ? 1 : it->second;
    std::vector<std::string> addresses;
    for (int r = 0; r < replicas; ++r) {
      std::vector<std::string> argv = {BinaryPath("services/proposer/moa-proposer"),
                                       "--host=127.0.0.1",
                                       "--port=0",
                                       "--metrics_port=0",
                                       "--model=" + m,
                                       "--upstream_url=" + base_url,
                                       "--upstream_api=" + api};
      argv.insert(argv.end(), spec.proposer_flags.begin(), spec.proposer_flags.end());
      argv = Wrapped(spec, "proposer-" + m, std::move(argv));
      auto p = std::make_unique<Process>(argv);
      int port = WaitForLoggedPort(*p, "serving gRPC on port", StartTime(spec, "proposer-" + m));
      if (port == 0) {
        error_ = absl::StrCat("proposer ", m, " did not start: ", p->Output());
        return;
      }
      addresses.push_back(absl::StrCat("127.0.0.1:", port));
      const std::string key = r == 0 ? m : absl::StrCat(m, "#", r);
      if (r == 0) grpc_ports_["proposer-" + m] = port;
      proposers_[key] = std::move(p);
      for (std::string& arg : argv) {
        if (arg == "--port=0") arg = absl::StrCat("--port=", port);
      }
      proposer_argv_[key] = argv;
    }
    const std::string endpoint =
        replicas == 1 ? addresses[0] : absl::StrCat("ipv4:", absl::StrJoin(addresses, ","));
    absl::StrAppend(&models_yaml, "  ", m, ":\n    endpoint: \"", endpoint,
                    "\"\n    upstream: {base_url: \"", base_url, "\", api: ", api, "}\n");
    if (auto extra = spec.model_yaml.find(m); extra != spec.model_yaml.end()) {
      absl::StrAppend(&models_yaml, "    ", extra->second, "\n");
    }
  }
  // The aggregators' ports are needed in the config they read, so they are
  // chosen here: a port free a moment ago may be taken (as the local end of
  // another test's connection) before the aggregator binds it, so a start
  // that cannot listen is tried again on new ports.
  for (int attempt = 1;; ++attempt) {
    std::vector<int> aggregator_ports;
    std::vector<std::string> aggregator_addresses;
    for (int r = 0; r < spec.aggregator_replicas; ++r) {
      aggregator_ports.push_back(PickFreePort());
      aggregator_addresses.push_back(absl::StrCat("127.0.0.1:", aggregator_ports.back()));
    }
    const std::string aggregator_endpoint =
        spec.aggregator_replicas == 1
            ? aggregator_addresses[0]
            : absl::StrCat("ipv4:", absl::StrJoin(aggregator_addresses, ","));
    config_path_ = dir_ + "/cluster.yaml";
    std::ofstream(config_path_, std::ios::trunc)
        << models_yaml << "aggregator:\n  endpoint: \"" << aggregator_endpoint << "\"\n"
        << spec.pipelines_yaml << "\n"
        << spec.extra_config_yaml;
    aggregators_.clear();
    aggregator_argv_.clear();
    bool port_taken = false;
    for (int port : aggregator_ports) {
      std::vector<std::string> agg_argv = {BinaryPath("services/aggregator/moa-aggregator"),
                                           "--host=127.0.0.1", absl::StrCat("--port=", port),
                                           "--metrics_port=0", "--config=" + config_path_};
      agg_argv.insert(agg_argv.end(), spec.aggregator_flags.begin(), spec.aggregator_flags.end());
      agg_argv = Wrapped(spec, "aggregator", std::move(agg_argv));
      aggregator_argv_.push_back(agg_argv);
      aggregators_.push_back(std::make_unique<Process>(agg_argv));
      if (WaitForLoggedPort(*aggregators_.back(), "serving gRPC on port",
                            StartTime(spec, "aggregator")) == 0) {
        const std::string output = aggregators_.back()->Output();
        port_taken = absl::StrContains(output, "cannot listen on");
        error_ = "aggregator did not start: " + output;
        break;
      }
    }
    if (error_.empty()) {
      grpc_ports_["aggregator"] = aggregator_ports[0];
      break;
    }
    if (!port_taken || attempt == 3) return;
    error_.clear();
  }
  std::vector<std::string> orch_argv = {BinaryPath("services/orchestrator/moa-orchestrator"),
                                        "--host=127.0.0.1",
                                        "--port=0",
                                        "--metrics_port=0",
                                        "--http_port=-1",
                                        "--config=" + config_path_};
  orch_argv.insert(orch_argv.end(), spec.orchestrator_flags.begin(), spec.orchestrator_flags.end());
  orch_argv = Wrapped(spec, "orchestrator", std::move(orch_argv));
  orchestrator_ = std::make_unique<Process>(orch_argv);
  orchestrator_port_ =
      WaitForLoggedPort(*orchestrator_, "serving gRPC on port", StartTime(spec, "orchestrator"));
  orchestrator_metrics_port_ = WaitForLoggedPort(*orchestrator_, "metrics on port");
  orchestrator_http_port_ = WaitForLoggedPort(*orchestrator_, "HTTP on port");  // -1: off.
  if (orchestrator_port_ == 0) {
    error_ = "orchestrator did not start: " + orchestrator_->Output();
    return;
  }
  grpc_ports_["orchestrator"] = orchestrator_port_;
  auto channel = grpc::CreateChannel(
      orchestrator_address(),
      spec.front_credentials ? spec.front_credentials : grpc::InsecureChannelCredentials());
  if (!WaitFor([&] { return server::HealthCheck(channel) == 1; },
               StartTime(spec, "orchestrator"))) {
    error_ = "orchestrator is not healthy: " + orchestrator_->Output();
    return;
  }
  stub_ = v1::OrchestratorService::NewStub(channel);
}

LocalCluster::~LocalCluster() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool LocalCluster::KillReplica(const std::string& name, int replica) {
  if (name == "aggregator") {
    if (replica < 0 || replica >= static_cast<int>(aggregators_.size()) || !aggregators_[replica]) {
      return false;
    }
    aggregators_[replica].reset();  // SIGKILL.
    return true;
  }
  auto it = proposers_.find(replica == 0 ? name : absl::StrCat(name, "#", replica));
  if (it == proposers_.end() || !it->second) return false;
  it->second.reset();  // SIGKILL.
  return true;
}

bool LocalCluster::RestartBackends() {
  for (auto& [name, p] : proposers_) p.reset();  // SIGKILL.
  for (auto& a : aggregators_) a.reset();
  for (auto& [name, argv] : proposer_argv_) {
    auto p = std::make_unique<Process>(argv);
    // Right after a kill the port may still be held for a moment.
    if (WaitForLoggedPort(*p, "serving gRPC on port") == 0) {
      error_ = absl::StrCat("proposer ", name, " did not restart: ", p->Output());
      return false;
    }
    proposers_[name] = std::move(p);
  }
  for (size_t r = 0; r < aggregator_argv_.size(); ++r) {
    aggregators_[r] = std::make_unique<Process>(aggregator_argv_[r]);
    if (WaitForLoggedPort(*aggregators_[r], "serving gRPC on port") == 0) {
      error_ = "aggregator did not restart: " + aggregators_[r]->Output();
      return false;
    }
  }
  return true;
}

std::string LocalCluster::orchestrator_address() const {
  return absl::StrCat("127.0.0.1:", orchestrator_port_);
}

std::vector<std::pair<std::string, pid_t>> LocalCluster::Pids() const {
  std::vector<std::pair<std::string, pid_t>> pids;
  if (sim_) pids.emplace_back("upstream-sim", sim_->pid());
  for (const auto& [model, p] : model_sims_) pids.emplace_back("upstream-sim-" + model, p->pid());
  for (const auto& [name, p] : proposers_) pids.emplace_back("proposer-" + name, p->pid());
  for (size_t r = 0; r < aggregators_.size(); ++r) {
    if (aggregators_[r]) {
      pids.emplace_back(r == 0 ? "aggregator" : absl::StrCat("aggregator#", r),
                        aggregators_[r]->pid());
    }
  }
  if (orchestrator_) pids.emplace_back("orchestrator", orchestrator_->pid());
  return pids;
}

nlohmann::json LocalCluster::SimRequests(int64_t since) {
  HttpResult r =
      HttpGet(absl::StrCat("http://127.0.0.1:", sim_port_, "/sim/requests?since=", since));
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("requests")) return nlohmann::json::array();
  return j["requests"];
}

nlohmann::json LocalCluster::SimStats() {
  std::vector<int> ports = {sim_port_};
  ports.insert(ports.end(), model_sim_ports_.begin(), model_sim_ports_.end());
  nlohmann::json sum = nlohmann::json::object();
  for (int port : ports) {  // With simulator_per_model, the counts of every simulator added up.
    HttpResult r = HttpGet(absl::StrCat("http://127.0.0.1:", port, "/sim/stats"));
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) continue;
    for (const auto& [key, value] : j.items()) {
      if (value.is_number_integer()) {
        sum[key] = sum.value(key, int64_t{0}) + value.get<int64_t>();
      } else if (value.is_object()) {
        if (!sum.contains(key)) sum[key] = nlohmann::json::object();
        for (const auto& [k, v] : value.items()) {
          if (v.is_number_integer()) sum[key][k] = sum[key].value(k, int64_t{0}) + v.get<int64_t>();
        }
      }
    }
  }
  return sum;
}

int64_t LocalCluster::LastSimRequestId() {
  nlohmann::json all = SimRequests();
  return all.empty() ? 0 : all.back()["id"].get<int64_t>();
}

}  // namespace moa::testing
