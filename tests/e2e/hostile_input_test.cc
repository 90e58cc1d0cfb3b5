// The cluster as real processes, tried as a hostile client would: mistyped
// fields, floods, connection hoarding, oversized and over-wide requests.
// Every case ends in a defined answer and the processes keep serving.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/local_cluster.h"
#include "tests/support/raw_client.h"
#include "tests/support/raw_grpc.h"
#include "tests/support/test_support.h"

namespace moa {
namespace {

using ::testing::HasSubstr;
using testing::HttpRequest;
using testing::LocalCluster;
using testing::RawClient;
using ::testing::StartsWith;

testing::ClusterSpec Spec(const std::vector<std::string>& orchestrator_flags = {}) {
  return testing::SmallClusterSpec(orchestrator_flags);
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0; }

// Resident memory of a process in MiB, from /proc.
double RssMiB(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

std::string Url(LocalCluster& c, const std::string& path) {
  return absl::StrCat("http://127.0.0.1:", c.orchestrator_http_port(), path);
}

std::string ChatBody(const std::string& model, const std::string& content) {
  return absl::StrCat(R"({"model":")", model, R"(","messages":[{"role":"user","content":")",
                      content, R"("}]})");
}

grpc::Status GrpcChat(LocalCluster& c, const v1::ChatRequest& request) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = c.stub().Chat(&ctx, request);
  v1::ChatEvent e;
  while (reader->Read(&e)) {
  }
  return reader->Finish();
}

v1::ChatRequest Hello() {
  v1::ChatRequest r;
  auto* m = r.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content("Hello");
  return r;
}

TEST(HostileInputTest, MistypedOpenAiFieldsAre400AndTheOrchestratorKeepsServing) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  const pid_t pid = cluster.Pids().back().second;
  const char* bodies[] = {
      R"({"model":"moa","messages":[{"role":"user","content":[{"type":5,"text":"a"}]}]})",
      R"({"model":"moa","messages":[{"role":"user","content":"a"}],"stream":true,
          "stream_options":{"include_usage":"yes"}})",
      R"({"model":"moa","messages":[{"role":"user","content":"a"}],"seed":"x"})",
  };
  for (const char* body : bodies) {
    auto r = HttpRequest("POST", Url(cluster, "/v1/chat/completions"), body,
                         {"Content-Type: application/json"});
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_THAT(r.body, HasSubstr("\"param\":\"")) << r.body;
    ASSERT_TRUE(Alive(pid)) << body;
  }
  auto ok = HttpRequest("POST", Url(cluster, "/v1/chat/completions"), ChatBody("moa", "Hello"),
                        {"Content-Type: application/json"});
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST(HostileInputTest, MalformedHttpGetsAnAnswerBeforeTheConnectionCloses) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  struct Case {
    std::string bytes;
    const char* status;
  };
  const Case cases[] = {
      {"NOT A REQUEST\r\n\r\n", "HTTP/1.1 400 "},
      {"GET /healthz HTTP/1.1\r\nX: " + std::string(64 << 10, 'a') + "\r\n\r\n", "HTTP/1.1 431 "},
      {"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
       "HTTP/1.1 400 "},
      {"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: "
       "chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
       "HTTP/1.1 400 "},
  };
  for (const Case& c : cases) {
    RawClient client(cluster.orchestrator_http_port());
    ASSERT_TRUE(client.Send(c.bytes));
    EXPECT_THAT(client.ReadAll(absl::Seconds(5)), StartsWith(c.status)) << c.bytes.substr(0, 80);
  }
  // A client that half-closes after a complete POST still gets its answer.
  RawClient half(cluster.orchestrator_http_port());
  std::string body = ChatBody("moa", "Hello");
  ASSERT_TRUE(half.Send(absl::StrCat(
      "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: ", body.size(), "\r\n\r\n", body)));
  half.HalfClose();
  std::string answer = half.ReadAll(absl::Seconds(10));
  // (A "100 Continue" may come first: it is how the server learns that the
  // client is still there after its FIN.)
  EXPECT_THAT(answer, HasSubstr("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(answer, HasSubstr("synthesis of 2 responses"));
}

// The bodies that took a door down or smuggled a request past it, sent to
// both HTTP servers the cluster runs (the orchestrator and the simulator):
// a 64 KiB trailer field (an exception out of the I/O thread), a 70,000-byte
// trailer name, 157 MB of small trailer fields, and a Transfer-Encoding that
// leaves the body to be read as a second request.
TEST(HostileInputTest, TrailersAndTransferCodingsNeverBringADoorDownOrSmuggleARequest) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  const std::string chunked =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n";
  const std::string smuggled = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
  struct Case {
    std::string bytes;
    std::string status;
  };
  const Case cases[] = {
      {chunked + "X: " + std::string(65534, 'a') + "\r\n\r\n", "400"},
      {chunked + std::string(70000, 'n') + ": v\r\n\r\n", "400"},
      {chunked + "X: " + std::string(1 << 20, 'a') + "\r\n\r\n", "431"},
      {"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n" +
           smuggled,
       "400"},
      {"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, "
       "identity\r\n\r\n" +
           smuggled,
       "400"},
  };
  std::vector<std::pair<std::string, int>> doors = {
      {"orchestrator", cluster.orchestrator_http_port()}, {"simulator", cluster.sim_port()}};
  for (const auto& [door, port] : doors) {
    for (const Case& c : cases) {
      RawClient client(port);
      ASSERT_TRUE(client.Send(c.bytes));
      // The refusal, then (after a lingering read) the close; a smuggled
      // request would be answered right behind it.
      std::string out = client.ReadResponse();
      absl::StrAppend(&out, client.ReadAll(absl::Milliseconds(300)));
      EXPECT_THAT(out, StartsWith("HTTP/1.1 " + c.status + " ")) << door << " " << c.bytes.size();
      EXPECT_THAT(out, HasSubstr("Connection: close")) << door;
      EXPECT_EQ(out.find("\"object\":\"list\""), std::string::npos) << door << ": " << out;
    }
    // Many small trailer fields: refused at the read buffer's bound.
    RawClient many(port);
    std::string fields;
    for (int i = 0; i < 100000; ++i) absl::StrAppend(&fields, "X", i, ": v\r\n");
    many.Send(chunked + fields + "\r\n");
    EXPECT_THAT(many.ReadResponse(), StartsWith("HTTP/1.1 431 ")) << door;
  }
  for (const auto& [name, pid] : cluster.Pids()) ASSERT_TRUE(Alive(pid)) << name;
  auto ok = HttpRequest("POST", Url(cluster, "/v1/chat/completions"), ChatBody("moa", "Hello"),
                        {"Content-Type: application/json"});
  EXPECT_EQ(ok.status, 200) << ok.body;
}

