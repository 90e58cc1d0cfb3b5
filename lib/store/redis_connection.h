// One connection to a Redis server (the cluster's optional shared store for
// client limits), on hiredis. Every command is bounded in time: a dead or
// slow store costs a request at most `timeout`, and after a failure no
// connect is tried again until a backoff has passed, so commands fail at
// once meanwhile. Replies are read into typed values with bounds; an error
// reply is a status naming it.
#ifndef MOA_LIB_STORE_REDIS_CONNECTION_H_
#define MOA_LIB_STORE_REDIS_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/base/clock.h"

struct redisContext;
struct redisReader;
struct redisReply;

namespace moa::store {

// A reply, typed. Strings are binary-safe.
struct RedisValue {
  enum class Kind { kNil, kInteger, kString, kArray };
  Kind kind = Kind::kNil;
  int64_t integer = 0;
  std::string text;  // kString (bulk, status and verbatim strings; doubles as text).
  std::vector<RedisValue> elements;
};

// Bounds on what a reply may hold; over them the reply is an error.
inline constexpr int kMaxReplyDepth = 8;
inline constexpr size_t kMaxReplyElements = 100000;
// 16 MiB: the whole key directory (10,000 records of at most 1 KiB, with
// their names) is one reply.
inline constexpr size_t kMaxReplyBytes = 16 << 20;

// Makes `reader` refuse an array header declaring more than
// kMaxReplyElements elements before it allocates them: hiredis 0.14
// allocates a declared array's element table at once, so "*1999999999"
// from a peer would ask for 16 GB.
void BoundReader(redisReader* reader);

// A hiredis reply as a typed value; an error reply is FAILED_PRECONDITION
// with its text (sanitised, bounded), anything over the bounds INTERNAL.
absl::StatusOr<RedisValue> FromReply(const redisReply* reply);

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  // Connect and each command. A request waits on the store at most this
  // long (plus its own work).
  absl::Duration timeout = absl::Milliseconds(50);
  // Sent with AUTH after each connect when set; never logged.
  std::string password;
  // After a failure, the first retry waits this long, doubling to the cap.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  const Clock* clock = Clock::Real();  // For the backoff only.
};

class RedisConnection {
 public:
  explicit RedisConnection(RedisOptions options);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Runs one command (arguments binary-safe). UNAVAILABLE when the store
  // cannot be reached or did not answer within the timeout (the connection
  // is then dropped and reconnected after the backoff); FAILED_PRECONDITION
  // for an error reply. Thread-safe: commands take turns on the one
  // connection (each is bounded by the timeout).
  absl::StatusOr<RedisValue> Command(const std::vector<std::string>& args);

  // Runs a Lua script atomically in the store: EVALSHA, and EVAL when the
  // store does not have it yet (once per store restart).
  absl::StatusOr<RedisValue> Eval(absl::string_view script, const std::vector<std::string>& keys,
                                  const std::vector<std::string>& args);

 private:
  absl::Status ConnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RedisOptions options_;
  absl::Mutex mu_;
  redisContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  absl::Time next_connect_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace moa::store

#endif  // MOA_LIB_STORE_REDIS_CONNECTION_H_
