#include "tests/support/raw_grpc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "absl/time/clock.h"

namespace moa::testing {
namespace {

constexpr uint8_t kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4, kPing = 0x6,
                  kGoAway = 0x7, kWindowUpdate = 0x8, kContinuation = 0x9;
constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4;

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  const uint32_t n = static_cast<uint32_t>(payload.size());
  f += static_cast<char>(n >> 16);
  f += static_cast<char>(n >> 8);
  f += static_cast<char>(n);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  for (int shift = 24; shift >= 0; shift -= 8) f += static_cast<char>(stream >> shift);
  return f + payload;
}

// HPACK integer with an N-bit prefix (RFC 7541 5.1).
void HpackInt(std::string& out, uint8_t first, int prefix_bits, size_t value) {
  const size_t max = (1u << prefix_bits) - 1;
  if (value < max) {
    out += static_cast<char>(first | value);
    return;
  }
  out += static_cast<char>(first | max);
  value -= max;
  while (value >= 128) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

// A literal field without indexing, new name, no Huffman (RFC 7541 6.2.2).
void HpackLiteral(std::string& out, const std::string& name, const std::string& value) {
  out += '\0';
  HpackInt(out, 0, 7, name.size());
  out += name;
  HpackInt(out, 0, 7, value.size());
  out += value;
}

bool WriteAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

uint32_t Be32(const std::string& s, size_t at) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(s[at])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(s[at + 3]));
}

}  // namespace

std::string GrpcFrame(const std::string& payload, bool compressed) {
  std::string out;
  out += static_cast<char>(compressed ? 1 : 0);
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(n >> shift);
  return out + payload;
}

std::string GzipOfZeros(size_t size) {
  z_stream z{};
  deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  static const std::string zeros(1 << 20, '\0');
  std::string out;
  char buf[1 << 16];
  size_t left = size;
  int flush = Z_NO_FLUSH;
  do {
    const size_t take = std::min(left, zeros.size());
    left -= take;
    flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
    z.avail_in = static_cast<uInt>(take);
    do {
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof(buf);
      deflate(&z, flush);
      out.append(buf, sizeof(buf) - z.avail_out);
    } while (z.avail_out == 0);
  } while (flush != Z_FINISH);
  deflateEnd(&z);
  return out;
}

RawGrpcOutcome SendRawGrpcCall(int port, const std::string& path,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const std::string& message, absl::Duration timeout) {
  RawGrpcOutcome outcome;
  const absl::Time deadline = absl::Now() + timeout;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    outcome.error = "connect failed";
    return outcome;
  }
  std::string block;
  HpackLiteral(block, ":method", "POST");
  HpackLiteral(block, ":scheme", "http");
  HpackLiteral(block, ":path", path);
  HpackLiteral(block, ":authority", "127.0.0.1");
  HpackLiteral(block, "content-type", "application/grpc");
  HpackLiteral(block, "te", "trailers");
  for (const auto& [name, value] : headers) HpackLiteral(block, name, value);
  std::string hello = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  hello += Frame(kSettings, 0, 0, "");
  // A header block larger than a frame goes on in CONTINUATION frames.
  constexpr size_t kFrame = 16384;
  for (size_t at = 0; at == 0 || at < block.size(); at += kFrame) {
    const bool last = at + kFrame >= block.size();
    hello += Frame(at == 0 ? kHeaders : kContinuation, last ? kEndHeaders : 0, 1,
                   block.substr(at, kFrame));
  }
  // No message at all: the request ends with the headers' stream.
  if (message.empty()) hello += Frame(kData, kEndStream, 1, "");
  if (!WriteAll(fd, hello)) {
    ::close(fd);
    outcome.error = "write failed";
    return outcome;
  }
  int64_t conn_window = 65535, stream_window = 65535, initial_window = 65535;
  size_t max_frame = 16384;
  std::string in;
  char buf[1 << 16];
  while (!outcome.ended) {
    // Send what the windows allow.
    while (outcome.message_bytes_sent < message.size() && conn_window > 0 && stream_window > 0) {
      const size_t n =
          std::min<size_t>({message.size() - outcome.message_bytes_sent, max_frame,
                            static_cast<size_t>(conn_window), static_cast<size_t>(stream_window)});
      const bool last = outcome.message_bytes_sent + n == message.size();
      pollfd w{fd, POLLOUT, 0};
      if (::poll(&w, 1, 0) <= 0) break;  // The socket is full: read first.
      if (!WriteAll(fd, Frame(kData, last ? kEndStream : 0, 1,
                              message.substr(outcome.message_bytes_sent, n)))) {
        outcome.error = "write failed";
        ::close(fd);
        return outcome;
      }
      outcome.message_bytes_sent += n;
      conn_window -= static_cast<int64_t>(n);
      stream_window -= static_cast<int64_t>(n);
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      outcome.error = "timed out";
      break;
    }
    pollfd r{fd, POLLIN, 0};
    const bool can_send =
        outcome.message_bytes_sent < message.size() && conn_window > 0 && stream_window > 0;
    if (can_send) r.events |= POLLOUT;
    int ready =
        ::poll(&r, 1, static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left), 100)));
    if (ready <= 0 || !(r.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t got = ::recv(fd, buf, sizeof(buf), 0);
    if (got <= 0) {
      outcome.ended = true;  // The server closed the connection.
      outcome.reset = true;
      break;
    }
    in.append(buf, static_cast<size_t>(got));
    while (in.size() >= 9) {
      const size_t len = (static_cast<size_t>(static_cast<uint8_t>(in[0])) << 16) |
                         (static_cast<size_t>(static_cast<uint8_t>(in[1])) << 8) |
                         static_cast<uint8_t>(in[2]);
      if (in.size() < 9 + len) break;
      const uint8_t type = static_cast<uint8_t>(in[3]), flags = static_cast<uint8_t>(in[4]);
      const uint32_t stream = Be32(in, 5) & 0x7fffffff;
      const std::string payload = in.substr(9, len);
      in.erase(0, 9 + len);
      if (type == kSettings && !(flags & kAck)) {
        for (size_t i = 0; i + 6 <= payload.size(); i += 6) {
          const int id =
              (static_cast<uint8_t>(payload[i]) << 8) | static_cast<uint8_t>(payload[i + 1]);
          const uint32_t v = Be32(payload, i + 2);
          if (id == 0x4) {
            stream_window += static_cast<int64_t>(v) - initial_window;
            initial_window = v;
          } else if (id == 0x5) {
            max_frame = v;
          }
        }
        WriteAll(fd, Frame(kSettings, kAck, 0, ""));
      } else if (type == kWindowUpdate && payload.size() == 4) {
        (stream == 0 ? conn_window : stream_window) += Be32(payload, 0) & 0x7fffffff;
      } else if (type == kPing && !(flags & kAck)) {
        WriteAll(fd, Frame(kPing, kAck, 0, payload));
      } else if ((type == kHeaders && stream == 1 && (flags & kEndStream)) ||
                 (type == kRstStream && stream == 1) || type == kGoAway) {
        outcome.ended = true;
        outcome.reset = type != kHeaders;
      }
    }
  }
  ::close(fd);
  return outcome;
}

}  // namespace moa::testing
