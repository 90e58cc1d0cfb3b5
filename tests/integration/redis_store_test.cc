// The shared store against a real redis-server on a free loopback port with
// its own data directory (nothing persisted): replicas sharing one request
// window, a store that dies and comes back, replies of the wrong shape.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <signal.h>

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/base/retry_after.h"
#include "lib/store/redis_connection.h"
#include "lib/store/shared_rate_limit.h"
#include "lib/store/shared_spend.h"
#include "services/orchestrator/key_limits.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_support.h"

namespace moa::store {
namespace {

using ::moa::testing::RedisServer;
using ::testing::HasSubstr;

RedisOptions Options(int port, const Clock* clock = Clock::Real()) {
  RedisOptions o;
  o.port = port;
  o.clock = clock;
  return o;
}

// Three replicas, each with its own connection, take turns admitting 100
// requests of one key inside a minute: exactly 60 pass between them, and
// the window frees up as the first ones age out (on an injected clock).
TEST(RedisStoreTest, ThreeReplicasAdmitExactlyWhatOneWould) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  FakeClock clock;
  std::vector<std::unique_ptr<RedisConnection>> connections;
  std::vector<std::unique_ptr<SharedRateLimit>> replicas;
  for (int r = 0; r < 3; ++r) {
    connections.push_back(std::make_unique<RedisConnection>(Options(redis.port())));
    replicas.push_back(
        std::make_unique<SharedRateLimit>(connections.back().get(), absl::StrCat("replica-", r)));
  }
  const absl::Time start = clock.Now();
  int admitted = 0;
  absl::Duration retry_after;
  for (int i = 0; i < 100; ++i) {
    clock.Advance(absl::Milliseconds(100));  // 10 s for all of them.
    absl::StatusOr<RateDecision> d = replicas[i % 3]->Admit("sk-team-a", 60, clock.Now());
    ASSERT_TRUE(d.ok()) << d.status();
    admitted += d->admitted;
    if (!d->admitted) retry_after = d->retry_after;
  }
  EXPECT_EQ(admitted, 60);
  // The last refusal waits for the first request (at start + 100 ms) to age out.
  EXPECT_EQ(retry_after, start + absl::Milliseconds(100) + absl::Minutes(1) - clock.Now());
  // Another key has a window of its own.
  EXPECT_TRUE(replicas[0]->Admit("sk-team-b", 60, clock.Now())->admitted);
  // A minute after the first ones, room again: as many as aged out.
  clock.Advance(start + absl::Minutes(1) + absl::Milliseconds(1050) - clock.Now());
  int later = 0;
  for (int i = 0; i < 20; ++i)
    later += replicas[i % 3]->Admit("sk-team-a", 60, clock.Now())->admitted;
  EXPECT_EQ(later, 10);
}

// Three orchestrator replicas' KeyLimiters, one store: a key with
// requests_per_minute: 60 gets exactly 60 of 100 requests between them,
// and the refusal says "across the cluster" with the wait until the oldest
// request leaves the window.
TEST(RedisStoreTest, ThreeReplicasKeyLimitersShareOneRequestWindow) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  FakeClock clock;
  struct Replica {
    std::unique_ptr<RedisConnection> connection;
    std::unique_ptr<SharedRateLimit> window;
    prometheus::Registry registry;
    std::unique_ptr<orchestrator::KeyLimiter> limiter;
  };
  std::vector<std::unique_ptr<Replica>> replicas;
  for (int r = 0; r < 3; ++r) {
    auto replica = std::make_unique<Replica>();
    replica->connection = std::make_unique<RedisConnection>(Options(redis.port()));
    replica->window =
        std::make_unique<SharedRateLimit>(replica->connection.get(), absl::StrCat("r", r));
    replica->limiter = std::make_unique<orchestrator::KeyLimiter>(
        &clock, replica->registry,
        orchestrator::SharedLimits{.requests_per_minute = replica->window.get()});
    replicas.push_back(std::move(replica));
  }
  orchestrator::ApiKey key{"team-a", std::string(64, 'a'), {}};
  key.limits.requests_per_minute = 60;
  int admitted = 0;
  absl::Status last;
  for (int i = 0; i < 100; ++i) {
    clock.Advance(absl::Milliseconds(100));
    orchestrator::MoaCall::Options o;
    o.pipeline.name = "moa";
    absl::Status s = replicas[i % 3]->limiter->Admit(key, &o);
    if (s.ok()) {
      ++admitted;
      o.on_spent({.tokens = 10, .dollars = 0});  // Ends at once: only the window limits.
    } else {
      last = s;
    }
  }
  EXPECT_EQ(admitted, 60);
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(last.message()), HasSubstr("across the cluster"));
  EXPECT_EQ(GetRetryAfter(last),
            absl::Milliseconds(100) + absl::Minutes(1) - absl::Milliseconds(100) * 100);
}

