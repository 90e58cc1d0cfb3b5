// Binding an Asio acceptor the same way in every HTTP server of the project.
#ifndef MOA_LIB_NET_LISTEN_H_
#define MOA_LIB_NET_LISTEN_H_

#include <boost/asio.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moa::net {

// Opens, binds (with SO_REUSEADDR) and listens with the system's largest
// backlog, so bursts of thousands of connections are not refused.
// INVALID_ARGUMENT for a bad host, UNAVAILABLE when the port cannot be bound.
inline absl::Status Listen(boost::asio::ip::tcp::acceptor& acceptor, const std::string& host,
                           int port) {
  namespace asio = boost::asio;
  boost::system::error_code ec;
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host, ec),
                                   static_cast<unsigned short>(port));
  if (ec) return absl::InvalidArgumentError(absl::StrCat("bad listen address '", host, "'"));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace moa::net

#endif  // MOA_LIB_NET_LISTEN_H_
