// mTLS between the cluster's services, with a throw-away CA made by the
// openssl command: every hop works; a caller without a certificate, with
// one from another CA, or in plaintext is refused; rotated files take
// effect without a restart.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/config/cluster_config.h"
#include "lib/server/health_check.h"
#include "tests/support/local_cluster.h"
#include "tests/support/requests.h"
#include "tests/support/test_support.h"

namespace moa::testing {
namespace {

namespace fs = std::filesystem;

void MakeCa(const fs::path& dir, const std::string& name) {
  ASSERT_TRUE(MakeThrowawayCa(dir.string(), name)) << "openssl could not make CA " << name;
}
void Install(const fs::path& dir, const std::string& name) { InstallTlsFiles(dir.string(), name); }

// 1 when a health check over `credentials` reaches the server at `target`.
int Check(const std::string& target, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  return server::HealthCheck(grpc::CreateChannel(target, credentials));
}

std::shared_ptr<grpc::ChannelCredentials> Tls(const fs::path& dir, const std::string& ca,
                                              const std::string& identity) {
  grpc::experimental::TlsChannelCredentialsOptions o;
  if (identity.empty()) {
    o.set_certificate_provider(std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        (dir / (ca + ".crt")).string(), 1));
  } else {
    o.set_certificate_provider(std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        (dir / (identity + "-leaf.key")).string(), (dir / (identity + "-leaf.crt")).string(),
        (dir / (ca + ".crt")).string(), 1));
    o.watch_identity_key_cert_pairs();
  }
  o.watch_root_certs();
  return grpc::experimental::TlsCredentials(o);
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moa-tls-test-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    MakeCa(dir_, "ca1");
    MakeCa(dir_, "ca2");
    Install(dir_, "ca1");
    ClusterSpec spec;
    spec.models = {"a", "b", "z"};
    spec.pipelines_yaml = "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\n";
    spec.sim_profiles_yaml =
        "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 10}\n";
    const std::string d = dir_.string();
    spec.proposer_flags = {"--max_attempts=1", "--tls_ca_file=" + d + "/ca.crt",
                           "--tls_cert_file=" + d + "/tls.crt", "--tls_key_file=" + d + "/tls.key",
                           "--tls_refresh_seconds=1"};
    // The front door over TLS too (server certificate only; clients use keys).
    spec.orchestrator_flags = {"--tls_cert_file=" + d + "/ca1-leaf.crt",
                               "--tls_key_file=" + d + "/ca1-leaf.key", "--http_port=0"};
    spec.front_credentials = Tls(dir_, "ca1", "");
    spec.extra_config_yaml =
        absl::StrCat("tls: {ca_file: ", d, "/ca.crt, cert_file: ", d, "/tls.crt, key_file: ", d,
                     "/tls.key, refresh_seconds: 1}\n");
    cluster_ = std::make_unique<LocalCluster>(spec);
    ASSERT_TRUE(cluster_->ok()) << cluster_->error();
    auto config = config::LoadClusterConfig(cluster_->config_path());
    ASSERT_TRUE(config.ok()) << config.status();
    proposer_ = config->FindModel("a")->endpoint;
    aggregator_ = config->aggregator_endpoint;
  }
  void TearDown() override {
    cluster_.reset();
    fs::remove_all(dir_);
  }

  bool Answers() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    auto reader = cluster_->stub().Chat(&context, UserQuestion("Over TLS?"));
    v1::ChatEvent event;
    bool answered = false;
    while (reader->Read(&event)) answered |= event.has_summary();
    return reader->Finish().ok() && answered;
  }

  fs::path dir_;
  std::unique_ptr<LocalCluster> cluster_;
  std::string proposer_, aggregator_;
};

TEST_F(TlsTest, EveryHopWorksAndOnlyCallersWithACertificateOfTheCaGetIn) {
  EXPECT_TRUE(Answers()) << "orchestrator -> proposers, aggregator -> proposer, over mTLS";
  for (const std::string& target : {proposer_, aggregator_}) {
    EXPECT_EQ(Check(target, Tls(dir_, "ca1", "ca1")), 1) << target << ": a certificate of the CA";
    EXPECT_NE(Check(target, Tls(dir_, "ca1", "")), 1) << target << ": no client certificate";
    EXPECT_NE(Check(target, Tls(dir_, "ca1", "ca2")), 1) << target << ": another CA's certificate";
    EXPECT_NE(Check(target, grpc::InsecureChannelCredentials()), 1) << target << ": plaintext";
  }
  EXPECT_TRUE(Answers()) << "refused callers leave the services serving";
}

TEST_F(TlsTest, TheFrontDoorServesTlsToTheCliAndRefusesPlaintext) {
  const std::string front = cluster_->orchestrator_address();
  EXPECT_EQ(Check(front, Tls(dir_, "ca1", "")), 1) << "no client certificate needed";
  EXPECT_NE(Check(front, grpc::InsecureChannelCredentials()), 1);
  EXPECT_NE(Check(front, Tls(dir_, "ca2", "")), 1) << "a client trusting another CA";
  Process ask({BinaryPath("tools/moa/moa"), "--orchestrator=" + front,
               "--tls_ca_file=" + (dir_ / "ca1.crt").string(), "--table=false", "ask", "Hi"});
  EXPECT_EQ(ask.Wait(absl::Seconds(20)), 0) << ask.Output();
  EXPECT_THAT(ask.Output(), ::testing::HasSubstr("synthesis of 2 responses"));
  Process plain(
      {BinaryPath("tools/moa/moa"), "--orchestrator=" + front, "--timeout=3s", "ask", "Hi"});
  EXPECT_EQ(plain.Wait(absl::Seconds(20)), 1) << plain.Output();
}

