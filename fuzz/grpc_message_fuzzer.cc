// Any gRPC call a peer could send as raw HTTP/2, through a server built the
// way every moa service builds one (lib/server): the input picks the
// grpc-encoding header, the compressed flag and whether the message prefix
// is ours or the input's own, then the message bytes; a gzip input may be
// deflated first so that whole gzip streams reach the server. The server
// must end every call (trailers or a reset) and keep serving; ASan and the
// RSS limit catch a message inflated without a bound.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lib/server/grpc_server.h"
#include "tests/support/raw_grpc.h"

namespace {

int Port() {
  static std::unique_ptr<moa::server::GrpcServer> server = [] {
    auto s = moa::server::GrpcServer::Start(
        {.host = "127.0.0.1", .port = 0, .name = "fuzz", .max_receive_bytes = 1 << 20}, {});
    if (!s.ok()) std::abort();
    return *std::move(s);
  }();
  return server->port();
}

const char* const kEncodings[] = {"",       "gzip",          "deflate", "identity",
                                  "snappy", "gzip, deflate", "GZIP",    "\x7f"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string encoding = kEncodings[data[0] % (sizeof(kEncodings) / sizeof(*kEncodings))];
  const uint8_t mode = data[1];
  std::string payload(reinterpret_cast<const char*>(data + 2), size - 2);
  if ((mode & 2) && encoding == "gzip") payload = moa::testing::GzipOfZeros(payload.size() << 10);
  const std::string message =
      (mode & 4) ? payload : moa::testing::GrpcFrame(payload, (mode & 1) != 0);
  std::vector<std::pair<std::string, std::string>> headers;
  if (!encoding.empty()) headers.emplace_back("grpc-encoding", encoding);
  auto outcome = moa::testing::SendRawGrpcCall(Port(), "/grpc.health.v1.Health/Check", headers,
                                               message, absl::Seconds(10));
  if (!outcome.ended && outcome.error == "timed out") {
    // A unary call the server neither answered nor reset within 10 s.
    std::fprintf(stderr, "the server did not end the call\n");
    std::abort();
  }
  return 0;
}
