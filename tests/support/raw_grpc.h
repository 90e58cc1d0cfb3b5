// One gRPC call sent as raw HTTP/2 frames, as a peer that is no gRPC library
// would send it: any headers (grpc-encoding included) and any message bytes,
// compressed by the caller or not. Flow control is honoured, so a server
// that reads everything gets everything.
#ifndef MOA_TESTS_SUPPORT_RAW_GRPC_H_
#define MOA_TESTS_SUPPORT_RAW_GRPC_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace moa::testing {

struct RawGrpcOutcome {
  bool ended = false;  // The server ended the stream (trailers, RST_STREAM or GOAWAY).
  bool reset = false;  // ... with RST_STREAM or GOAWAY.
  size_t message_bytes_sent = 0;
  std::string error;  // A socket error or the timeout; empty otherwise.
};

// The 5-byte gRPC message prefix and `payload` (flag 1 = compressed).
std::string GrpcFrame(const std::string& payload, bool compressed);

// A whole deflate stream of `size` zero bytes in gzip framing (what
// `grpc-encoding: gzip` names): about 1/1000 of `size`.
std::string GzipOfZeros(size_t size);

// POSTs `path` on 127.0.0.1:port over cleartext HTTP/2 with the gRPC
// pseudo-headers plus `headers`, sends `message` (ending the stream), and
// waits up to `timeout` for the server to end the stream.
RawGrpcOutcome SendRawGrpcCall(int port, const std::string& path,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const std::string& message, absl::Duration timeout);

}  // namespace moa::testing

#endif  // MOA_TESTS_SUPPORT_RAW_GRPC_H_
