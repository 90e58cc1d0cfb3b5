// Chaos across hosts: every service in its own network namespace with its
// own address on one bridge (as root, with `ip netns` and veth pairs), two
// replicas of a proposer model, of the final answer's model and of the
// aggregator. Under a bounded load, one replica of each is killed with
// SIGKILL and another proposer's link goes down: no request may fail.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lib/server/health_check.h"
#include "moa/v1/orchestrator.grpc.pb.h"
#include "tests/support/chat_load.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

constexpr char kIp[] = "/usr/sbin/ip";

// Runs `ip` with the arguments; true on exit 0.
bool Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kIp};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv);
  return p.Wait(absl::Seconds(10)) == 0;
}

// A bridge and one namespace per host, removed again in the destructor.
// Names carry the test's pid so a leftover of another run cannot clash.
class Hosts {
 public:
  Hosts() : tag_(absl::StrCat(getpid() % 100000)) {
    bridge_ = "moab" + tag_;
    ok_ = Ip({"link", "add", bridge_, "type", "bridge"}) &&
          Ip({"addr", "add", subnet_ + "1/24", "dev", bridge_}) &&
          Ip({"link", "set", bridge_, "up"});
  }
  ~Hosts() {
    for (const auto& [name, host] : hosts_) {
      Ip({"link", "del", host.veth});
      Ip({"netns", "del", host.ns});
    }
    Ip({"link", "del", bridge_});
  }
  bool ok() const { return ok_; }

  // A host named `name` at <subnet>.`octet`.
  bool Add(const std::string& name, int octet) {
    Host h{absl::StrCat("moa", tag_, "-", name), absl::StrCat("mv", tag_, "x", octet),
           absl::StrCat(subnet_, octet)};
    const std::string peer = absl::StrCat("mp", tag_, "x", octet);
    hosts_[name] = h;
    return Ip({"netns", "add", h.ns}) &&
           Ip({"link", "add", h.veth, "type", "veth", "peer", "name", peer}) &&
           Ip({"link", "set", peer, "netns", h.ns}) &&
           Ip({"link", "set", h.veth, "master", bridge_}) && Ip({"link", "set", h.veth, "up"}) &&
           Ip({"netns", "exec", h.ns, kIp, "addr", "add", h.address + "/24", "dev", peer}) &&
           Ip({"netns", "exec", h.ns, kIp, "link", "set", peer, "up"}) &&
           Ip({"netns", "exec", h.ns, kIp, "link", "set", "lo", "up"});
  }

  // Starts a program on the host (the pid is the program's: `ip netns
  // exec` execs it).
  std::unique_ptr<Process> Run(const std::string& name, std::vector<std::string> argv) {
    std::vector<std::string> full = {kIp, "netns", "exec", hosts_.at(name).ns};
    full.insert(full.end(), argv.begin(), argv.end());
    return std::make_unique<Process>(full);
  }

  // The host's link goes down: packets to and from it are dropped.
  bool LinkDown(const std::string& name) {
    return Ip({"link", "set", hosts_.at(name).veth, "down"});
  }
  const std::string& address(const std::string& name) const { return hosts_.at(name).address; }

 private:
  struct Host {
    std::string ns, veth, address;
  };
  std::string tag_;
  // A /24 of its own per run (from the pid, like the names), so two runs on
  // one machine never share addresses or routes.
  std::string subnet_ = absl::StrCat("10.", 100 + getpid() % 100, ".", getpid() / 100 % 250, ".");
  std::string bridge_;
  bool ok_ = false;
  std::map<std::string, Host> hosts_;
};

