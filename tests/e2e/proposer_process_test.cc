// The real moa-proposer and moa-upstream-sim binaries as separate processes:
// start-up, secrets kept out of logs and errors, and drain on SIGTERM.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/net/http_server.h"
#include "lib/server/health_check.h"
#include "moa/v1/proposer.grpc.pb.h"
#include "tests/support/local_cluster.h"
#include "tests/support/test_support.h"

namespace moa {
namespace {

using ::moa::testing::BinaryPath;
using ::moa::testing::Process;
using ::moa::testing::WaitFor;
using ::moa::testing::WaitForLoggedPort;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSimKey[] = "sk-e2e-secret-key-4242";

class ProposerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    profiles_ = "/tmp/moa-e2e-profiles-" + std::to_string(getpid()) + ".yaml";
    std::ofstream(profiles_) << "default: {time_to_first_token: 0.01, tokens_per_second: 200, "
                                "answer_tokens: 20}\n"
                                "models:\n  slow: {tokens_per_second: 20, answer_tokens: 20}\n";
    sim_ = std::make_unique<Process>(
        std::vector<std::string>{BinaryPath("tools/upstream-sim/moa-upstream-sim"), "--port=0",
                                 "--profiles=" + profiles_, "--api_key_env=SIM_KEY"},
        std::vector<std::string>{absl::StrCat("SIM_KEY=", kSimKey)});
    sim_port_ = WaitForLoggedPort(*sim_, "on port");
    ASSERT_GT(sim_port_, 0) << sim_->Output();
  }

  void TearDown() override { std::remove(profiles_.c_str()); }

  std::unique_ptr<Process> StartProposer(const std::string& model, const std::string& key,
                                         std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        BinaryPath("services/proposer/moa-proposer"),
        "--host=127.0.0.1",
        "--port=0",
        "--metrics_port=0",
        "--model=" + model,
        absl::StrCat("--upstream_url=http://127.0.0.1:", sim_port_, "/v1"),
        "--api_key_env=UPSTREAM_KEY",
        "--max_attempts=1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Process>(
        argv, std::vector<std::string>{"UPSTREAM_KEY=" + key, "MOA_LOG_LEVEL=debug"});
  }

  static grpc::Status Ask(int port, std::string* text,
                          absl::Duration deadline = absl::Seconds(10)) {
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    auto stub = v1::ProposerService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    v1::GenerateRequest req;
    auto* m = req.add_messages();
    m->set_role(v1::ROLE_USER);
    m->set_content("hello");
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse resp;
    while (reader->Read(&resp)) {
      if (resp.has_delta()) *text += resp.delta();
    }
    return reader->Finish();
  }

  std::string profiles_;
  std::unique_ptr<Process> sim_;
  int sim_port_ = 0;
};

TEST_F(ProposerProcessTest, ServesWithTheKeyAndNeverPrintsIt) {
  auto good = StartProposer("m1", kSimKey);
  int port = WaitForLoggedPort(*good, "serving gRPC on port");
  ASSERT_GT(port, 0) << good->Output();
  std::string text;
  grpc::Status ok = Ask(port, &text);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_THAT(text, HasSubstr("[m1 answer"));
  EXPECT_EQ(moa::server::HealthCheck(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                         grpc::InsecureChannelCredentials())),
            1);

  auto bad = StartProposer("m2", "sk-wrong-key-e2e-777");
  int bad_port = WaitForLoggedPort(*bad, "serving gRPC on port");
  ASSERT_GT(bad_port, 0) << bad->Output();
  std::string ignored;
  grpc::Status denied = Ask(bad_port, &ignored);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(denied.error_message(), Not(HasSubstr("sk-wrong-key-e2e-777")));

  good->Signal(SIGTERM);
  bad->Signal(SIGTERM);
  sim_->Signal(SIGTERM);
  EXPECT_EQ(good->Wait(absl::Seconds(10)), 0);
  EXPECT_EQ(bad->Wait(absl::Seconds(10)), 0);
  EXPECT_EQ(sim_->Wait(absl::Seconds(10)), 0);
  EXPECT_THAT(bad->Output(), HasSubstr("HTTP 401")) << "the failure is logged";
  for (Process* p : {good.get(), bad.get(), sim_.get()}) {
    EXPECT_THAT(p->Output(), Not(HasSubstr(kSimKey)));
    EXPECT_THAT(p->Output(), Not(HasSubstr("sk-wrong-key-e2e-777")));
  }
}

