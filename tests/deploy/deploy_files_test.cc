// The deployment files: every kustomize overlay renders into objects that
// agree with its cluster config, the compose file is accepted, and
// Prometheus's own tool accepts the scrape configs and alert rules.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
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

std::string ReadSource(const std::string& path) {
  std::ifstream in(kSource + "/" + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The folder of a file path.
std::string Dir(const std::string& path) { return path.substr(0, path.rfind('/')); }

// A container's args (or command) as one string, each followed by a space.
std::string Joined(const YAML::Node& list) {
  std::string out;
  for (const YAML::Node& a : list) out += a.as<std::string>() + " ";
  return out;
}

// The mount path of the volume that comes from a Secret named `secret`
// (generated names carry a hash suffix), or "".
std::string SecretMountPath(const YAML::Node& pod, const std::string& secret) {
  for (const YAML::Node& v : pod["spec"]["volumes"]) {
    if (!v["secret"] || !absl::StartsWith(v["secret"]["secretName"].as<std::string>(), secret)) {
      continue;
    }
    for (const YAML::Node& m : pod["spec"]["containers"][0]["volumeMounts"]) {
      if (m["name"].as<std::string>() == v["name"].as<std::string>()) {
        return m["mountPath"].as<std::string>();
      }
    }
  }
  return "";
}

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
      const YAML::Node c = pod["spec"]["containers"][0];
      if (!cfg->tls) {
        EXPECT_TRUE(c["readinessProbe"]["grpc"]) << name;
        continue;
      }
      // TLS: the config's files come from the Secret moa-tls, readable by the
      // pod's group, and the probes present the certificate (the kubelet's
      // gRPC probe cannot).
      EXPECT_EQ(SecretMountPath(pod, "moa-tls"), Dir(cfg->tls->ca_file)) << name;
      EXPECT_EQ(Dir(cfg->tls->cert_file), Dir(cfg->tls->ca_file));
      EXPECT_EQ(Dir(cfg->tls->key_file), Dir(cfg->tls->ca_file));
      EXPECT_EQ(pod["spec"]["securityContext"]["fsGroup"].as<int>(), 10001) << name;
      for (const char* probe : {"readinessProbe", "livenessProbe"}) {
        const std::string command = Joined(c[probe]["exec"]["command"]);
        EXPECT_THAT(command, HasSubstr("moa health --target=127.0.0.1:50051 ")) << name;
        EXPECT_THAT(command, HasSubstr("--tls_ca_file=" + cfg->tls->ca_file + " ")) << name;
        EXPECT_THAT(command, HasSubstr("--tls_cert_file=" + cfg->tls->cert_file + " ")) << name;
        EXPECT_THAT(command, HasSubstr("--tls_key_file=" + cfg->tls->key_file + " ")) << name;
      }
    }
  }
  // The orchestrator: named client keys from the Secret the overlay
  // generates; with TLS, both doors serve the certificate.
  {
    const YAML::Node pod = by_kind["Deployment"]["orchestrator"]["spec"]["template"];
    const std::string args = Joined(pod["spec"]["containers"][0]["args"]);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(args, m, std::regex("--api_keys_file=(\\S+) "))) << args;
    EXPECT_EQ(SecretMountPath(pod, "moa-client-keys"), Dir(m[1]));
    bool secret_found = false;
    for (const auto& [secret_name, secret] : by_kind["Secret"]) {
      if (!absl::StartsWith(secret_name, "moa-client-keys")) continue;
      secret_found = true;
      EXPECT_TRUE(secret["data"][std::string(m[1]).substr(Dir(m[1]).size() + 1)]) << secret_name;
    }
    EXPECT_TRUE(secret_found);
    if (cfg->tls) {
      EXPECT_THAT(args, HasSubstr("--tls_cert_file=" + cfg->tls->cert_file + " "));
      EXPECT_THAT(args, HasSubstr("--tls_key_file=" + cfg->tls->key_file + " "));
    }
    // With a store: the password the config names and the admin key come
    // from the Secret moa-store, and the store's Service is the config's
    // address, in front of a Redis that keeps its data on a volume.
    std::map<std::string, std::string> secret_env;
    for (const YAML::Node& e : pod["spec"]["containers"][0]["env"]) {
      if (e["valueFrom"]["secretKeyRef"]) {
        secret_env[e["name"].as<std::string>()] =
            e["valueFrom"]["secretKeyRef"]["name"].as<std::string>();
      }
    }
    if (cfg->store) {
      EXPECT_EQ(secret_env[cfg->store->password_env], "moa-store");
      EXPECT_EQ(secret_env["MOA_ADMIN_KEY"], "moa-store");
      ASSERT_EQ(by_kind["Service"].count(cfg->store->host), 1u) << cfg->store->host;
      const YAML::Node svc = by_kind["Service"][cfg->store->host];
      EXPECT_EQ(svc["spec"]["ports"][0]["port"].as<int>(), cfg->store->port);
      ASSERT_EQ(by_kind["StatefulSet"].count(cfg->store->host), 1u);
      const YAML::Node redis = by_kind["StatefulSet"][cfg->store->host];
      EXPECT_EQ(redis["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
                    .as<std::string>(),
                svc["spec"]["selector"]["app.kubernetes.io/name"].as<std::string>());
      const std::string redis_args =
          Joined(redis["spec"]["template"]["spec"]["containers"][0]["args"]);
      EXPECT_THAT(redis_args, HasSubstr("--appendonly yes "));
      EXPECT_THAT(redis_args, HasSubstr("--maxmemory-policy noeviction "));
      EXPECT_THAT(redis_args, HasSubstr("--requirepass $(MOA_REDIS_PASSWORD) "));
      EXPECT_EQ(redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].as<std::string>(),
                redis["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"]
                    .as<std::string>());
    } else {
      EXPECT_EQ(secret_env.count("MOA_ADMIN_KEY"), 0u) << "no admin API without a store";
      EXPECT_EQ(by_kind["StatefulSet"].size(), 0u);
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
  // With a store, only orchestrators may reach Redis (it has no metrics).
  if (policies.count("moa-store")) {
    const YAML::Node spec = policies["moa-store"]["spec"];
    ASSERT_EQ(spec["ingress"].size(), 1u);
    const YAML::Node rule = spec["ingress"][0];
    ASSERT_EQ(rule["from"].size(), 1u);
    EXPECT_EQ(
        rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as<std::string>(),
        "moa-orchestrator");
    EXPECT_EQ(rule["ports"][0]["port"].as<std::string>(), "redis");
  } else {
    EXPECT_NE(GetParam(), "simulator-store") << "the store has no NetworkPolicy";
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
                         ::testing::Values("simulator", "together", "simulator-tls",
                                           "simulator-store"),
                         [](const auto& info) {
                           return absl::StrReplaceAll(info.param, {{"-", "_"}});
                         });

// A TLS variant is its plain config word for word plus a tls: section, so
// the two cannot drift apart; the certificates name every Service dialled.
TEST(DeployFilesTest, TlsVariantsAreTheirPlainConfigsPlusTlsAndTheirCertificatesNameEveryHost) {
  for (const auto& [plain, tls] :
       {std::pair<std::string, std::string>{"deploy/docker/cluster.yaml",
                                            "deploy/docker/cluster-tls.yaml"},
        {"deploy/k8s/overlays/simulator/cluster.yaml",
         "deploy/k8s/overlays/simulator-tls/cluster.yaml"}}) {
    const std::string plain_text = ReadSource(plain);
    ASSERT_FALSE(plain_text.empty()) << plain;
    EXPECT_THAT(ReadSource(tls), HasSubstr(plain_text)) << tls << " has drifted from " << plain;
    auto cfg = config::LoadClusterConfig(kSource + "/" + tls);
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    ASSERT_TRUE(cfg->tls) << tls;
    EXPECT_FALSE(config::LoadClusterConfig(kSource + "/" + plain)->tls) << plain;
  }
  // cert-manager's certificate and make-dev-certs' cover every endpoint host.
  const YAML::Node certificate =
      YAML::LoadAll(ReadSource("deploy/k8s/optional/cert-manager-tls.yaml"))[3];
  ASSERT_EQ(certificate["metadata"]["name"].as<std::string>(), "moa-tls");
  std::set<std::string> names;
  for (const YAML::Node& n : certificate["spec"]["dnsNames"]) names.insert(n.as<std::string>());
  EXPECT_EQ(certificate["spec"]["ipAddresses"][0].as<std::string>(), "127.0.0.1");
  const std::string dir = ::testing::TempDir() + "moa-dev-certs-" + std::to_string(getpid());
  std::string out;
  ASSERT_EQ(RunCommand({kSource + "/scripts/make-dev-certs", dir}, &out), 0) << out;
  ASSERT_EQ(RunCommand({"/usr/bin/env", "openssl", "x509", "-in", dir + "/tls.crt", "-noout",
                        "-ext", "subjectAltName"},
                       &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("IP Address:127.0.0.1"));
  for (const char* file :
       {"deploy/k8s/overlays/simulator-tls/cluster.yaml", "deploy/docker/cluster-tls.yaml"}) {
    auto cfg = config::LoadClusterConfig(kSource + "/" + file);
    ASSERT_TRUE(cfg.ok());
    std::vector<std::string> endpoints = {cfg->aggregator_endpoint};
    for (const auto& m : cfg->models) endpoints.push_back(m.endpoint);
    for (std::string e : endpoints) {
      if (absl::StartsWith(e, "dns:///")) e = e.substr(7);
      const std::string host = e.substr(0, e.find(':'));
      EXPECT_EQ(names.count(host), 1u) << "cert-manager-tls.yaml does not name " << host;
      EXPECT_THAT(out, HasSubstr("DNS:" + host)) << "make-dev-certs does not name " << host;
    }
  }
  std::filesystem::remove_all(dir);
}

// A store variant is its plain config word for word plus a store: section
// whose password comes from the environment.
TEST(DeployFilesTest, StoreVariantsAreTheirPlainConfigsPlusAStore) {
  for (const auto& [plain, with_store] :
       {std::pair<std::string, std::string>{"deploy/docker/cluster.yaml",
                                            "deploy/docker/cluster-store.yaml"},
        {"deploy/k8s/overlays/simulator/cluster.yaml",
         "deploy/k8s/overlays/simulator-store/cluster.yaml"}}) {
    const std::string plain_text = ReadSource(plain);
    ASSERT_FALSE(plain_text.empty()) << plain;
    EXPECT_THAT(ReadSource(with_store), HasSubstr(plain_text))
        << with_store << " has drifted from " << plain;
    auto cfg = config::LoadClusterConfig(kSource + "/" + with_store);
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    ASSERT_TRUE(cfg->store) << with_store;
    EXPECT_EQ(cfg->store->password_env, "MOA_REDIS_PASSWORD");
    EXPECT_FALSE(cfg->store->fail_closed);
  }
}

// The compose store variant: a Redis with its data on a volume and a
// password, not published; the orchestrator on the store config with the
// password and the admin key from the environment, which must be set.
TEST(DeployFilesTest, DockerComposeStoreVariantRunsRedisForTheOrchestratorOnly) {
  std::string out;
  ASSERT_NE(RunCommand({"/usr/bin/env", "-u", "MOA_REDIS_PASSWORD", "docker-compose", "-f",
                        kSource + "/deploy/docker-compose.yml", "-f",
                        kSource + "/deploy/docker-compose.store.yml", "config"},
                       &out),
            0)
      << "the store variant needs a password: " << out;
  ASSERT_EQ(RunCommand({"/usr/bin/env", "MOA_REDIS_PASSWORD=redis-secret-0123456789",
                        "MOA_ADMIN_KEY=admin-secret-0123456789", "docker-compose", "-f",
                        kSource + "/deploy/docker-compose.yml", "-f",
                        kSource + "/deploy/docker-compose.store.yml", "config"},
                       &out),
            0)
      << out;
  YAML::Node compose = YAML::Load(out.substr(out.rfind("\n", out.find("services:")) + 1));
  auto cfg = config::LoadClusterConfig(kSource + "/deploy/docker/cluster-store.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const YAML::Node redis = compose["services"][cfg->store->host];
  ASSERT_TRUE(redis) << "no service " << cfg->store->host;
  EXPECT_FALSE(redis["ports"]) << "the store is published";
  const std::string redis_command = Joined(redis["command"]);
  EXPECT_THAT(redis_command, HasSubstr("--appendonly yes "));
  EXPECT_THAT(redis_command, HasSubstr("--requirepass redis-secret-0123456789 "));
  EXPECT_THAT(redis["volumes"][0].as<std::string>(""), HasSubstr(":/data"))
      << "spend must outlive the container";
  const YAML::Node orchestrator = compose["services"]["orchestrator"];
  EXPECT_THAT(Joined(orchestrator["command"]), HasSubstr("--config=/etc/moa/cluster-store.yaml "));
  EXPECT_EQ(orchestrator["environment"][cfg->store->password_env].as<std::string>(""),
            "redis-secret-0123456789");
  EXPECT_EQ(orchestrator["environment"]["MOA_ADMIN_KEY"].as<std::string>(""),
            "admin-secret-0123456789");
  EXPECT_THAT(ReadSource("deploy/docker/Dockerfile"), HasSubstr("deploy/docker/cluster-store.yaml"))
      << "the image must carry the store config";
}

// Everything the Dockerfile copies from the repository is in the build
// context: .dockerignore ignores all but what it names.
TEST(DeployFilesTest, TheBuildContextHoldsEveryFileTheDockerfileCopies) {
  const std::string dockerfile =
      absl::StrReplaceAll(ReadSource("deploy/docker/Dockerfile"), {{"\\\n", " "}});
  const std::string ignore = ReadSource(".dockerignore");
  int copied = 0;
  std::istringstream lines(dockerfile);
  for (std::string line; std::getline(lines, line);) {
    if (!absl::StartsWith(line, "COPY ") || absl::StrContains(line, "--from=")) continue;
    std::vector<std::string> words;
    std::istringstream in(line.substr(5));
    for (std::string w; in >> w;) words.push_back(w);
    words.pop_back();  // The destination.
    for (const std::string& path : words) {
      ++copied;
      bool included = false;
      for (std::string prefix = path; !prefix.empty();) {
        included |= absl::StrContains(ignore, "\n!" + prefix + "\n") ||
                    absl::StrContains(ignore, "\n!" + prefix + "/\n");
        const size_t slash = prefix.rfind('/');
        prefix = slash == std::string::npos ? "" : prefix.substr(0, slash);
      }
      EXPECT_TRUE(included) << ".dockerignore leaves out " << path;
    }
  }
  EXPECT_GE(copied, 10);
}

// The compose TLS variant: every moa service mounts the certificates, runs
// the TLS config and health-checks with the certificate; the doors serve it.
// Every shipped local config loads; the mixed-vendor ones reach each model
// in its own API (one of each, and the final answer's model Anthropic's).
TEST(DeployFilesTest, EveryLocalConfigLoadsAndTheMixedOnesSpeakEveryApi) {
  for (const char* file :
       {"cluster.yaml", "together.yaml", "ollama.yaml", "vllm.yaml", "mixed-vendors.yaml"}) {
    auto cfg = config::LoadClusterConfig(kSource + "/deploy/local/" + file);
    ASSERT_TRUE(cfg.ok()) << file << ": " << cfg.status();
  }
  for (const char* file : {"cluster.yaml", "mixed-vendors.yaml"}) {
    auto cfg = config::LoadClusterConfig(kSource + "/deploy/local/" + file);
    const config::PipelineConfig* mixed = cfg->FindPipeline("mixed");
    ASSERT_NE(mixed, nullptr) << file;
    std::set<std::string> apis;
    for (const auto& layer : mixed->layers) {
      for (const std::string& m : layer) apis.insert(cfg->FindModel(m)->upstream->api);
    }
    EXPECT_EQ(apis, (std::set<std::string>{"openai", "anthropic", "gemini"})) << file;
    EXPECT_EQ(cfg->FindModel(mixed->aggregator)->upstream->api, "anthropic") << file;
  }
}

TEST(DeployFilesTest, DockerComposeTlsVariantMountsCertificatesEverywhere) {
  std::string out;
  ASSERT_EQ(RunCommand({"/usr/bin/env", "-u", "MOA_TLS_DIR", "docker-compose", "-f",
                        kSource + "/deploy/docker-compose.yml", "-f",
                        kSource + "/deploy/docker-compose.tls.yml", "config"},
                       &out),
            0)
      << out;
  YAML::Node compose = YAML::Load(out.substr(out.rfind("\n", out.find("services:")) + 1));
  int tls_services = 0;
  for (const auto& service : compose["services"]) {
    const std::string name = service.first.as<std::string>();
    if (!absl::StartsWith(service.second["image"].as<std::string>(""), "moa-cluster") ||
        name == "upstream-sim") {
      continue;
    }
    ++tls_services;
    const std::string command = Joined(service.second["command"]);
    EXPECT_THAT(command, HasSubstr("--config=/etc/moa/cluster-tls.yaml ")) << name;
    bool mounted = false;
    for (const YAML::Node& v : service.second["volumes"]) {
      mounted |= absl::StrContains(v.as<std::string>(), "/deploy/tls:/etc/moa/tls:ro");
    }
    EXPECT_TRUE(mounted) << name;
    const std::string flags = service.second["environment"]["MOA_HEALTH_FLAGS"].as<std::string>("");
    EXPECT_THAT(flags, HasSubstr("--tls_cert_file=/etc/moa/tls/tls.crt")) << name;
    if (name == "orchestrator") {
      EXPECT_THAT(command, HasSubstr("--tls_cert_file=/etc/moa/tls/tls.crt "));
      EXPECT_THAT(command, HasSubstr("--http_port=8080 "));
    }
  }
  EXPECT_EQ(tls_services, 7) << "5 proposers, the aggregator, the orchestrator";
}

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
  EXPECT_THAT(out, HasSubstr("SUCCESS: 6 rules found"));
}

}  // namespace
}  // namespace moa