// A gzip message of 1 MiB that inflates to 1 GiB, four at once to every gRPC
// server, with no credentials: refused when the call's headers name gzip,
// before a byte is inflated. Every service stays within 64 MiB of idle.
TEST(HostileInputTest, GzipBombsToEveryGrpcPortAreRefusedBeforeTheyInflate) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  const std::string bomb = testing::GrpcFrame(testing::GzipOfZeros(size_t{1} << 30), true);
  ASSERT_LT(bomb.size(), 2u << 20);
  struct Target {
    std::string name, path;
  };
  const Target targets[] = {{"orchestrator", "/moa.v1.OrchestratorService/Chat"},
                            {"proposer-a", "/moa.v1.ProposerService/Generate"},
                            {"aggregator", "/moa.v1.AggregatorService/Aggregate"}};
  std::map<std::string, pid_t> pids;
  for (const auto& [name, pid] : cluster.Pids()) pids[name] = pid;
  for (const Target& t : targets) {
    const int port = cluster.grpc_port(t.name);
    ASSERT_NE(port, 0) << t.name;
    const double idle = RssMiB(pids[t.name]);
    std::vector<testing::RawGrpcOutcome> outcomes(4);
    std::vector<std::thread> senders;
    for (auto& outcome : outcomes) {
      senders.emplace_back([&outcome, &bomb, &t, port] {
        outcome = testing::SendRawGrpcCall(port, t.path, {{"grpc-encoding", "gzip"}}, bomb,
                                           absl::Seconds(30));
      });
    }
    for (auto& s : senders) s.join();
    for (const auto& o : outcomes) {
      EXPECT_TRUE(o.ended) << t.name << ": " << o.error;
    }
    EXPECT_TRUE(Alive(pids[t.name])) << t.name;
    EXPECT_LT(RssMiB(pids[t.name]), idle + 64) << t.name << " idle " << idle;
  }
  // A gRPC client that asks for gzip is told, by name, that it is refused.
  grpc::ClientContext ctx;
  ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = cluster.stub().Chat(&ctx, Hello());
  v1::ChatEvent e;
  while (reader->Read(&e)) {
  }
  grpc::Status refused = reader->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNIMPLEMENTED) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("gzip"));
  // The cluster still answers.
  EXPECT_TRUE(GrpcChat(cluster, Hello()).ok());
}