// An upstream that sends a mistyped usage object once the answer is done.
class MistypedUsageUpstream : public net::HttpHandler {
 public:
  void Handle(net::HttpRequest, std::shared_ptr<net::HttpExchange> exchange) override {
    exchange->Respond({200,
                       "text/event-stream",
                       "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
                       "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":\"12\"}}\n\n"
                       "data: [DONE]\n\n",
                       {}});
  }
};

TEST_F(ProposerProcessTest, AMistypedUsageFromTheUpstreamFailsTheCallAndTheProcessServesOn) {
  MistypedUsageUpstream handler;
  auto upstream = *net::HttpServer::Start({}, &handler);
  auto p = StartProposer(
      "m1", kSimKey, {absl::StrCat("--upstream_url=http://127.0.0.1:", upstream->port(), "/v1")});
  int port = WaitForLoggedPort(*p, "serving gRPC on port");
  ASSERT_GT(port, 0) << p->Output();
  for (int i = 0; i < 3; ++i) {
    std::string text;
    grpc::Status s = Ask(port, &text);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("usage.prompt_tokens"));
  }
  EXPECT_EQ(moa::server::HealthCheck(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                         grpc::InsecureChannelCredentials())),
            1);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(absl::Seconds(10)), 0) << "the process was still there to drain";
}

TEST_F(ProposerProcessTest, PasswordsInTheUpstreamUrlNeverReachTheLog) {
  auto p = StartProposer("m1", kSimKey,
                         {absl::StrCat("--upstream_url=http://moa-user:pa55-w0rd-e2e@127.0.0.1:",
                                       sim_port_, "/v1?api_key=q-secret-e2e")});
  int port = WaitForLoggedPort(*p, "serving gRPC on port");
  ASSERT_GT(port, 0) << p->Output();
  std::string text;
  (void)Ask(port, &text);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(absl::Seconds(10)), 0);
  EXPECT_THAT(p->Output(), HasSubstr("http://***@127.0.0.1:"));
  EXPECT_THAT(p->Output(), Not(HasSubstr("pa55-w0rd-e2e")));
  EXPECT_THAT(p->Output(), Not(HasSubstr("q-secret-e2e")));
}

TEST_F(ProposerProcessTest, SigtermLetsStreamsInFlightFinishThenExitsZero) {
  auto proposer = StartProposer("slow", kSimKey, {"--drain_grace=10s"});
  int port = WaitForLoggedPort(*proposer, "serving gRPC on port");
  ASSERT_GT(port, 0) << proposer->Output();
  std::string text;
  grpc::Status status;
  std::thread client([&] { status = Ask(port, &text); });
  ASSERT_TRUE(WaitFor([&] { return !text.empty(); }, absl::Seconds(5)));
  proposer->Signal(SIGTERM);
  client.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(text, HasSubstr("[slow answer"));
  EXPECT_EQ(proposer->Wait(absl::Seconds(10)), 0) << proposer->Output();
  EXPECT_THAT(proposer->Output(), HasSubstr("draining"));
}

TEST_F(ProposerProcessTest, StartupErrorsAreFatalWithAClearMessage) {
  Process no_model({BinaryPath("services/proposer/moa-proposer"), "--port=0", "--metrics_port=0"});
  EXPECT_EQ(no_model.Wait(absl::Seconds(10)), 2);
  EXPECT_THAT(no_model.Output(), HasSubstr("--model is required"));

  Process no_key({BinaryPath("services/proposer/moa-proposer"), "--port=0", "--metrics_port=0",
                  "--model=m", "--upstream_url=http://127.0.0.1:1/v1",
                  "--api_key_env=MOA_SURELY_UNSET_KEY"});
  EXPECT_EQ(no_key.Wait(absl::Seconds(10)), 2);
  EXPECT_THAT(no_key.Output(), HasSubstr("MOA_SURELY_UNSET_KEY is not set"));

  std::string cfg = "/tmp/moa-e2e-bad-config-" + std::to_string(getpid()) + ".yaml";
  std::ofstream(cfg) << "models:\n  m:\n    endpoint: x:1\n    upstreem: {}\n";
  Process bad_config({BinaryPath("services/proposer/moa-proposer"), "--port=0", "--metrics_port=0",
                      "--model=m", "--config=" + cfg});
  EXPECT_EQ(bad_config.Wait(absl::Seconds(10)), 2);
  EXPECT_THAT(bad_config.Output(), HasSubstr(":4:5: unknown key 'upstreem' in models.m"));
  std::remove(cfg.c_str());
}

