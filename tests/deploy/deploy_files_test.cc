// The deployment files: every kustomize overlay renders into objects that
// agree with its cluster config, the compose file is accepted, and
// Prometheus's own tool accepts the scrape configs and alert rules.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "lib/config/cluster_config.h"
#include "tests/support/test_support.h"

namespace moa {
namespace {

using ::moa::testing::Process;
using ::testing::HasSubstr;

const std::string kSource = MOA_SOURCE_DIR;

// Runs a command; returns its exit code and output.
int RunCommand(const std::vector<std::string>& argv, std::string* out) {
  Process p(argv);
  int code = p.Wait(absl::Seconds(60));
  *out = p.Output();
  return code;
}

std::string DnsName(const std::string& model) { return absl::StrReplaceAll(model, {{".", "-"}}); }

class KustomizeOverlayTest : public ::testing::TestWithParam<std::string> {};

TEST_P(KustomizeOverlayTest, RendersObjectsThatAgreeWithItsClusterConfig) {
  std::string out;
  ASSERT_EQ(RunCommand({"/usr/bin/env", "kubectl", "kustomize",
                        kSource + "/deploy/k8s/overlays/" + GetParam()},
                       &out),
            0)
      << out;
  // kubectl prints deprecation warnings as "# Warning" comment lines.
  std::vector<YAML::Node> docs = YAML::LoadAll(out);
  std::map<std::string, std::map<std::string, YAML::Node>> by_kind;
  for (const YAML::Node& d : docs) {
    if (!d.IsMap()) continue;
    by_kind[d["kind"].as<std::string>()][d["metadata"]["name"].as<std::string>()] = d;
  }
  ASSERT_EQ(by_kind["ConfigMap"].size(), 1u);
  const YAML::Node config_map = by_kind["ConfigMap"].begin()->second;
  const std::string config_map_name = by_kind["ConfigMap"].begin()->first;
  EXPECT_TRUE(absl::StartsWith(config_map_name, "moa-config")) << config_map_name;
  auto cfg = config::ParseClusterConfig(config_map["data"]["cluster.yaml"].as<std::string>(),
                                        "ConfigMap cluster.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();

  // Every Deployment: probes, resources, a selector matching its pod labels,
  // the config mounted, and time to drain.
  for (const auto& [name, d] : by_kind["Deployment"]) {
    const YAML::Node pod = d["spec"]["template"];
    for (const auto& kv : d["spec"]["selector"]["matchLabels"]) {
      ASSERT_TRUE(pod["metadata"]["labels"][kv.first.as<std::string>()]) << name;
      EXPECT_EQ(pod["metadata"]["labels"][kv.first.as<std::string>()].as<std::string>(),
                kv.second.as<std::string>())
          << name;
    }
    for (const YAML::Node& c : pod["spec"]["containers"]) {
      EXPECT_TRUE(c["readinessProbe"]) << name;
      EXPECT_TRUE(c["livenessProbe"]) << name;
      EXPECT_TRUE(c["resources"]["requests"]["cpu"]) << name;
      EXPECT_TRUE(c["resources"]["requests"]["memory"]) << name;
      EXPECT_TRUE(c["resources"]["limits"]["cpu"]) << name;
      EXPECT_TRUE(c["resources"]["limits"]["memory"]) << name;
      for (const YAML::Node& a : c["args"]) {
        std::smatch m;
        std::string arg = a.as<std::string>();
        if (std::regex_match(arg, m, std::regex("--drain_grace=([0-9]+)s"))) {
          // A drain ends within --drain_grace + 1 s; 5 s leave room for the
          // exit and the kubelet.
          EXPECT_GE(pod["spec"]["terminationGracePeriodSeconds"].as<int>(), std::stoi(m[1]) + 5)
              << name << ": the pod must outlive the drain";
        }
      }
    }
    if (name != "upstream-sim") {
      EXPECT_EQ(pod["spec"]["volumes"][0]["configMap"]["name"].as<std::string>(), config_map_name)
          << name;
      EXPECT_TRUE(pod["spec"]["containers"][0]["readinessProbe"]["grpc"]) << name;
    }
  }

  // Every model of the config: a Deployment that runs it and a headless
  // Service whose name and port are those of the model's endpoint.
  for (const config::ModelConfig& m : cfg->models) {
    std::string name = "proposer-" + DnsName(m.name);
    ASSERT_EQ(by_kind["Deployment"].count(name), 1u) << m.name;
    std::string args;
    for (const YAML::Node& a :
         by_kind["Deployment"][name]["spec"]["template"]["spec"]["containers"][0]["args"]) {
      args += a.as<std::string>() + " ";
    }
    EXPECT_THAT(args, HasSubstr("--model=" + m.name + " ")) << name;
    EXPECT_THAT(args, HasSubstr("--port=50051 ")) << name;
    ASSERT_EQ(by_kind["Service"].count(name), 1u) << m.name;
    const YAML::Node svc = by_kind["Service"][name];
    EXPECT_EQ(svc["spec"]["clusterIP"].as<std::string>(), "None") << name << " is headless";
    EXPECT_EQ(m.endpoint,
              absl::StrCat("dns:///", name, ":", svc["spec"]["ports"][0]["port"].as<int>()));
    for (const auto& kv : svc["spec"]["selector"]) {
      EXPECT_EQ(by_kind["Deployment"][name]["spec"]["template"]["metadata"]["labels"]
                       [kv.first.as<std::string>()]
                           .as<std::string>(),
                kv.second.as<std::string>());
    }
    EXPECT_EQ(by_kind["PodDisruptionBudget"].count(name), 1u) << name;
    EXPECT_EQ(by_kind["HorizontalPodAutoscaler"].count(name), 1u) << name;
  }
  EXPECT_EQ(cfg->aggregator_endpoint, "dns:///aggregator:50051");
  EXPECT_EQ(by_kind["Service"]["aggregator"]["spec"]["clusterIP"].as<std::string>(), "None");
  ASSERT_EQ(by_kind["Deployment"].count("orchestrator"), 1u);
  EXPECT_EQ(by_kind["HorizontalPodAutoscaler"].count("orchestrator"), 1u);
  for (const auto& [name, hpa] : by_kind["HorizontalPodAutoscaler"]) {
    EXPECT_EQ(by_kind["Deployment"].count(hpa["spec"]["scaleTargetRef"]["name"].as<std::string>()),
              1u)
        << name;
  }
  // The upstream every model calls is there: the simulator's Service, or a
  // Secret for the provider's key.
  for (const config::ModelConfig& m : cfg->models) {
    if (absl::StrContains(m.upstream->base_url, "upstream-sim")) {
      EXPECT_EQ(by_kind["Service"].count("upstream-sim"), 1u);
    }
    if (!m.upstream->api_key_env.empty()) {
      ASSERT_EQ(by_kind["Secret"].count("moa-upstream-keys"), 1u);
      EXPECT_TRUE(by_kind["Secret"]["moa-upstream-keys"]["stringData"][m.upstream->api_key_env]);
    }
  }
}

// The NetworkPolicies, on the rendered objects: a proposer's gRPC port only
// from the orchestrator and the aggregator, the aggregator's only from the
// orchestrator, every metrics port from anywhere.
TEST_P(KustomizeOverlayTest, OnlyTheOrchestratorAndTheAggregatorMayCallProposers) {
  std::string out;
  ASSERT_EQ(RunCommand({"/usr/bin/env", "kubectl", "kustomize",
                        kSource + "/deploy/k8s/overlays/" + GetParam()},
                       &out),
            0)
      << out;
  std::map<std::string, YAML::Node> policies;
  for (const YAML::Node& d : YAML::LoadAll(out)) {
    if (d.IsMap() && d["kind"].as<std::string>() == "NetworkPolicy") {
      policies[d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                   .as<std::string>()] = d;
    }
  }
  const std::map<std::string, std::set<std::string>> callers = {
      {"moa-proposer", {"moa-orchestrator", "moa-aggregator"}},
      {"moa-aggregator", {"moa-orchestrator"}}};
  for (const auto& [target, allowed] : callers) {
    ASSERT_EQ(policies.count(target), 1u) << target << " has no NetworkPolicy";
    const YAML::Node spec = policies[target]["spec"];
    EXPECT_EQ(spec["policyTypes"][0].as<std::string>(), "Ingress");
    std::set<std::string> grpc_from;
    bool metrics_open = false;
    for (const YAML::Node& rule : spec["ingress"]) {
      std::set<std::string> ports;
      for (const YAML::Node& p : rule["ports"]) ports.insert(p["port"].as<std::string>());
      if (ports.count("grpc")) {
        ASSERT_TRUE(rule["from"]) << target << ": the gRPC port is open to everyone";
        for (const YAML::Node& from : rule["from"]) {
          grpc_from.insert(
              from["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as<std::string>());
        }
      }
      if (ports.count("metrics") && !rule["from"]) metrics_open = true;
    }
    EXPECT_EQ(grpc_from, allowed) << target;
    EXPECT_TRUE(metrics_open) << target << ": Prometheus must reach the metrics port";
  }
}

INSTANTIATE_TEST_SUITE_P(Overlays, KustomizeOverlayTest,
                         ::testing::Values("simulator", "together"));

TEST(DeployFilesTest, DockerComposeAcceptsTheComposeFileAndHasAServicePerEndpoint) {
  std::string out;
  ASSERT_EQ(RunCommand({"/usr/bin/env", "docker-compose", "-f",
                        kSource + "/deploy/docker-compose.yml", "config"},
                       &out),
            0)
      << out;
  YAML::Node compose = YAML::Load(out.substr(
      out.find("services:") == std::string::npos ? 0 : out.rfind("\n", out.find("services:")) + 1));
  for (const char* file : {"cluster.yaml", "together.yaml"}) {
    auto cfg = config::LoadClusterConfig(kSource + "/deploy/docker/" + file);
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    for (const auto& m : cfg->models) {
      std::string host = m.endpoint.substr(0, m.endpoint.find(':'));
      ASSERT_TRUE(compose["services"][host]) << file << ": no service " << host;
      std::string command;
      for (const YAML::Node& a : compose["services"][host]["command"]) {
        command += a.as<std::string>() + " ";
      }
      EXPECT_THAT(command, HasSubstr("--model=" + m.name + " "));
    }
    EXPECT_TRUE(compose["services"]["aggregator"]);
  }
  for (const char* s : {"orchestrator", "prometheus", "grafana", "upstream-sim"}) {
    EXPECT_TRUE(compose["services"][s]) << s;
  }
}

// The doors take any caller while MOA_API_KEYS is empty, so nothing is
// published beyond loopback unless asked; every moa container's health check
// probes its own service (the simulator over HTTP).
TEST(DeployFilesTest, DockerComposePublishesOnLoopbackAndChecksEachServicesOwnPort) {
  std::string out;
  ASSERT_EQ(RunCommand({"/usr/bin/env", "-u", "MOA_PUBLISH_ADDRESS", "docker-compose", "-f",
                        kSource + "/deploy/docker-compose.yml", "config"},
                       &out),
            0)
      << out;
  YAML::Node compose = YAML::Load(out.substr(out.rfind("\n", out.find("services:")) + 1));
  int published = 0;
  for (const auto& service : compose["services"]) {
    const std::string name = service.first.as<std::string>();
    for (const YAML::Node& port : service.second["ports"]) {
      ++published;
      EXPECT_TRUE(absl::StartsWith(port.as<std::string>(), "127.0.0.1:"))
          << name << " publishes " << port.as<std::string>();
    }
    if (!absl::StartsWith(service.second["image"].as<std::string>(""), "moa-cluster")) continue;
    std::string command, port;
    for (const YAML::Node& a : service.second["command"]) {
      command += a.as<std::string>() + " ";
      if (absl::StartsWith(a.as<std::string>(), "--port=")) port = a.as<std::string>().substr(7);
    }
    ASSERT_FALSE(port.empty()) << name << ": no --port in " << command;
    std::string target = service.second["environment"]["MOA_HEALTH_TARGET"].as<std::string>("");
    if (name == "upstream-sim") {
      EXPECT_EQ(target, "http://127.0.0.1:" + port + "/healthz");
    } else {
      EXPECT_EQ(target, "127.0.0.1:" + port) << name;
    }
  }
  EXPECT_EQ(published, 4) << "gRPC, HTTP, Prometheus, Grafana";
}

TEST(DeployFilesTest, PromtoolAcceptsScrapeConfigsAndAlertRules) {
  std::string out;
  for (const char* file : {"prometheus-compose.yml", "prometheus-local.yml"}) {
    EXPECT_EQ(RunCommand({"/usr/bin/env", "promtool", "check", "config",
                          kSource + "/deploy/prometheus/" + file},
                         &out),
              0)
        << out;
  }
  EXPECT_EQ(RunCommand({"/usr/bin/env", "promtool", "check", "rules",
                        kSource + "/deploy/prometheus/alerts.yml"},
                       &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("SUCCESS: 5 rules found"));
}

}  // namespace
}  // namespace moa
