// The HTTP/1.1 connection layer of every HTTP server in the project (the
// orchestrator's OpenAI-compatible API, the upstream simulator): accepting,
// request framing with limits, keep-alive, one write in flight with what
// queues behind it merged, noticing a client that leaves, and drain. The
// application sees complete requests and answers through an HttpExchange.
//
// Limits and what a peer gets for crossing them:
//   header larger than max_header_bytes        431, then close
//   body larger than max_body_bytes            413, then close
//   malformed request (bad line, duplicate
//   Content-Length, Content-Length with
//   Transfer-Encoding, bad chunking)           400, then close
//   Transfer-Encoding other than exactly
//   `chunked`, or any trailer field            400 naming it, then close
//   a chunk header or trailer section over
//   the read buffer (header + read-ahead +
//   64 KiB)                                    431, then close
//   request not complete within read_timeout   408 (bytes were sent) or a
//                                              silent close (idle keep-alive)
//   more than max_connections open             503, then close
//   bytes sent while a response is pending     kept up to max_read_ahead_bytes
//                                              (a pipelined request), then the
//                                              server stops reading: TCP
//                                              flow control holds the sender
//   response bytes queued for a client that    the connection is closed
//   does not read, over max_write_queue_bytes
//   TLS handshake not done within read_timeout the connection is closed
// "Then close" answers carry `Connection: close`; the server stops sending,
// reads and discards what still comes for a moment (bounded), then closes, so
// the client reads the answer instead of a reset.
//
// Threads: `threads` I/O threads run one io_context; every connection has a
// strand, and all handler calls for a connection run on it.
#ifndef MOA_LIB_NET_HTTP_SERVER_H_
#define MOA_LIB_NET_HTTP_SERVER_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moa::net {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpRequestHeader = boost::beast::http::request_header<>;

struct HttpServerOptions {
  std::string name = "moa";  // The Server header and log lines.
  std::string host = "127.0.0.1";
  int port = 0;  // 0 picks a free one; see HttpServer::port().
  int threads = 1;
  size_t max_header_bytes = 16 << 10;
  size_t max_body_bytes = 4 << 20;
  // Receiving one request (headers and body), and the longest a keep-alive
  // connection may sit idle between requests.
  absl::Duration read_timeout = absl::Seconds(10);
  size_t max_connections = 10000;
  size_t max_read_ahead_bytes = 64 << 10;
  size_t max_write_queue_bytes = 16 << 20;
  // HTTPS when both are set (PEM files; TLS 1.2 and 1.3). The files are
  // looked at again at most every `tls_refresh` when a connection arrives,
  // and loaded anew when they changed. A plain-HTTP client on an HTTPS port
  // gets a plain 400 saying so.
  std::string tls_cert_file{};
  std::string tls_key_file{};
  absl::Duration tls_refresh = absl::Seconds(60);
};

// A whole response, or the head of a streamed one.
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;  // Ignored for a streamed response's head.
  std::vector<std::pair<std::string, std::string>> headers;
};

// The answer to one request. Every method may be called from any thread;
// calls are carried out on the connection's strand in the order they were
// made. Calls after the response ended, or after the client left, do nothing.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  // Sends a whole response.
  virtual void Respond(HttpResponse response) = 0;
  // Sends a chunked response's head; Write() sends body pieces (merged into
  // one chunk while a write is in flight) and End() the last chunk.
  // `keepalive_chunk` is a body piece that clients ignore (for SSE, a comment
  // line): it is used to learn whether a client that half-closed is still
  // there.
  virtual void StartStream(HttpResponse head, std::string keepalive_chunk = "") = 0;
  virtual void Write(std::string data) = 0;
  virtual void End() = 0;
  // Resets the TCP connection (RST), as a crashed server would.
  virtual void Abort() = 0;

  // Called once on the strand when the exchange is over: true when the whole
  // response was written, false when the client left, reset the connection,
  // or stopped reading before that. Set it before answering.
  virtual void OnClosed(std::function<void(bool completed)> callback) = 0;

  // The connection's strand, for timers of a handler that answers later.
  virtual boost::asio::any_io_executor executor() const = 0;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // After the headers, before any body byte is read: a response to send at
  // once (the body is then never read and the connection closes after it),
  // or nullopt to go on. Where to check routes, methods and credentials.
  virtual std::optional<HttpResponse> Screen(const HttpRequestHeader& header) {
    return std::nullopt;
  }
  // A complete request; answer through `exchange`, now or later.
  virtual void Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) = 0;
};

class HttpServer {
 public:
  // Binds and starts serving. `handler` must outlive the server.
  // INVALID_ARGUMENT for a bad host or TLS files that do not load (NOT_FOUND
  // when one cannot be read), UNAVAILABLE when the port is taken.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           HttpHandler* handler);
  // Stops at once: closes every connection and joins the I/O threads.
  ~HttpServer();

  int port() const;
  // Connections open now.
  size_t connections() const;

  // Drain: stops accepting, closes idle keep-alive connections, and makes
  // every response from now on carry `Connection: close`, so each connection
  // closes when its current response ends. Idempotent.
  void StopAccepting();

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moa::net

#endif  // MOA_LIB_NET_HTTP_SERVER_H_