// CPU seconds a process has used (user + system), from /proc.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start at ") ".
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Under an open-file limit far below --max_connections, idle connections use
// up the descriptors: the accept loop waits and retries instead of spinning,
// says so in the log, and serves again as soon as descriptors free up.
TEST(HostileInputTest, OutOfDescriptorsTheAcceptLoopWaitsInsteadOfSpinning) {
  testing::ClusterSpec spec = Spec();
  spec.wrap["orchestrator"] = {"/usr/bin/prlimit", "--nofile=256:256", "--"};
  LocalCluster cluster(spec);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  const pid_t pid = cluster.orchestrator_process().pid();
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 400; ++i) {
    idle.push_back(std::make_unique<RawClient>(cluster.orchestrator_http_port()));
  }
  absl::SleepFor(absl::Milliseconds(500));  // The last ones reach the backlog.
  const double before = CpuSeconds(pid);
  absl::SleepFor(absl::Seconds(2));
  const double used = CpuSeconds(pid) - before;
  EXPECT_LT(used, 0.5) << "CPU seconds in 2 s at the descriptor limit";
  EXPECT_THAT(cluster.orchestrator_process().Output(), HasSubstr("out of file descriptors"));
  idle.clear();  // Descriptors free up; the backlog is served.
  auto health = testing::HttpGet(Url(cluster, "/healthz"));
  EXPECT_EQ(health.status, 200);
  EXPECT_TRUE(Alive(pid));
}

// One server-streaming call with `payload` as its request bytes, as a
// client that is no moa client may send them; the call's final status.
grpc::Status RawStreamingCall(int port, const std::string& method, const std::string& payload) {
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, method, &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  grpc::Slice slice(payload);
  grpc::ByteBuffer request(&slice, 1), response;
  call->Write(request, grpc::WriteOptions().set_last_message(), reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  grpc::Status status;
  for (;;) {  // Read until the stream ends, then its status.
    call->Read(&response, reinterpret_cast<void*>(3));
    cq.Next(&tag, &ok);
    if (!ok) break;
  }
  call->Finish(&status, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

// Bytes that are no valid request (garbage; a string field of invalid UTF-8)
// are refused INVALID_ARGUMENT naming the message type on every streaming
// method (gRPC's typed handler answered UNIMPLEMENTED with no message).
TEST(HostileInputTest, GarbageRequestsAreInvalidArgumentNamingTheMessageType) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  struct Target {
    std::string service, method, type;
    char messages_tag;  // The request's `messages` field, length-delimited.
  };
  const Target targets[] = {
      {"orchestrator", "/moa.v1.OrchestratorService/Chat", "moa.v1.ChatRequest", '\x1a'},
      {"proposer-a", "/moa.v1.ProposerService/Generate", "moa.v1.GenerateRequest", '\x0a'},
      {"aggregator", "/moa.v1.AggregatorService/Aggregate", "moa.v1.AggregateRequest", '\x12'},
  };
  for (const Target& t : targets) {
    // A message whose content (field 2) is invalid UTF-8.
    const std::string bad_utf8 =
        std::string(1, t.messages_tag) + std::string("\x04\x12\x02\xc3\x28", 5);
    for (const std::string& payload : {std::string("\xff\xff\xff\xff garbage"), bad_utf8}) {
      grpc::Status s = RawStreamingCall(cluster.grpc_port(t.service), t.method, payload);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << t.method;
      EXPECT_THAT(s.error_message(), HasSubstr("the request is not a valid " + t.type)) << t.method;
    }
  }
  EXPECT_TRUE(GrpcChat(cluster, Hello()).ok());
}

TEST(HostileInputTest, WithKeysOnABodyIsNeverReadBeforeTheKeyIsChecked) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  // A second orchestrator on the same cluster, with API keys on.
  testing::Process orchestrator(
      {testing::BinaryPath("services/orchestrator/moa-orchestrator"), "--host=127.0.0.1",
       "--port=0", "--metrics_port=0", "--http_port=0", "--config=" + cluster.config_path()},
      {"MOA_API_KEYS=sk-hostile-test"});
  int http_port = testing::WaitForLoggedPort(orchestrator, "HTTP on port");
  ASSERT_GT(http_port, 0) << orchestrator.Output();
  const pid_t pid = orchestrator.pid();
  const double before = RssMiB(pid);
  // 100 connections announce 4 MiB bodies without a key: each is answered
  // 401 from the headers, and no body is buffered.
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 100; ++i) {
    clients.push_back(std::make_unique<RawClient>(http_port));
    ASSERT_TRUE(clients.back()->Send(
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 4194000\r\n\r\n"));
  }
  for (auto& c : clients) EXPECT_THAT(c->ReadResponse(), StartsWith("HTTP/1.1 401 "));
  for (auto& c : clients) c->Flood(4194000, absl::Milliseconds(20));
  const double after = RssMiB(pid);
  std::printf("100 unauthenticated 4 MiB bodies: orchestrator RSS %.1f -> %.1f MiB\n", before,
              after);
  EXPECT_LT(after - before, 50.0);
}

TEST(HostileInputTest, A500MiBFloodWhileARequestIsPendingDoesNotGrowTheOrchestrator) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  const pid_t pid = cluster.Pids().back().second;
  const double before = RssMiB(pid);
  RawClient client(cluster.orchestrator_http_port());
  std::string body = ChatBody("slow", "Hello");
  ASSERT_TRUE(client.Send(absl::StrCat(
      "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: ", body.size(), "\r\n\r\n", body)));
  size_t pushed = client.Flood(500u << 20, absl::Seconds(4));
  const double after = RssMiB(pid);
  std::printf("pushed %.1f MiB while pending; orchestrator RSS %.1f -> %.1f MiB\n",
              static_cast<double>(pushed) / (1 << 20), before, after);
  EXPECT_LT(after - before, 50.0);
  EXPECT_TRUE(Alive(pid));
  // The server stopped reading: TCP flow control held the flood back.
  EXPECT_LT(pushed, 100u << 20);
}

TEST(HostileInputTest, TwoThousandIdleConnectionsHitTheCapAndHealthStillAnswers) {
  LocalCluster cluster(Spec({"--max_connections=1000", "--read_timeout=60s"}));
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 2000; ++i) {
    clients.push_back(std::make_unique<RawClient>(cluster.orchestrator_http_port()));
  }
  // The 503s are written at once; an accepted idle connection hears nothing.
  int refused = 0;
  std::vector<bool> seen(clients.size(), false);
  testing::WaitFor(
      [&] {
        for (size_t i = 0; i < clients.size(); ++i) {
          if (seen[i]) continue;
          std::string got = clients[i]->ReadUntil([](const std::string& s) { return !s.empty(); },
                                                  absl::Milliseconds(1));
          if (got.rfind("HTTP/1.1 503 ", 0) == 0) {
            seen[i] = true;
            ++refused;
          }
        }
        return refused >= 1000;
      },
      absl::Seconds(20));
  EXPECT_EQ(refused, 1000);
  // The server still answers on a connection it holds.
  int answered = 0;
  for (size_t i = 0; i < clients.size(); ++i) {
    auto& c = clients[i];
    if (seen[i] || c->closed()) continue;
    ASSERT_TRUE(c->Send("GET /healthz HTTP/1.1\r\n\r\n"));
    EXPECT_THAT(c->ReadResponse(), StartsWith("HTTP/1.1 200 "));
    if (++answered == 3) break;
  }
  EXPECT_EQ(answered, 3);
  clients.clear();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HttpGet(Url(cluster, "/healthz")).status == 200; }, absl::Seconds(5)));
}