TEST_F(ProposerProcessTest, ReadsItsUpstreamFromTheClusterConfig) {
  std::string cfg = "/tmp/moa-e2e-config-" + std::to_string(getpid()) + ".yaml";
  std::ofstream(cfg) << "models:\n  local-llama:\n    endpoint: 127.0.0.1:1\n    upstream:\n"
                     << "      base_url: http://127.0.0.1:" << sim_port_ << "/v1\n"
                     << "      model: meta-llama/Llama-3.3-70B\n"
                     << "      api_key_env: UPSTREAM_KEY\n";
  Process p({BinaryPath("services/proposer/moa-proposer"), "--host=127.0.0.1", "--port=0",
             "--metrics_port=0", "--model=local-llama", "--config=" + cfg},
            {absl::StrCat("UPSTREAM_KEY=", kSimKey)});
  int port = WaitForLoggedPort(p, "serving gRPC on port");
  ASSERT_GT(port, 0) << p.Output();
  std::string text;
  ASSERT_TRUE(Ask(port, &text).ok());
  EXPECT_THAT(text, HasSubstr("[meta-llama/Llama-3.3-70B answer"))
      << "the upstream model id from the config is sent upstream";
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(absl::Seconds(10)), 0);
  std::remove(cfg.c_str());
}

// An upstream behind TLS with a private CA: the proposer trusts it through
// models.<m>.upstream.ca_file (or --upstream_ca_file); a CA file that
// cannot be read is a start-up error naming it.
TEST_F(ProposerProcessTest, AnHttpsUpstreamWithAPrivateCaIsReachedThroughItsCaFile) {
  const std::string dir = "/tmp/moa-e2e-upstream-tls-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(testing::MakeThrowawayCa(dir, "ca"));
  Process https_sim({BinaryPath("tools/upstream-sim/moa-upstream-sim"), "--port=0",
                     "--profiles=" + profiles_, "--tls_cert_file=" + dir + "/ca-leaf.crt",
                     "--tls_key_file=" + dir + "/ca-leaf.key"});
  const int https_port = WaitForLoggedPort(https_sim, "on port");
  ASSERT_GT(https_port, 0) << https_sim.Output();
  const std::string cfg = dir + "/cluster.yaml";
  std::ofstream(cfg) << "models:\n  m:\n    endpoint: x:1\n    upstream: {base_url: "
                        "'https://localhost:"
                     << https_port << "/v1', ca_file: " << dir << "/ca.crt}\n";
  Process proposer({BinaryPath("services/proposer/moa-proposer"), "--host=127.0.0.1", "--port=0",
                    "--metrics_port=0", "--model=m", "--config=" + cfg, "--max_attempts=1"});
  const int port = WaitForLoggedPort(proposer, "serving gRPC on port");
  ASSERT_GT(port, 0) << proposer.Output();
  std::string text;
  grpc::Status ok = Ask(port, &text);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_THAT(text, HasSubstr("[m answer"));

  Process missing({BinaryPath("services/proposer/moa-proposer"), "--port=0", "--metrics_port=0",
                   "--model=m",
                   absl::StrCat("--upstream_url=https://localhost:", https_port, "/v1"),
                   "--upstream_ca_file=" + dir + "/absent.crt"});
  EXPECT_EQ(missing.Wait(absl::Seconds(10)), 2);
  EXPECT_THAT(missing.Output(),
              HasSubstr("cannot read the upstream's CA file " + dir + "/absent.crt"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moa
