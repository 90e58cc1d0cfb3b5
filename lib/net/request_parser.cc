#include "lib/net/request_parser.h"

#include <algorithm>
#include <stdexcept>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moa::net {

namespace http = boost::beast::http;

namespace {

// A field name or value quoted in a refusal: short and printable.
std::string Quoted(boost::beast::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) {
    out +=
        (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) ? '?' : c;
  }
  return absl::StrCat("\"", out, s.size() > 64 ? "...\"" : "\"");
}

}  // namespace

void RequestParser::Refuse(std::string message, error_code& ec) {
  if (refusal_.empty()) refusal_ = std::move(message);
  ec = http::error::bad_field;
}

void RequestParser::on_request_impl(http::verb method, string_view method_str, string_view target,
                                    int version, error_code& ec) {
  try {
    request_.target(target);
    if (method != http::verb::unknown) {
      request_.method(method);
    } else {
      request_.method_string(method_str);
    }
  } catch (const std::length_error&) {
    return Refuse("the request line is too long", ec);
  }
  request_.version(version);
}

void RequestParser::on_response_impl(int, string_view, int, error_code& ec) {
  ec = http::error::bad_version;  // Never called for a request parser.
}

void RequestParser::on_field_impl(http::field name, string_view name_string, string_view value,
                                  error_code& ec) {
  if (header_done_) {
    return Refuse(absl::StrCat("request trailer fields are not accepted (", Quoted(name_string),
                               "); send every field in the header"),
                  ec);
  }
  if (name == http::field::transfer_encoding) ++transfer_encodings_;
  try {
    request_.insert(name, name_string, value);
  } catch (const std::length_error&) {
    return Refuse(absl::StrCat("the header field ", Quoted(name_string), " is too large"), ec);
  }
}

void RequestParser::on_header_impl(error_code& ec) {
  header_done_ = true;
  if (transfer_encodings_ == 0) return;
  auto te = request_[http::field::transfer_encoding];
  absl::string_view coding = absl::StripAsciiWhitespace(absl::string_view(te.data(), te.size()));
  if (transfer_encodings_ > 1 || !absl::EqualsIgnoreCase(coding, "chunked")) {
    Refuse(absl::StrCat("Transfer-Encoding ", Quoted(te),
                        " is not supported in a request: frame the body with Content-Length "
                        "or with Transfer-Encoding: chunked alone"),
           ec);
  }
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                                      error_code&) {
  // The limit on the body is the parser's body_limit, checked before this.
  if (content_length) {
    request_.body().reserve(static_cast<size_t>(std::min<std::uint64_t>(*content_length, 1 << 20)));
  }
}

std::size_t RequestParser::on_body_impl(string_view body, error_code&) {
  request_.body().append(body.data(), body.size());
  return body.size();
}

void RequestParser::on_chunk_header_impl(std::uint64_t, string_view, error_code&) {
  // Chunk extensions carry nothing for us (RFC 9112 7.1.1: ignored).
}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, string_view body, error_code&) {
  request_.body().append(body.data(), body.size());
  return body.size();
}

void RequestParser::on_finish_impl(error_code&) {}

}  // namespace moa::net