// A day budget holds across replicas and across a restart of all of them:
// the spend is in the store, not in any replica's memory.
TEST(RedisStoreTest, ADayBudgetHoldsAcrossReplicasAndTheirRestart) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  FakeClock clock;
  clock.Advance(absl::FromUnixSeconds(1795687200) - clock.Now());  // 2026-11-26 10:00 UTC.
  RedisConnection connection(Options(redis.port()));
  SharedSpend spend(&connection);
  orchestrator::ApiKey key{"team-a", std::string(64, 'c'), {}};
  key.limits.budget_dollars_per_day = 0.001;
  auto admit = [&](orchestrator::KeyLimiter& limiter, double dollars) {
    orchestrator::MoaCall::Options o;
    o.pipeline.name = "moa";
    absl::Status s = limiter.Admit(key, &o);
    if (s.ok()) o.on_spent({.tokens = 100, .dollars = dollars});
    return s;
  };
  {
    prometheus::Registry r1, r2;
    orchestrator::KeyLimiter a(&clock, r1, {.spend = &spend});
    orchestrator::KeyLimiter b(&clock, r2, {.spend = &spend});
    EXPECT_TRUE(admit(a, 0.0006).ok());
    EXPECT_TRUE(admit(b, 0.0006).ok());  // $0.0006 spent: under $0.001.
    absl::Status over = admit(a, 0);
    EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(std::string(over.message()), HasSubstr("across the cluster"));
    EXPECT_EQ(GetRetryAfter(over), absl::Hours(14)) << "until the next UTC midnight";
  }
  // Every replica restarted (new limiters, nothing in memory): still spent.
  prometheus::Registry r3;
  orchestrator::KeyLimiter c(&clock, r3, {.spend = &spend});
  EXPECT_EQ(admit(c, 0).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NEAR(spend.Read(key.sha256, clock.Now())->day, 0.0012, 1e-12);
  // The next UTC day starts at zero; the month keeps adding up.
  clock.Advance(absl::Hours(14));
  EXPECT_TRUE(admit(c, 0.0001).ok());
  EXPECT_NEAR(spend.Read(key.sha256, clock.Now())->month, 0.0013, 1e-12);
}

// Spend by model: each model's share added in the same round trip as the
// totals, read back per day and month; a foreign value is an error.
TEST(RedisStoreTest, SpendIsKeptByModelBesideTheTotals) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  RedisConnection connection(Options(redis.port()));
  SharedSpend spend(&connection);
  const absl::Time now = absl::FromUnixSeconds(1795687200);  // 2026-11-26 10:00 UTC.
  ASSERT_TRUE(spend.Add("sk-a", now, 0.03, {{"z", 0.02}, {"a", 0.01}, {"free", 0}}).ok());
  ASSERT_TRUE(spend.Add("sk-a", now + absl::Hours(24), 0.005, {{"z", 0.005}}).ok());
  absl::StatusOr<SpentByModel> next_day = spend.ReadByModel("sk-a", now + absl::Hours(24));
  ASSERT_TRUE(next_day.ok()) << next_day.status();
  EXPECT_EQ(next_day->day, (std::map<std::string, double>{{"z", 0.005}}));
  EXPECT_NEAR(next_day->month.at("z"), 0.025, 1e-12);
  EXPECT_NEAR(next_day->month.at("a"), 0.01, 1e-12);
  EXPECT_EQ(next_day->month.count("free"), 0u) << "a model that cost nothing is not written";
  EXPECT_NEAR(spend.Read("sk-a", now + absl::Hours(24))->month, 0.035, 1e-12);
  ASSERT_TRUE(connection.Command({"HSET", DayModelSpendKey("sk-b", now), "z", "lots"}).ok());
  EXPECT_FALSE(spend.ReadByModel("sk-b", now).ok());
}

// The store's failure policy: `open` decides on the replica alone (and
// counts it), `closed` refuses with a named UNAVAILABLE; the same limiter
// uses the store again once it is back.
TEST(RedisStoreTest, AnUnreachableStoreIsDecidedByItsFailurePolicy) {
  auto redis = std::make_unique<RedisServer>();
  ASSERT_TRUE(redis->ready()) << redis->log();
  FakeClock clock;
  RedisConnection connection(Options(redis->port(), &clock));
  SharedRateLimit window(&connection, "r");
  prometheus::Registry open_registry, closed_registry;
  orchestrator::KeyLimiter open(&clock, open_registry, {.requests_per_minute = &window});
  orchestrator::KeyLimiter closed(&clock, closed_registry,
                                  {.requests_per_minute = &window, .fail_closed = true});
  orchestrator::ApiKey key{"team-a", std::string(64, 'b'), {}};
  key.limits.requests_per_minute = 2;
  auto admit = [&](orchestrator::KeyLimiter& limiter) {
    orchestrator::MoaCall::Options o;
    o.pipeline.name = "moa";
    absl::Status s = limiter.Admit(key, &o);
    if (s.ok()) o.on_spent({.tokens = 1, .dollars = 0});
    return s;
  };
  redis->Kill();
  // open: the replica's own window of 2.
  EXPECT_TRUE(admit(open).ok());
  EXPECT_TRUE(admit(open).ok());
  absl::Status local = admit(open);
  EXPECT_EQ(local.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(local.message()), HasSubstr("on this replica"));
  // closed: refused by name.
  absl::Status refused = admit(closed);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("store.failure: closed"));
  double errors = 0;
  for (const auto& f : open_registry.Collect()) {
    if (f.name == "moa_limit_store_errors_total") errors = f.metric[0].counter.value;
  }
  EXPECT_EQ(errors, 3);
  double waits = 0;  // Every admission asked the store once, and timed it.
  for (const auto& f : open_registry.Collect()) {
    if (f.name == "moa_limit_store_seconds") waits = f.metric[0].histogram.sample_count;
  }
  EXPECT_EQ(waits, 3);
  // Back: the shared window decides again (it starts empty: nothing was
  // persisted), with no restart of anything.
  redis->Start();
  ASSERT_TRUE(redis->ready()) << redis->log();
  clock.Advance(absl::Seconds(61));
  EXPECT_TRUE(admit(closed).ok());
  EXPECT_TRUE(admit(closed).ok());
  absl::Status shared = admit(closed);
  EXPECT_THAT(std::string(shared.message()), HasSubstr("across the cluster"));
}

