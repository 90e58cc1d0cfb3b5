// The TLS side of an HTTP server: the certificate and key files, loaded
// into an OpenSSL context and re-read when they change on disk (cert-manager
// and Kubernetes Secrets replace them in place), so rotation needs no
// restart. Connections already open keep the context they began with.
#ifndef MOA_LIB_NET_TLS_CONTEXT_H_
#define MOA_LIB_NET_TLS_CONTEXT_H_

#include <sys/stat.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace moa::net {

class ServerTlsContext {
 public:
  // Loads the PEM certificate chain and private key. NOT_FOUND naming the
  // file when one cannot be read, INVALID_ARGUMENT when they do not parse or
  // do not belong together.
  static absl::StatusOr<std::unique_ptr<ServerTlsContext>> Load(std::string cert_file,
                                                                std::string key_file,
                                                                absl::Duration refresh);

  // The context for a new connection. At most once per `refresh`, looks at
  // the files and, when one changed, loads them again; a pair that does not
  // load (a half-written rotation) keeps the previous context and is tried
  // again at the next look.
  std::shared_ptr<boost::asio::ssl::context> Current(absl::Time now);

 private:
  struct FileStamp {
    ino_t inode = 0;
    int64_t size = -1;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp& o) const {
      return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  ServerTlsContext(std::string cert_file, std::string key_file, absl::Duration refresh)
      : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)), refresh_(refresh) {}
  static FileStamp Stamp(const std::string& path);
  absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> Build() const;

  const std::string cert_file_, key_file_;
  const absl::Duration refresh_;
  absl::Mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> context_ ABSL_GUARDED_BY(mu_);
  FileStamp cert_stamp_ ABSL_GUARDED_BY(mu_), key_stamp_ ABSL_GUARDED_BY(mu_);
  absl::Time last_look_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moa::net

#endif  // MOA_LIB_NET_TLS_CONTEXT_H_