TEST(HostileInputTest, OverWideInlineSpecsAreRefusedBeforeAnyUpstreamCall) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  int64_t last = cluster.LastSimRequestId();
  v1::ChatRequest wide = Hello();
  for (int i = 0; i < 1000; ++i) wide.mutable_spec()->add_reference_models("a");
  wide.mutable_spec()->set_aggregator("z");
  wide.mutable_spec()->set_rounds(8);
  grpc::Status s = GrpcChat(cluster, wide);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("limits.max_models_per_layer (16)"));

  v1::ChatRequest deep = Hello();
  for (int i = 0; i < 10; ++i) deep.mutable_spec()->add_reference_models("a");
  deep.mutable_spec()->set_aggregator("z");
  deep.mutable_spec()->set_rounds(8);
  s = GrpcChat(cluster, deep);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("limits.max_upstream_calls (64)"));
  EXPECT_EQ(cluster.LastSimRequestId(), last);
}

TEST(HostileInputTest, RequestSizeLimitsAgreeFromTheFrontToTheLastHop) {
  LocalCluster cluster(Spec());
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  // Just under the 4 MiB limit: accepted at the front, so it must also fit
  // every hop behind it (the aggregator's request carries it plus references).
  std::string big((4 << 20) - 4096, 'x');
  auto r = HttpRequest("POST", Url(cluster, "/v1/chat/completions"), ChatBody("moa", big),
                       {"Content-Type: application/json"});
  EXPECT_EQ(r.status, 200) << r.body.substr(0, 300);
  EXPECT_THAT(r.body, HasSubstr("synthesis of 2 responses"));

  int64_t last = cluster.LastSimRequestId();
  std::string over((4 << 20) + 16, 'x');
  r = HttpRequest("POST", Url(cluster, "/v1/chat/completions"), ChatBody("moa", over),
                  {"Content-Type: application/json"});
  EXPECT_EQ(r.status, 413);
  v1::ChatRequest grpc_over = Hello();
  grpc_over.mutable_messages(0)->set_content(over);
  grpc::Status s = GrpcChat(cluster, grpc_over);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("limits.max_request_bytes"));
  EXPECT_EQ(cluster.LastSimRequestId(), last);
}

}  // namespace
}  // namespace moa
