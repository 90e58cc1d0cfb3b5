// lib/net's HttpServer on loopback, driven by raw sockets as a hostile or
// clumsy client would.
#include "lib/net/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/support/raw_client.h"
#include "tests/support/test_support.h"

namespace moa::net {
namespace {

using ::moa::testing::RawClient;

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Answers per path: /now (at once), /later (when Release() is called),
// /stream (chunks on Release()), /secret (screened: 401 without a header).
class TestHandler : public HttpHandler {
 public:
  std::optional<HttpResponse> Screen(const HttpRequestHeader& header) override {
    if (header.target() == "/secret" && header.find("x-key") == header.end()) {
      return HttpResponse{401, "text/plain", "no key\n", {}};
    }
    if (header.target() == "/missing") return HttpResponse{404, "text/plain", "nope\n", {}};
    return std::nullopt;
  }

  void Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) override {
    auto closed = closed_;
    exchange->OnClosed([closed](bool completed) {
      if (!completed) closed->fetch_add(1);
    });
    std::string target(request.target());
    if (target == "/later" || target == "/stream") {
      absl::MutexLock lock(&mu_);
      pending_.push_back({target, std::move(exchange)});
      return;
    }
    exchange->Respond({200, "text/plain", absl::StrCat("got ", request.body().size(), "\n"), {}});
  }

  // Answers every pending request.
  void Release() {
    std::vector<std::pair<std::string, std::shared_ptr<HttpExchange>>> pending;
    {
      absl::MutexLock lock(&mu_);
      pending.swap(pending_);
    }
    for (auto& [target, exchange] : pending) {
      if (target == "/stream") {
        exchange->StartStream({200, "text/event-stream", "", {}}, ": ka\n\n");
        exchange->Write("data: one\n\n");
        exchange->Write("data: two\n\n");
        exchange->End();
      } else {
        exchange->Respond({200, "text/plain", "late answer\n", {}});
      }
    }
  }

  size_t pending() {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }
  int closed_early() const { return closed_->load(); }

 private:
  std::shared_ptr<std::atomic<int>> closed_ = std::make_shared<std::atomic<int>>(0);
  absl::Mutex mu_;
  std::vector<std::pair<std::string, std::shared_ptr<HttpExchange>>> pending_ ABSL_GUARDED_BY(mu_);
};

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    options.name = "test";
    auto server = HttpServer::Start(options, &handler_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  std::string Post(const std::string& target, const std::string& body,
                   const std::string& extra = "") {
    return absl::StrCat("POST ", target, " HTTP/1.1\r\nHost: x\r\nContent-Length: ", body.size(),
                        "\r\n", extra, "\r\n", body);
  }

  TestHandler handler_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, KeepAliveAndPipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  RawClient c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(Post("/now", "abc") + Post("/now", "hello")));
  std::string out =
      c.ReadUntil([](const std::string& s) { return s.find("got 5") != std::string::npos; });
  EXPECT_THAT(out, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_LT(out.find("got 3"), out.find("got 5"));
  EXPECT_THAT(out, HasSubstr("Connection: keep-alive"));
}

TEST_F(HttpServerTest, MalformedFramingGets400AndTheConnectionCloses) {
  StartServer();
  const std::string cases[] = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      "POST /now HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST /now HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: "
      "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "POST /now HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "POST /now HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
  };
  for (const std::string& bytes : cases) {
    RawClient c(server_->port());
    ASSERT_TRUE(c.Send(bytes));
    std::string out = c.ReadAll(absl::Seconds(3));
    EXPECT_THAT(out, StartsWith("HTTP/1.1 400 ")) << bytes;
    EXPECT_THAT(out, HasSubstr("Connection: close")) << bytes;
    EXPECT_TRUE(c.closed()) << bytes;
  }
}