TEST(ChaosNetnsTest, KillsAndALinkDownAcrossHostsFailNoRequest) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces (CI runs as root)";
  Hosts hosts;
  ASSERT_TRUE(hosts.ok()) << "could not create the bridge";
  const std::map<std::string, int> layout = {{"sim", 10},  {"a1", 21},  {"a2", 22}, {"b", 31},
                                             {"c", 41},    {"z1", 51},  {"z2", 52}, {"agg1", 61},
                                             {"agg2", 62}, {"orch", 70}};
  for (const auto& [name, octet] : layout) ASSERT_TRUE(hosts.Add(name, octet)) << name;

  char dir_template[] = "/tmp/moa-chaos-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  std::ofstream(dir + "/profiles.yaml")
      << "default: {time_to_first_token: 0.05, tokens_per_second: 100, answer_tokens: 30}\n";
  std::map<std::string, std::unique_ptr<Process>> procs;
  procs["sim"] = hosts.Run(
      "sim", {BinaryPath("tools/upstream-sim/moa-upstream-sim"), "--host=" + hosts.address("sim"),
              "--port=8000", "--profiles=" + dir + "/profiles.yaml"});
  ASSERT_GT(WaitForLoggedPort(*procs["sim"], "on port"), 0) << procs["sim"]->Output();
  const std::string upstream = absl::StrCat("http://", hosts.address("sim"), ":8000/v1");
  auto endpoint = [&](std::vector<std::string> names, int port) {
    std::vector<std::string> addresses;
    for (const auto& n : names) addresses.push_back(absl::StrCat(hosts.address(n), ":", port));
    return addresses.size() == 1 ? addresses[0]
                                 : absl::StrCat("ipv4:", absl::StrJoin(addresses, ","));
  };
  const std::string config = dir + "/cluster.yaml";
  std::ofstream(config) << "models:\n"
                        << "  a: {endpoint: \"" << endpoint({"a1", "a2"}, 50061) << "\"}\n"
                        << "  b: {endpoint: \"" << endpoint({"b"}, 50061) << "\"}\n"
                        << "  c: {endpoint: \"" << endpoint({"c"}, 50061) << "\"}\n"
                        << "  z: {endpoint: \"" << endpoint({"z1", "z2"}, 50061) << "\"}\n"
                        << "aggregator: {endpoint: \"" << endpoint({"agg1", "agg2"}, 50070)
                        << "\"}\n"
                        << "pipelines:\n  moa: {layers: [[a, b, c]], aggregator: z}\n";
  const std::map<std::string, std::string> proposer_model = {{"a1", "a"}, {"a2", "a"}, {"b", "b"},
                                                             {"c", "c"},  {"z1", "z"}, {"z2", "z"}};
  for (const auto& [host, model] : proposer_model) {
    procs[host] =
        hosts.Run(host, {BinaryPath("services/proposer/moa-proposer"),
                         "--host=" + hosts.address(host), "--port=50061", "--metrics_port=0",
                         "--model=" + model, "--upstream_url=" + upstream, "--max_attempts=1"});
  }
  for (const std::string host : {"agg1", "agg2"}) {
    procs[host] = hosts.Run(
        host, {BinaryPath("services/aggregator/moa-aggregator"), "--host=" + hosts.address(host),
               "--port=50070", "--metrics_port=0", "--config=" + config});
  }
  procs["orch"] = hosts.Run("orch", {BinaryPath("services/orchestrator/moa-orchestrator"),
                                     "--host=" + hosts.address("orch"), "--port=50051",
                                     "--metrics_port=0", "--http_port=-1", "--config=" + config});
  for (auto& [name, p] : procs) {
    ASSERT_GT(WaitForLoggedPort(*p, name == "sim" ? "on port" : "serving gRPC on port"), 0)
        << name << ": " << p->Output();
  }
  auto channel = grpc::CreateChannel(absl::StrCat(hosts.address("orch"), ":50051"),
                                     grpc::InsecureChannelCredentials());
  ASSERT_TRUE(WaitFor([&] { return server::HealthCheck(channel) == 1; }, absl::Seconds(15)))
      << procs["orch"]->Output();
  auto stub = v1::OrchestratorService::NewStub(channel);

  constexpr int kRequests = 120;
  constexpr int kConcurrency = 10;
  ChatLoad load(stub.get(), kRequests, kConcurrency, absl::Seconds(20));
  ASSERT_TRUE(WaitFor([&] { return load.done() >= 20; }, absl::Seconds(60)));
  procs["a1"]->Signal(SIGKILL);
  procs["agg1"]->Signal(SIGKILL);
  procs["z2"]->Signal(SIGKILL);
  EXPECT_TRUE(hosts.LinkDown("b"));
  const int at_chaos = load.done();
  const std::vector<std::string> failures = load.Finish();
  std::printf("%d requests across hosts, %d after the kills and the link down: %zu failed\n",
              kRequests, kRequests - at_chaos, failures.size());
  EXPECT_LT(at_chaos, kRequests - 40) << "the chaos landed under load";
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, e.g. " << failures[0];
  procs.clear();  // SIGKILL the rest before the namespaces go.
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace moa::testing
