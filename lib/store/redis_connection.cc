#include "lib/store/redis_connection.h"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <sys/time.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "lib/base/redact.h"

namespace moa::store {
namespace {

absl::StatusOr<RedisValue> Convert(const redisReply* r, int depth, size_t* budget) {
  if (r == nullptr) return absl::InternalError("the store sent no reply");
  if (depth > kMaxReplyDepth) return absl::InternalError("the store's reply nests too deep");
  RedisValue v;
  switch (r->type) {
    case REDIS_REPLY_NIL:
      return v;
    case REDIS_REPLY_INTEGER:
      v.kind = RedisValue::Kind::kInteger;
      v.integer = r->integer;
      return v;
    case REDIS_REPLY_ERROR:
      return absl::FailedPreconditionError(
          absl::StrCat("the store refused the command: ",
                       SanitizePeerText(std::string(r->str, r->len), "", 200)));
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      if (r->len > *budget) return absl::InternalError("the store's reply is too large");
      *budget -= r->len;
      v.kind = RedisValue::Kind::kString;
      v.text.assign(r->str, r->len);
      return v;
    case REDIS_REPLY_ARRAY: {
      if (r->elements > kMaxReplyElements) {
        return absl::InternalError("the store's reply has too many elements");
      }
      v.kind = RedisValue::Kind::kArray;
      v.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        absl::StatusOr<RedisValue> e = Convert(r->element[i], depth + 1, budget);
        if (!e.ok()) return e.status();
        v.elements.push_back(*std::move(e));
      }
      return v;
    }
    default:
      return absl::InternalError(absl::StrCat("the store sent a reply of unknown type ", r->type));
  }
}

// A script's name in Redis's script cache: its SHA-1, in hex.
std::string Sha1Hex(absl::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace

absl::StatusOr<RedisValue> RedisConnection::Eval(absl::string_view script,
                                                 const std::vector<std::string>& keys,
                                                 const std::vector<std::string>& args) {
  std::vector<std::string> command = {"EVALSHA", Sha1Hex(script), absl::StrCat(keys.size())};
  command.insert(command.end(), keys.begin(), keys.end());
  command.insert(command.end(), args.begin(), args.end());
  absl::StatusOr<RedisValue> r = Command(command);
  if (r.ok() || r.status().message().find("NOSCRIPT") == absl::string_view::npos) return r;
  command[0] = "EVAL";
  command[1] = std::string(script);
  return Command(command);
}

absl::StatusOr<RedisValue> FromReply(const redisReply* reply) {
  size_t budget = kMaxReplyBytes;
  return Convert(reply, 0, &budget);
}

RedisConnection::RedisConnection(RedisOptions options)
    : options_(std::move(options)), backoff_(options_.initial_backoff) {}

RedisConnection::~RedisConnection() {
  absl::MutexLock lock(&mu_);
  if (context_ != nullptr) redisFree(context_);
}

void RedisConnection::FailLocked() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
  next_connect_ = options_.clock->Now() + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
}

namespace {

// hiredis's own functions, kept to call from ours (set once).
const redisReplyObjectFunctions* default_functions = nullptr;

void* BoundedArray(const redisReadTask* task, int elements) {
  // NULL makes the reader fail with an error, as for an allocation failure.
  if (elements < 0 || static_cast<size_t>(elements) > kMaxReplyElements) return nullptr;
  return default_functions->createArray(task, elements);
}

}  // namespace

void BoundReader(redisReader* reader) {
  static const redisReplyObjectFunctions* const bounded = [&] {
    default_functions = reader->fn;
    auto* f = new redisReplyObjectFunctions(*reader->fn);
    f->createArray = BoundedArray;
    return f;
  }();
  reader->fn = const_cast<redisReplyObjectFunctions*>(bounded);
}

absl::Status RedisConnection::ConnectLocked() {
  const std::string where = absl::StrCat(options_.host, ":", options_.port);
  context_ = redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                     absl::ToTimeval(options_.timeout));
  if (context_ == nullptr || context_->err != 0) {
    std::string why = context_ != nullptr ? context_->errstr : "out of memory";
    FailLocked();
    return absl::UnavailableError(absl::StrCat("cannot reach the store at ", where, ": ", why));
  }
  BoundReader(context_->reader);
  timeval tv = absl::ToTimeval(options_.timeout);
  redisSetTimeout(context_, tv);
  if (!options_.password.empty()) {
    auto* reply = static_cast<redisReply*>(
        redisCommand(context_, "AUTH %b", options_.password.data(), options_.password.size()));
    const bool ok = reply != nullptr && reply->type != REDIS_REPLY_ERROR;
    if (reply != nullptr) freeReplyObject(reply);
    if (!ok) {
      FailLocked();
      return absl::UnavailableError(
          absl::StrCat("the store at ", where, " refused the password (AUTH)"));
    }
  }
  backoff_ = options_.initial_backoff;
  return absl::OkStatus();
}

absl::StatusOr<RedisValue> RedisConnection::Command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  absl::MutexLock lock(&mu_);
  if (context_ == nullptr) {
    const absl::Time now = options_.clock->Now();
    if (now < next_connect_) {
      return absl::UnavailableError(absl::StrCat("the store at ", options_.host, ":", options_.port,
                                                 " is unreachable; next try in ",
                                                 absl::FormatDuration(next_connect_ - now)));
    }
    if (absl::Status s = ConnectLocked(); !s.ok()) return s;
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), lengths.data()));
  if (reply == nullptr) {
    std::string why = context_->errstr;
    FailLocked();
    return absl::UnavailableError(
        absl::StrCat("the store at ", options_.host, ":", options_.port, " did not answer: ", why));
  }
  absl::StatusOr<RedisValue> value = FromReply(reply);
  freeReplyObject(reply);
  return value;
}

}  // namespace moa::store