// A store that dies: each command fails within its bound, and during the
// backoff at once, never hanging a request; when it is back, the same
// connection object works again without a restart.
TEST(RedisStoreTest, ADeadStoreFailsFastAndIsUsedAgainWhenItReturns) {
  auto redis = std::make_unique<RedisServer>();
  ASSERT_TRUE(redis->ready()) << redis->log();
  FakeClock clock;
  RedisConnection connection(Options(redis->port(), &clock));
  ASSERT_TRUE(connection.Command({"PING"}).ok());
  redis->Kill();
  absl::Time before = absl::Now();
  absl::StatusOr<RedisValue> down = connection.Command({"PING"});
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  // A refused connection fails at once; the bound is the 50 ms timeout,
  // checked loosely so a busy machine cannot fail it.
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
  absl::StatusOr<RedisValue> backing_off = connection.Command({"PING"});
  EXPECT_THAT(std::string(backing_off.status().message()), HasSubstr("next try in"));
  redis->Start();
  ASSERT_TRUE(redis->ready()) << redis->log();
  clock.Advance(absl::Seconds(3));  // Past the backoff.
  absl::StatusOr<RedisValue> back = connection.Command({"PING"});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->text, "PONG");
}

TEST(RedisStoreTest, ErrorRepliesAndValuesAreTyped) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  RedisConnection connection(Options(redis.port()));
  ASSERT_TRUE(connection.Command({"SET", "k", std::string("a\0b", 3)}).ok());
  EXPECT_EQ(connection.Command({"GET", "k"})->text, std::string("a\0b", 3));
  EXPECT_EQ(connection.Command({"GET", "missing"})->kind, RedisValue::Kind::kNil);
  EXPECT_EQ(connection.Command({"INCR", "n"})->integer, 1);
  absl::StatusOr<RedisValue> wrong = connection.Command({"INCR", "k"});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("not an integer"));
  // A key under the store's rate window holding something else is a named
  // error, not a crash or a pass.
  ASSERT_TRUE(connection.Command({"SET", RateWindowKey("sk-x"), "v"}).ok());
  SharedRateLimit limit(&connection, "r");
  EXPECT_FALSE(limit.Admit("sk-x", 5, absl::Now()).ok());
}

// Replies as hiredis reads them off the wire: nesting past hiredis's own
// bound (7) is refused by it; within it, converted (our bound, 8, is the
// second line of defence).
TEST(RedisStoreTest, RepliesAreReadWithinBounds) {
  auto read = [](const std::string& wire) -> absl::StatusOr<RedisValue> {
    redisReader* reader = redisReaderCreate();
    redisReaderFeed(reader, wire.data(), wire.size());
    void* reply = nullptr;
    const int rc = redisReaderGetReply(reader, &reply);
    redisReaderFree(reader);
    if (rc != REDIS_OK || reply == nullptr) return absl::InternalError("hiredis refused it");
    absl::StatusOr<RedisValue> v = FromReply(static_cast<redisReply*>(reply));
    freeReplyObject(reply);
    return v;
  };
  std::string nested = ":1\r\n";
  for (int i = 0; i < 7; ++i) nested = "*1\r\n" + nested;
  absl::StatusOr<RedisValue> seven = read(nested);
  ASSERT_TRUE(seven.ok()) << seven.status();
  EXPECT_EQ(seven->kind, RedisValue::Kind::kArray);
  EXPECT_FALSE(read("*1\r\n*1\r\n" + nested).ok());
  absl::StatusOr<RedisValue> error = read("-ERR wrong\x01type\r\n");
  EXPECT_EQ(error.status().code(), absl::StatusCode::kFailedPrecondition);
  // An array header declaring two billion elements is refused before
  // hiredis allocates their table (16 GB; found by the redis_reply fuzzer).
  redisReader* reader = redisReaderCreate();
  BoundReader(reader);
  const std::string huge = "*1999999999\r\n:1\r\n";
  redisReaderFeed(reader, huge.data(), huge.size());
  void* reply = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader, &reply), REDIS_ERR);
  EXPECT_EQ(reply, nullptr);
  redisReaderFree(reader);
}

}  // namespace
}  // namespace moa::store
