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
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/support/test_support.h"

namespace moa::net {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A blocking client socket with timeouts.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  void HalfClose() { shutdown(fd_, SHUT_WR); }

  // Reads until `done(received)` holds, the peer closes, or `timeout` passes.
  std::string ReadUntil(const std::function<bool(const std::string&)>& done,
                        absl::Duration timeout = absl::Seconds(5)) {
    std::string out;
    absl::Time end = absl::Now() + timeout;
    while (!done(out) && absl::Now() < end) {
      pollfd p{fd_, POLLIN, 0};
      int ms = static_cast<int>(absl::ToInt64Milliseconds(end - absl::Now()));
      if (poll(&p, 1, std::max(ms, 1)) <= 0) continue;
      char buf[65536];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  std::string ReadAll(absl::Duration timeout = absl::Seconds(5)) {
    return ReadUntil([](const std::string&) { return false; }, timeout);
  }
  // One whole response with a Content-Length body.
  std::string ReadResponse(absl::Duration timeout = absl::Seconds(5)) {
    return ReadUntil(
        [](const std::string& s) {
          size_t head = s.find("\r\n\r\n");
          if (head == std::string::npos) return false;
          size_t cl = s.find("Content-Length: ");
          if (cl == std::string::npos || cl > head) return true;
          size_t len = std::stoul(s.substr(cl + 16));
          return s.size() >= head + 4 + len;
        },
        timeout);
  }
  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
};

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
  fcntl(c.fd(), F_SETFL, fcntl(c.fd(), F_GETFL) | O_NONBLOCK);
  std::string junk(1 << 20, 'j');
  size_t pushed = 0;
  absl::Time end = absl::Now() + absl::Seconds(3);
  while (pushed < (500u << 20) && absl::Now() < end) {
    ssize_t n = send(c.fd(), junk.data(), junk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      pushed += static_cast<size_t>(n);
    } else {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  // Kernel buffers take a few MiB; the server took at most its read-ahead.
  EXPECT_LT(pushed, 64u << 20);
  fcntl(c.fd(), F_SETFL, fcntl(c.fd(), F_GETFL) & ~O_NONBLOCK);
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

}  // namespace
}  // namespace moa::net
