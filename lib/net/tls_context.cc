#include "lib/net/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "lib/base/log.h"

namespace moa::net {

namespace ssl = boost::asio::ssl;

namespace {

// OpenSSL's reason for the last failure, without its error-queue noise.
std::string LastOpenSslError() {
  unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? reason : absl::StrCat("error ", code);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerTlsContext>> ServerTlsContext::Load(std::string cert_file,
                                                                         std::string key_file,
                                                                         absl::Duration refresh) {
  std::unique_ptr<ServerTlsContext> tls(
      new ServerTlsContext(std::move(cert_file), std::move(key_file), refresh));
  auto context = tls->Build();
  if (!context.ok()) return context.status();
  absl::MutexLock lock(&tls->mu_);
  tls->context_ = *std::move(context);
  tls->cert_stamp_ = Stamp(tls->cert_file_);
  tls->key_stamp_ = Stamp(tls->key_file_);
  tls->last_look_ = absl::Now();
  return tls;
}

ServerTlsContext::FileStamp ServerTlsContext::Stamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_ino, static_cast<int64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

absl::StatusOr<std::shared_ptr<ssl::context>> ServerTlsContext::Build() const {
  for (const std::string& path : {cert_file_, key_file_}) {
    if (!std::ifstream(path).good()) {
      return absl::NotFoundError(absl::StrCat("cannot read TLS file ", path));
    }
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  // TLS 1.2 and 1.3 only; no compression, no renegotiation.
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1 | ssl::context::no_compression,
                       ec);
  SSL_CTX_set_options(context->native_handle(), SSL_OP_NO_RENEGOTIATION);
  if (!ec) context->use_certificate_chain_file(cert_file_, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS certificate ", cert_file_, ": ", ec ? ec.message() : LastOpenSslError()));
  }
  context->use_private_key_file(key_file_, ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("TLS key ", key_file_, ": ",
                                                   ec ? ec.message() : LastOpenSslError(),
                                                   " (is it the certificate's key?)"));
  }
  return context;
}

std::shared_ptr<ssl::context> ServerTlsContext::Current(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (now - last_look_ < refresh_) return context_;
    last_look_ = now;
    if (Stamp(cert_file_) == cert_stamp_ && Stamp(key_file_) == key_stamp_) return context_;
  }
  // Changed: build outside the lock (file reads, key parsing).
  FileStamp cert = Stamp(cert_file_), key = Stamp(key_file_);
  auto built = Build();
  absl::MutexLock lock(&mu_);
  if (!built.ok()) {
    LogWarning("tls", "keeping the previous certificate: ", built.status().message());
    return context_;
  }
  context_ = *std::move(built);
  cert_stamp_ = cert;
  key_stamp_ = key;
  LogInfo("tls", "loaded the new certificate from ", cert_file_);
  return context_;
}

}  // namespace moa::net