namespace moa {
namespace {

// Every ```yaml block of docs/ that is a whole cluster config (it has
// `models:`) parses as written; a `limits:` block parses on top of the
// first such config. The other blocks are fragments of one (a pipeline,
// a route) or of a keys file, shown inside a config of the reader's.
TEST(DocsSnippetsTest, EveryWholeClusterConfigInTheDocsParsesAsWritten) {
  std::vector<std::pair<std::string, std::string>> blocks;  // (page, text)
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(MOA_SOURCE_DIR) + "/docs")) {
    if (entry.path().extension() != ".md") continue;
    std::ifstream in(entry.path());
    std::string line, block;
    bool inside = false;
    while (std::getline(in, line)) {
      if (!inside && line == "```yaml") {
        inside = true;
        block.clear();
      } else if (inside && line == "```") {
        inside = false;
        blocks.emplace_back(entry.path().filename().string(), block);
      } else if (inside) {
        block += line + "\n";
      }
    }
  }
  std::string whole;
  int parsed = 0;
  for (const auto& [page, text] : blocks) {
    if (text.rfind("models:", 0) != 0) continue;
    auto cfg = config::ParseClusterConfig(text, page);
    EXPECT_TRUE(cfg.ok()) << page << ": " << cfg.status().message();
    if (whole.empty()) whole = text;
    ++parsed;
  }
  ASSERT_GE(parsed, 1) << "docs/configuration.md shows a whole cluster config";
  for (const auto& [page, text] : blocks) {
    if (text.rfind("limits:", 0) != 0) continue;
    auto cfg = config::ParseClusterConfig(whole + text, page);
    ASSERT_TRUE(cfg.ok()) << page << ": " << cfg.status().message();
    EXPECT_EQ(cfg->limits.max_messages, 512);
    ++parsed;
  }
  EXPECT_GE(parsed, 2);
}

}  // namespace
}  // namespace moa