// A transfer coding other than exactly `chunked` would let the body be read
// as a second request (a proxy in front may frame it differently): 400 and
// close, and the request smuggled in the body is never answered.
TEST_F(HttpServerTest, TransferEncodingOtherThanChunkedAloneIs400AndNothingAfterItIsServed) {
  StartServer();
  const std::string smuggled = "GET /now HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string coding :
       {"identity", "gzip", "xchunked", "chunked, identity", "gzip, chunked", "chunked;q=1"}) {
    RawClient c(server_->port());
    ASSERT_TRUE(c.Send(absl::StrCat("POST /now HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ", coding,
                                    "\r\n\r\n", smuggled)));
    std::string out = c.ReadAll(absl::Seconds(3));
    EXPECT_THAT(out, StartsWith("HTTP/1.1 400 ")) << coding;
    EXPECT_THAT(out, HasSubstr("Transfer-Encoding")) << coding;
    EXPECT_THAT(out, HasSubstr("Connection: close")) << coding;
    EXPECT_EQ(out.find("HTTP/1.1 200"), std::string::npos) << coding << ": " << out;
    EXPECT_TRUE(c.closed()) << coding;
  }
  // Two Transfer-Encoding fields, even both chunked.
  RawClient c(server_->port());
  ASSERT_TRUE(
      c.Send("POST /now HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
             "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  EXPECT_THAT(c.ReadAll(absl::Seconds(3)), StartsWith("HTTP/1.1 400 "));
  // Exactly chunked (any case) is served.
  RawClient ok(server_->port());
  ASSERT_TRUE(
      ok.Send("POST /now HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
              "3\r\nabc\r\n0\r\n\r\n"));
  EXPECT_THAT(ok.ReadResponse(), HasSubstr("got 3"));
}

// Trailer fields are refused whatever their size: a huge one used to throw
// out of the I/O thread (the process died), many small ones grew the header
// past its limit. The server keeps serving.
TEST_F(HttpServerTest, TrailerFieldsAreRefusedAndNeverBringTheServerDown) {
  StartServer();
  const std::string head =
      "POST /now HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\n{}\r\n0\r\n";
  struct Case {
    std::string trailer;
    std::string status;
  };
  std::string many;
  for (int i = 0; i < 20000; ++i) absl::StrAppend(&many, "X", i, ": v\r\n");
  const Case cases[] = {
      {"X: small\r\n", "400"},
      {"X: " + std::string(65534, 'a') + "\r\n", "400"},  // Fits the buffer: refused by name.
      {"X: " + std::string(200000, 'a') + "\r\n", "431"},
      {std::string(70000, 'n') + ": v\r\n", "400"},
      {many, "431"},
  };
  for (const Case& c : cases) {
    RawClient client(server_->port());
    ASSERT_TRUE(client.Send(head + c.trailer + "\r\n"));
    // The answer comes at once; the server then reads on for a moment (the
    // client may still be sending) before it closes.
    std::string out = client.ReadResponse();
    EXPECT_THAT(out, StartsWith("HTTP/1.1 " + c.status + " ")) << c.trailer.size();
    EXPECT_THAT(out, HasSubstr("Connection: close"));
    if (c.status == "400") {
      EXPECT_THAT(out, HasSubstr("trailer"));
    }
  }
  RawClient after(server_->port());
  ASSERT_TRUE(after.Send(Post("/now", "abc")));
  EXPECT_THAT(after.ReadResponse(), HasSubstr("got 3"));
}

TEST_F(HttpServerTest, OversizedHeaderIs431AndOversizedBodyIs413BeforeItIsRead) {
  StartServer({.max_header_bytes = 1024, .max_body_bytes = 1000});
  {
    RawClient c(server_->port());
    ASSERT_TRUE(c.Send("GET /now HTTP/1.1\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n"));
    EXPECT_THAT(c.ReadAll(), StartsWith("HTTP/1.1 431 "));
  }
  {
    RawClient c(server_->port());
    // Only the head is sent: the answer must not wait for the body.
    ASSERT_TRUE(c.Send("POST /now HTTP/1.1\r\nContent-Length: 50000000\r\n\r\n"));
    EXPECT_THAT(c.ReadResponse(), StartsWith("HTTP/1.1 413 "));
  }
}

TEST_F(HttpServerTest, ScreenedRequestsAreRefusedBeforeTheBodyIsRead) {
  StartServer();
  RawClient c(server_->port());
  ASSERT_TRUE(c.Send("POST /secret HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n"));
  std::string out = c.ReadResponse();
  EXPECT_THAT(out, StartsWith("HTTP/1.1 401 "));
  EXPECT_THAT(out, HasSubstr("Connection: close"));
  // A body-less screened request keeps the connection.
  RawClient k(server_->port());
  ASSERT_TRUE(k.Send("GET /missing HTTP/1.1\r\n\r\nGET /missing HTTP/1.1\r\n\r\n"));
  std::string both = k.ReadUntil([](const std::string& s) {
    return s.find("nope") != std::string::npos && s.find("nope") != s.rfind("nope");
  });
  EXPECT_THAT(both, HasSubstr("Connection: keep-alive"));
}

TEST_F(HttpServerTest, AClientThatHalfClosesAfterItsRequestStillGetsTheAnswer) {
  StartServer();
  RawClient c(server_->port());
  ASSERT_TRUE(c.Send(Post("/later", "q")));
  c.HalfClose();
  ASSERT_TRUE(testing::WaitFor([&] { return handler_.pending() == 1; }, absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(100));  // Let the server see the FIN first.
  handler_.Release();
  std::string out = c.ReadAll();
  EXPECT_THAT(out, HasSubstr("late answer"));
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(handler_.closed_early(), 0);
}

TEST_F(HttpServerTest, AClientThatLeavesWhileItsAnswerIsPendingIsNoticedAtOnce) {
  StartServer();
  for (const char* target : {"/later", "/stream"}) {
    int before = handler_.closed_early();
    {
      RawClient c(server_->port());
      ASSERT_TRUE(c.Send(Post(target, "q")));
      ASSERT_TRUE(testing::WaitFor([&] { return handler_.pending() == 1; }, absl::Seconds(5)));
    }  // Closed.
    EXPECT_TRUE(
        testing::WaitFor([&] { return handler_.closed_early() == before + 1; }, absl::Seconds(5)))
        << target;
    handler_.Release();  // Answers to a gone client go nowhere.
  }
  EXPECT_TRUE(testing::WaitFor([&] { return server_->connections() == 0; }, absl::Seconds(5)));
}

TEST_F(HttpServerTest, ReadAheadWhileAnAnswerIsPendingIsBoundedByBackPressure) {
  StartServer({.max_read_ahead_bytes = 64 << 10});
  RawClient c(server_->port());
  ASSERT_TRUE(c.Send(Post("/later", "q")));
  ASSERT_TRUE(testing::WaitFor([&] { return handler_.pending() == 1; }, absl::Seconds(5)));
  // Try to push 500 MiB for at most 3 s without blocking.
  size_t pushed = c.Flood(500u << 20, absl::Seconds(3));
  // Kernel buffers take a few MiB; the server took at most its read-ahead.
  EXPECT_LT(pushed, 64u << 20);
  handler_.Release();
  std::string out =
      c.ReadUntil([](const std::string& s) { return s.find("late answer") != std::string::npos; });
  EXPECT_THAT(out, HasSubstr("late answer"));  // The answer still arrives.
}

TEST_F(HttpServerTest, StreamedAnswersAreChunkedAndHttp10GetsThemUnframed) {
  StartServer();
  {
    RawClient c(server_->port());
    ASSERT_TRUE(c.Send(Post("/stream", "q")));
    ASSERT_TRUE(testing::WaitFor([&] { return handler_.pending() == 1; }, absl::Seconds(5)));
    handler_.Release();
    std::string out = c.ReadUntil(
        [](const std::string& s) { return s.find("\r\n0\r\n\r\n") != std::string::npos; });
    EXPECT_THAT(out, HasSubstr("Transfer-Encoding: chunked"));
    EXPECT_THAT(out, HasSubstr("data: one"));
  }
  {
    RawClient c(server_->port());
    ASSERT_TRUE(c.Send("POST /stream HTTP/1.0\r\nContent-Length: 1\r\n\r\nq"));
    ASSERT_TRUE(testing::WaitFor([&] { return handler_.pending() == 1; }, absl::Seconds(5)));
    handler_.Release();
    std::string out = c.ReadAll();
    EXPECT_THAT(out, ::testing::Not(HasSubstr("chunked")));
    EXPECT_THAT(out, HasSubstr("Connection: close"));
    EXPECT_THAT(out, HasSubstr("data: one\n\ndata: two\n\n"));
    EXPECT_TRUE(c.closed());
  }
}

TEST_F(HttpServerTest, ConnectionsOverTheCapGet503AndTheServerStillAnswers) {
  StartServer({.max_connections = 20});
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(std::make_unique<RawClient>(server_->port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  ASSERT_TRUE(testing::WaitFor([&] { return server_->connections() == 20; }, absl::Seconds(5)));
  RawClient extra(server_->port());
  EXPECT_THAT(extra.ReadAll(), StartsWith("HTTP/1.1 503 "));
  ASSERT_TRUE(idle[0]->Send("GET /now HTTP/1.1\r\n\r\n"));
  EXPECT_THAT(idle[0]->ReadResponse(), StartsWith("HTTP/1.1 200 "));
}

TEST_F(HttpServerTest, IdleAndSlowClientsAreClosedAfterTheReadTimeout) {
  StartServer({.read_timeout = absl::Milliseconds(300)});
  RawClient idle(server_->port());
  RawClient slow(server_->port());
  ASSERT_TRUE(slow.Send("POST /now HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"));
  EXPECT_EQ(idle.ReadAll(absl::Seconds(5)), "");
  EXPECT_TRUE(idle.closed());
  EXPECT_THAT(slow.ReadAll(absl::Seconds(5)), StartsWith("HTTP/1.1 408 "));
}

TEST_F(HttpServerTest, DrainClosesIdleConnectionsAndEndsKeepAliveAfterTheAnswer) {
  StartServer();
  RawClient idle(server_->port());
  RawClient busy(server_->port());
  ASSERT_TRUE(busy.Send(Post("/later", "q")));
  ASSERT_TRUE(testing::WaitFor([&] { return handler_.pending() == 1; }, absl::Seconds(5)));
  ASSERT_TRUE(testing::WaitFor([&] { return server_->connections() == 2; }, absl::Seconds(5)));
  server_->StopAccepting();
  EXPECT_EQ(idle.ReadAll(absl::Seconds(5)), "");
  EXPECT_TRUE(idle.closed());
  handler_.Release();
  std::string out = busy.ReadAll();
  EXPECT_THAT(out, HasSubstr("late answer"));
  EXPECT_THAT(out, HasSubstr("Connection: close"));
  EXPECT_TRUE(busy.closed());
  RawClient late(server_->port());
  EXPECT_FALSE(late.connected() && !late.ReadAll(absl::Seconds(1)).empty());
}

TEST_F(HttpServerTest, ExpectContinueGets100BeforeTheBody) {
  StartServer();
  RawClient c(server_->port());
  ASSERT_TRUE(c.Send("POST /now HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_THAT(c.ReadUntil([](const std::string& s) { return s.find("\r\n\r\n") != s.npos; }),
              StartsWith("HTTP/1.1 100 Continue"));
  ASSERT_TRUE(c.Send("abcd"));
  EXPECT_THAT(c.ReadResponse(), HasSubstr("got 4"));
}

// ---- HTTPS: the same connection layer over TLS, with a throw-away CA.
class HttpsServerTest : public HttpServerTest {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("moa-https-test-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(moa::testing::MakeThrowawayCa(dir_.string(), "ca1"));
    ASSERT_TRUE(moa::testing::MakeThrowawayCa(dir_.string(), "ca2"));
    moa::testing::InstallTlsFiles(dir_.string(), "ca1");
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  HttpServerOptions Tls(HttpServerOptions options = {}) {
    options.tls_cert_file = (dir_ / "tls.crt").string();
    options.tls_key_file = (dir_ / "tls.key").string();
    return options;
  }
  std::string Ca(const std::string& name) { return (dir_ / (name + ".crt")).string(); }
  moa::testing::HttpResult Request(const std::string& scheme, const std::string& path,
                                   const std::string& ca, const std::string& body = "x") {
    return moa::testing::HttpRequest(
        "POST", absl::StrCat(scheme, "://localhost:", server_->port(), path), body, {}, ca);
  }

  std::filesystem::path dir_;
};

TEST_F(HttpsServerTest, AnswersAndStreamsOverTlsAndTellsAPlainHttpClientToUseHttps) {
  StartServer(Tls());
  auto whole = Request("https", "/now", Ca("ca1"), "hello");
  EXPECT_EQ(whole.status, 200) << whole.error;
  EXPECT_EQ(whole.body, "got 5\n");

  moa::testing::HttpResult streamed;
  std::thread client([&] { streamed = Request("https", "/stream", Ca("ca1")); });
  EXPECT_TRUE(moa::testing::WaitFor([&] { return handler_.pending() == 1; }, absl::Seconds(10)));
  handler_.Release();
  client.join();
  EXPECT_EQ(streamed.status, 200) << streamed.error;
  EXPECT_EQ(streamed.body, "data: one\n\ndata: two\n\n");
  EXPECT_THAT(streamed.headers, HasSubstr("Transfer-Encoding: chunked"));

  auto plain = Request("http", "/now", "");
  EXPECT_EQ(plain.status, 400) << plain.error;
  EXPECT_THAT(plain.body, HasSubstr("this port serves HTTPS"));

  auto untrusted = Request("https", "/now", Ca("ca2"));
  EXPECT_EQ(untrusted.status, 0) << "a client trusting another CA refuses the server";
  EXPECT_THAT(untrusted.error, HasSubstr("certificate"));
  EXPECT_EQ(Request("https", "/now", Ca("ca1")).status, 200) << "still serving";
}

// An answer that ends the connection ends the TLS session with
// close_notify: the client reads the whole answer, whole or streamed.
TEST_F(HttpsServerTest, AnAnswerThatClosesTheConnectionArrivesWhole) {
  StartServer(Tls());
  auto whole =
      moa::testing::HttpRequest("POST", absl::StrCat("https://localhost:", server_->port(), "/now"),
                                "hello", {"Connection: close"}, Ca("ca1"));
  EXPECT_EQ(whole.status, 200) << whole.error;
  EXPECT_EQ(whole.body, "got 5\n");
  EXPECT_THAT(whole.headers, HasSubstr("Connection: close"));
  moa::testing::HttpResult streamed;
  std::thread client([&] {
    streamed = moa::testing::HttpRequest(
        "POST", absl::StrCat("https://localhost:", server_->port(), "/stream"), "x",
        {"Connection: close"}, Ca("ca1"));
  });
  EXPECT_TRUE(moa::testing::WaitFor([&] { return handler_.pending() == 1; }, absl::Seconds(10)));
  handler_.Release();
  client.join();
  EXPECT_EQ(streamed.status, 200) << streamed.error;
  EXPECT_EQ(streamed.body, "data: one\n\ndata: two\n\n");
  EXPECT_TRUE(moa::testing::WaitFor([&] { return server_->connections() == 0; }, absl::Seconds(10)))
      << "each connection closed after its answer";
}

TEST_F(HttpsServerTest, ABrokenOrSilentHandshakeIsClosedAndTheServerKeepsServing) {
  StartServer(Tls({.read_timeout = absl::Milliseconds(300)}));
  RawClient silent(server_->port());
  RawClient garbage(server_->port());
  ASSERT_TRUE(garbage.Send(std::string("\x16\x03\x01\x00\x05hello", 10) + std::string(100, 'x')));
  EXPECT_EQ(garbage.ReadAll(absl::Seconds(5)).find("HTTP/"), std::string::npos);
  EXPECT_TRUE(garbage.closed());
  EXPECT_EQ(silent.ReadAll(absl::Seconds(5)), "");
  EXPECT_TRUE(silent.closed()) << "no handshake within the read timeout";
  auto after = Request("https", "/now", Ca("ca1"));
  EXPECT_EQ(after.status, 200) << after.error;
  EXPECT_TRUE(moa::testing::WaitFor([&] { return server_->connections() == 0; }, absl::Seconds(5)));
}

TEST_F(HttpsServerTest, RotatedFilesServeNewConnectionsAndAHalfWrittenPairKeepsTheOldOne) {
  StartServer(Tls({.tls_refresh = absl::Milliseconds(100)}));
  ASSERT_EQ(Request("https", "/now", Ca("ca1")).status, 200);
  moa::testing::InstallTlsFiles(dir_.string(), "ca2");
  EXPECT_TRUE(moa::testing::WaitFor(
      [&] { return Request("https", "/now", Ca("ca2")).status == 200; }, absl::Seconds(10)))
      << "the new certificate is served without a restart";
  EXPECT_EQ(Request("https", "/now", Ca("ca1")).status, 0) << "the old one is not";
  // A rotation caught half-way: ca1's certificate with ca2's key does not
  // load, so the server goes on with the pair it has.
  std::filesystem::copy_file(dir_ / "ca1-leaf.crt", dir_ / "tls.crt",
                             std::filesystem::copy_options::overwrite_existing);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Request("https", "/now", Ca("ca2")).status, 200);
  EXPECT_EQ(Request("https", "/now", Ca("ca2")).status, 200);
}

TEST_F(HttpsServerTest, StartRefusesMissingMismatchedOrHalfGivenFiles) {
  HttpServerOptions only_cert = Tls();
  only_cert.tls_key_file.clear();
  EXPECT_EQ(HttpServer::Start(only_cert, &handler_).status().code(),
            absl::StatusCode::kInvalidArgument);
  HttpServerOptions missing = Tls();
  missing.tls_key_file = (dir_ / "absent.key").string();
  auto refused = HttpServer::Start(missing, &handler_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(refused.status().message(), HasSubstr("absent.key"));
  HttpServerOptions mismatched = Tls();
  mismatched.tls_key_file = (dir_ / "ca2-leaf.key").string();
  EXPECT_EQ(HttpServer::Start(mismatched, &handler_).status().code(),
            absl::StatusCode::kInvalidArgument);
  HttpServerOptions not_pem = Tls();
  not_pem.tls_cert_file = (dir_ / "ca1.ext").string();
  EXPECT_EQ(HttpServer::Start(not_pem, &handler_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moa::net
