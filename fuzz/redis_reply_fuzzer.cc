// What a Redis server (or anything listening where the config says the
// store is) may send the orchestrator: bytes through hiredis's reply reader,
// each reply converted to a typed value under our bounds, as
// RedisConnection does.
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>

#include "lib/store/redis_connection.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  redisReader* reader = redisReaderCreate();
  if (reader == nullptr) return 0;
  moa::store::BoundReader(reader);
  // In two pieces, as a socket may deliver them.
  const size_t half = size / 2;
  redisReaderFeed(reader, reinterpret_cast<const char*>(data), half);
  redisReaderFeed(reader, reinterpret_cast<const char*>(data) + half, size - half);
  for (int i = 0; i < 64; ++i) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == nullptr) break;
    auto value = moa::store::FromReply(static_cast<redisReply*>(reply));
    if (value.ok() && value->kind == moa::store::RedisValue::Kind::kString &&
        value->text.size() > moa::store::kMaxReplyBytes) {
      __builtin_trap();
    }
    freeReplyObject(reply);
  }
  redisReaderFree(reader);
  return 0;
}