// What the container health checks and Kubernetes exec probes run.
TEST_F(TlsTest, MoaHealthChecksMtlsPortsWithACertificateAndTheHttpsDoor) {
  const std::string d = dir_.string();
  auto health = [&](std::vector<std::string> flags) {
    std::vector<std::string> argv = {BinaryPath("tools/moa/moa"), "health", "--timeout=3s"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    Process p(argv);
    return p.Wait(absl::Seconds(20));
  };
  const std::vector<std::string> identity = {"--tls_ca_file=" + d + "/ca.crt",
                                             "--tls_cert_file=" + d + "/tls.crt",
                                             "--tls_key_file=" + d + "/tls.key"};
  for (const std::string& target : {proposer_, aggregator_}) {
    std::vector<std::string> with = identity;
    with.push_back("--target=" + target);
    EXPECT_EQ(health(with), 0) << target;
    EXPECT_EQ(health({"--target=" + target, "--tls_ca_file=" + d + "/ca.crt"}), 1)
        << target << ": no client certificate";
    EXPECT_EQ(health({"--target=" + target}), 1) << target << ": plaintext";
  }
  EXPECT_EQ(health({"--target=" + proposer_, "--tls_ca_file=" + d + "/ca.crt",
                    "--tls_cert_file=" + d + "/tls.crt"}),
            2)
      << "half an identity is a usage error";
  const std::string readyz =
      absl::StrCat("https://localhost:", cluster_->orchestrator_http_port(), "/readyz");
  EXPECT_EQ(health({"--target=" + readyz, "--tls_ca_file=" + d + "/ca1.crt"}), 0);
  EXPECT_EQ(health({"--target=" + readyz, "--tls_ca_file=" + d + "/ca2.crt"}), 1);
}

TEST_F(TlsTest, TheOpenAiDoorServesHttpsWithTheSameCertificate) {
  const int port = cluster_->orchestrator_http_port();
  ASSERT_GT(port, 0);
  const std::string body =
      R"({"model": "moa", "messages": [{"role": "user", "content": "Over HTTPS?"}]})";
  auto answer =
      HttpRequest("POST", absl::StrCat("https://localhost:", port, "/v1/chat/completions"), body,
                  {"Content-Type: application/json"}, (dir_ / "ca1.crt").string());
  EXPECT_EQ(answer.status, 200) << answer.error << answer.body;
  EXPECT_THAT(answer.body, ::testing::HasSubstr("synthesis of 2 responses"));
  auto streamed = HttpRequest(
      "POST", absl::StrCat("https://localhost:", port, "/v1/chat/completions"),
      R"({"model": "moa", "stream": true, "messages": [{"role": "user", "content": "Hi"}]})",
      {"Content-Type: application/json"}, (dir_ / "ca1.crt").string());
  EXPECT_EQ(streamed.status, 200) << streamed.error;
  EXPECT_THAT(streamed.body, ::testing::HasSubstr("data: [DONE]"));
  auto plain = HttpRequest("POST", absl::StrCat("http://127.0.0.1:", port, "/v1/chat/completions"),
                           body, {"Content-Type: application/json"});
  EXPECT_EQ(plain.status, 400);
  EXPECT_THAT(plain.body, ::testing::HasSubstr("use https://"));
  auto untrusted =
      HttpRequest("POST", absl::StrCat("https://localhost:", port, "/v1/chat/completions"), body,
                  {"Content-Type: application/json"}, (dir_ / "ca2.crt").string());
  EXPECT_EQ(untrusted.status, 0) << "a client trusting another CA refuses the door";
  EXPECT_TRUE(Answers()) << "and the cluster goes on serving";

  // The official openai client (Node.js), trusting the CA the usual Node way.
  Process node({"/usr/bin/env", "node", "--test", "--test-reporter=spec",
                std::string(MOA_SOURCE_DIR) + "/tests/http/openai_sdk_tls.test.mjs"},
               {absl::StrCat("MOA_BASE_URL=https://localhost:", port, "/v1"),
                "NODE_EXTRA_CA_CERTS=" + (dir_ / "ca1.crt").string(),
                "NODE_PATH=" + std::string(MOA_SOURCE_DIR) + "/tests/http/node_modules"});
  EXPECT_EQ(node.Wait(absl::Seconds(120)), 0) << node.Output();
  EXPECT_THAT(node.Output(), ::testing::HasSubstr(" pass 2\n")) << node.Output();
}

TEST_F(TlsTest, RotatedFilesTakeEffectWithoutARestart) {
  ASSERT_EQ(Check(proposer_, Tls(dir_, "ca1", "ca1")), 1);
  Install(dir_, "ca2");
  EXPECT_TRUE(WaitFor(
      [&] {
        return Check(proposer_, Tls(dir_, "ca2", "ca2")) == 1 &&
               Check(proposer_, Tls(dir_, "ca1", "ca1")) != 1;
      },
      absl::Seconds(10)))
      << "the proposer now trusts and presents the second CA's material only";
  EXPECT_TRUE(Answers()) << "the services' own channels rotated too";
}

}  // namespace
}  // namespace moa::testing
