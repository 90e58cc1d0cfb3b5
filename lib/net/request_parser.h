// The request parser of lib/net's connection layer: Beast's HTTP/1.1 framing
// with the rules a server facing any client needs, which Beast's own
// request_parser leaves to its user:
//   - Transfer-Encoding: a request may use it only as exactly `chunked` (one
//     field, one coding). Anything else (`identity`, `gzip`, `chunked,
//     identity`, two fields) is refused before the body: framed another way by
//     a proxy in front, the bytes after the header would be read as a second
//     request (RFC 9112 6.1: 400, then close).
//   - Trailer fields after a chunked body are refused: no request of ours has
//     a use for them, and Beast would add them to the header without a bound
//     (a 64 KiB field throws out of the I/O thread). What the trailer section
//     may occupy is bounded by the connection's read buffer.
//   - A header field Beast cannot store is a refusal, never an exception.
// A refusal sets a Beast error on the parse and keeps a message for the
// client in refusal().
#ifndef MOA_LIB_NET_REQUEST_PARSER_H_
#define MOA_LIB_NET_REQUEST_PARSER_H_

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>

namespace moa::net {

class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  const Request& get() const { return request_; }
  Request release() { return std::move(request_); }
  // Why the request was refused, for the client; empty when it was not (or
  // the error is Beast's own framing error).
  const std::string& refusal() const { return refusal_; }

 private:
  using error_code = boost::beast::error_code;
  using string_view = boost::beast::string_view;

  void on_request_impl(boost::beast::http::verb method, string_view method_str, string_view target,
                       int version, error_code& ec) override;
  void on_response_impl(int, string_view, int, error_code& ec) override;
  void on_field_impl(boost::beast::http::field name, string_view name_string, string_view value,
                     error_code& ec) override;
  void on_header_impl(error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         error_code& ec) override;
  std::size_t on_body_impl(string_view body, error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t size, string_view extensions, error_code& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t remain, string_view body, error_code& ec) override;
  void on_finish_impl(error_code& ec) override;

  void Refuse(std::string message, error_code& ec);

  Request request_;
  std::string refusal_;
  bool header_done_ = false;
  int transfer_encodings_ = 0;
};

}  // namespace moa::net

#endif  // MOA_LIB_NET_REQUEST_PARSER_H_
