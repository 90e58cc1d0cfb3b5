// Concurrent requests and tokens per minute shared by replicas through a
// real redis-server, on an injected clock: leases held, given back and
// expired; the token window sliding; three replicas' KeyLimiters deciding
// as one; a store that dies under each failure policy and comes back; sums
// that drifted heal.
#include "lib/store/shared_usage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "lib/base/retry_after.h"
#include "lib/store/redis_connection.h"
#include "services/orchestrator/key_limits.h"
#include "tests/support/redis_server.h"

namespace moa::store {
namespace {

using ::moa::testing::RedisServer;
using ::testing::HasSubstr;
using Refused = UsageDecision::Refused;

RedisOptions Options(int port, const Clock* clock) {
  RedisOptions o;
  o.port = port;
  o.clock = clock;
  return o;
}

struct Replicas {
  Replicas(int port, const Clock* clock, int n = 3) {
    for (int r = 0; r < n; ++r) {
      connections.push_back(std::make_unique<RedisConnection>(Options(port, clock)));
      usage.push_back(
          std::make_unique<SharedUsage>(connections.back().get(), absl::StrCat("replica-", r)));
    }
  }
  std::vector<std::unique_ptr<RedisConnection>> connections;
  std::vector<std::unique_ptr<SharedUsage>> usage;
};

TEST(SharedUsageTest, ReplicasHoldExactlyTheKeysConcurrentRequestsAndLeasesExpire) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  FakeClock clock;
  Replicas replicas(redis.port(), &clock);
  const UsageLimits two{.concurrent = 2};
  const absl::Time until = clock.Now() + absl::Seconds(30);
  absl::StatusOr<UsageDecision> a = replicas.usage[0]->Acquire("sk-a", two, 0, clock.Now(), until);
  absl::StatusOr<UsageDecision> b = replicas.usage[1]->Acquire("sk-a", two, 0, clock.Now(), until);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->refused, Refused::kNone);
  EXPECT_EQ(b->refused, Refused::kNone);
  EXPECT_EQ(b->running, 1);
  absl::StatusOr<UsageDecision> c = replicas.usage[2]->Acquire("sk-a", two, 0, clock.Now(), until);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->refused, Refused::kConcurrent);
  EXPECT_EQ(c->running, 2);
  EXPECT_TRUE(c->lease.empty());
  // Another key has leases of its own.
  EXPECT_EQ(replicas.usage[2]->Acquire("sk-b", two, 0, clock.Now(), until)->refused,
            Refused::kNone);
  // One given back (by the replica that holds it): room for one.
  ASSERT_TRUE(replicas.usage[0]->Release("sk-a", a->lease, 0, -1, clock.Now()).ok());
  absl::StatusOr<UsageDecision> d = replicas.usage[2]->Acquire("sk-a", two, 0, clock.Now(), until);
  EXPECT_EQ(d->refused, Refused::kNone);
  EXPECT_EQ(replicas.usage[0]->Acquire("sk-a", two, 0, clock.Now(), until)->refused,
            Refused::kConcurrent);
  // Their replicas died: nobody gives the leases back, and past their
  // expiry they count no more.
  clock.Advance(absl::Seconds(30));
  const absl::Time later = until + absl::Seconds(30);
  absl::StatusOr<UsageDecision> e = replicas.usage[0]->Acquire("sk-a", two, 0, clock.Now(), later);
  EXPECT_EQ(e->refused, Refused::kNone);
  EXPECT_EQ(e->running, 0);
  EXPECT_EQ(replicas.usage[1]->Acquire("sk-a", two, 0, clock.Now(), later)->refused,
            Refused::kNone);
  // A lease given back after it expired, or twice, frees nobody else's.
  ASSERT_TRUE(replicas.usage[1]->Release("sk-a", b->lease, 0, -1, clock.Now()).ok());
  ASSERT_TRUE(replicas.usage[0]->Release("sk-a", a->lease, 0, -1, clock.Now()).ok());
  absl::StatusOr<UsageDecision> f = replicas.usage[2]->Acquire("sk-a", two, 0, clock.Now(), later);
  EXPECT_EQ(f->refused, Refused::kConcurrent);
  EXPECT_EQ(f->running, 2);
}

TEST(SharedUsageTest, TokensAreReservedWhileRunningAndCountedForAMinuteAfter) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  FakeClock clock;
  Replicas replicas(redis.port(), &clock);
  const UsageLimits hundred{.tokens_per_minute = 100};
  const absl::Time until = clock.Now() + absl::Minutes(5);
  absl::StatusOr<UsageDecision> a =
      replicas.usage[0]->Acquire("sk-a", hundred, 60, clock.Now(), until);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->refused, Refused::kNone);
  // 60 reserved + 50 > 100; nothing in the window yet, so retry in a second.
  absl::StatusOr<UsageDecision> b =
      replicas.usage[1]->Acquire("sk-a", hundred, 50, clock.Now(), until);
  EXPECT_EQ(b->refused, Refused::kTokens);
  EXPECT_EQ(b->tokens_reserved, 60);
  EXPECT_EQ(b->retry_after, absl::Seconds(1));
  // It used 30 of its 60.
  clock.Advance(absl::Seconds(5));
  const absl::Time first_end = clock.Now();
  ASSERT_TRUE(replicas.usage[0]->Release("sk-a", a->lease, 60, 30, clock.Now()).ok());
  b = replicas.usage[1]->Acquire("sk-a", hundred, 50, clock.Now(), until);
  EXPECT_EQ(b->refused, Refused::kNone);
  EXPECT_EQ(b->tokens_used, 30);
  EXPECT_EQ(b->tokens_reserved, 0);
  // 30 used + 50 reserved + 30 > 100: until the 30 leave the window.
  clock.Advance(absl::Seconds(10));
  absl::StatusOr<UsageDecision> c =
      replicas.usage[2]->Acquire("sk-a", hundred, 30, clock.Now(), until);
  EXPECT_EQ(c->refused, Refused::kTokens);
  EXPECT_EQ(c->tokens_used, 30);
  EXPECT_EQ(c->tokens_reserved, 50);
  EXPECT_EQ(c->retry_after, first_end + absl::Minutes(1) - clock.Now());
  clock.Advance(c->retry_after);
  c = replicas.usage[2]->Acquire("sk-a", hundred, 30, clock.Now(), until);
  EXPECT_EQ(c->refused, Refused::kNone);
  EXPECT_EQ(c->tokens_used, 0);
  // An upstream's absurd count is clamped, not an error of the store.
  EXPECT_TRUE(replicas.usage[1]->Release("sk-a", b->lease, 50, int64_t{1} << 62, clock.Now()).ok());
  EXPECT_EQ(replicas.usage[1]->Acquire("sk-a", hundred, 1, clock.Now(), until)->tokens_used,
            kMaxCountedTokens);
}

TEST(SharedUsageTest, SumsThatDriftedHealAndForeignValuesAreErrors) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  FakeClock clock;
  Replicas replicas(redis.port(), &clock, 1);
  RedisConnection& raw = *replicas.connections[0];
  // Sums with no entries behind them (e.g. a set evicted alone) are reset
  // by the next admission instead of refusing the key forever.
  ASSERT_TRUE(raw.Command({"HSET", UsageSumsKey("sk-a"), "reserved", "999999", "used", "5"}).ok());
  absl::StatusOr<UsageDecision> d = replicas.usage[0]->Acquire(
      "sk-a", {.tokens_per_minute = 100}, 10, clock.Now(), clock.Now() + absl::Minutes(1));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->refused, Refused::kNone);
  EXPECT_EQ(d->tokens_reserved, 0);
  // Something else under the key: an error for the caller's policy, not a
  // crash and not a pass.
  ASSERT_TRUE(raw.Command({"SET", LeasesKey("sk-b"), "v"}).ok());
  EXPECT_FALSE(
      replicas.usage[0]->Acquire("sk-b", {.concurrent = 1}, 0, clock.Now(), clock.Now()).ok());
  ASSERT_TRUE(raw.Command({"HSET", UsageSumsKey("sk-c"), "used", "many"}).ok());
  ASSERT_TRUE(raw.Command({"ZADD", TokenWindowKey("sk-c"), "1", "x:1:5"}).ok());
  EXPECT_FALSE(replicas.usage[0]->Release("sk-c", "", 0, 7, clock.Now()).ok());
}

// Three orchestrator replicas' KeyLimiters on one store: a key with
// concurrent_requests: 2 runs two requests between them, the third is
// refused "across the cluster" until one ends; tokens_per_minute likewise.
struct LimiterReplica {
  std::unique_ptr<RedisConnection> connection;
  std::unique_ptr<SharedUsage> usage;
  prometheus::Registry registry;
  std::unique_ptr<orchestrator::KeyLimiter> limiter;
};

std::vector<std::unique_ptr<LimiterReplica>> Limiters(int port, const Clock* clock,
                                                      bool fail_closed = false) {
  std::vector<std::unique_ptr<LimiterReplica>> out;
  for (int r = 0; r < 3; ++r) {
    auto replica = std::make_unique<LimiterReplica>();
    replica->connection = std::make_unique<RedisConnection>(Options(port, clock));
    replica->usage = std::make_unique<SharedUsage>(replica->connection.get(), absl::StrCat("r", r));
    replica->limiter = std::make_unique<orchestrator::KeyLimiter>(
        clock, replica->registry,
        orchestrator::SharedLimits{.usage = replica->usage.get(), .fail_closed = fail_closed});
    out.push_back(std::move(replica));
  }
  return out;
}

orchestrator::MoaCall::Options Request(const Clock& clock) {
  orchestrator::MoaCall::Options o;
  o.pipeline.name = "moa";
  o.pipeline.layers = {{}};  // Only the final call: 1 + 4 tokens at most.
  o.pipeline.params.max_tokens = 4;
  o.conversation = {{.role = llm::Role::kUser, .content = "Hi"}};
  o.deadline = clock.Now() + absl::Seconds(30);
  return o;
}

TEST(SharedUsageTest, ThreeReplicasKeyLimitersShareConcurrencyAndTokens) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  FakeClock clock;
  auto replicas = Limiters(redis.port(), &clock);
  orchestrator::ApiKey key{"team-a", std::string(64, 'a'), {}};
  key.limits.concurrent_requests = 2;
  orchestrator::MoaCall::Options first = Request(clock), second = Request(clock),
                                 third = Request(clock);
  ASSERT_TRUE(replicas[0]->limiter->Admit(key, &first).ok());
  ASSERT_TRUE(replicas[1]->limiter->Admit(key, &second).ok());
  absl::Status refused = replicas[2]->limiter->Admit(key, &third);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("concurrent_requests limit: 2 of 2 requests running across the cluster"));
  first.on_spent({.tokens = 10, .dollars = 0});  // Ended on replica 0: replica 2 may run one.
  EXPECT_TRUE(replicas[2]->limiter->Admit(key, &third).ok());
  second.on_spent({.tokens = 10, .dollars = 0});
  third.on_spent({.tokens = 10, .dollars = 0});

  // tokens_per_minute: 12 a minute; each request may use 1 + 4 = 5.
  orchestrator::ApiKey tokens{"team-t", std::string(64, 't'), {}};
  tokens.limits.tokens_per_minute = 12;
  ASSERT_EQ(orchestrator::EstimateTokens(Request(clock)), 5);
  orchestrator::MoaCall::Options t1 = Request(clock), t2 = Request(clock), t3 = Request(clock);
  ASSERT_TRUE(replicas[0]->limiter->Admit(tokens, &t1).ok());
  ASSERT_TRUE(replicas[1]->limiter->Admit(tokens, &t2).ok());
  absl::Status over = replicas[2]->limiter->Admit(tokens, &t3);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over.message()), HasSubstr("10 reserved by running requests across"));
  t1.on_spent({.tokens = 2, .dollars = 0});  // Used 2 of its 5: 2 + 5 + 5 fit in 12.
  ASSERT_TRUE(replicas[2]->limiter->Admit(tokens, &t3).ok());
  orchestrator::MoaCall::Options t4 = Request(clock);
  over = replicas[0]->limiter->Admit(tokens, &t4);
  EXPECT_THAT(std::string(over.message()), HasSubstr("2 tokens in the last minute"));
  t2.on_spent({.tokens = 5, .dollars = 0});
  t3.on_spent({.tokens = 5, .dollars = 0});
  // A minute after they ended, the window is empty again.
  clock.Advance(absl::Seconds(61));
  EXPECT_TRUE(replicas[0]->limiter->Admit(tokens, &t4).ok());
  t4.on_spent({.tokens = 5, .dollars = 0});
}

// A dead store: `open` decides on each replica alone (its own count of
// running requests), `closed` refuses by name; when the store is back the
// same limiters share again without a restart.
TEST(SharedUsageTest, ADeadStoreIsDecidedByThePolicyAndSharingResumes) {
  auto redis = std::make_unique<RedisServer>();
  ASSERT_TRUE(redis->ready()) << redis->log();
  FakeClock clock;
  auto open = Limiters(redis->port(), &clock);
  auto closed = Limiters(redis->port(), &clock, /*fail_closed=*/true);
  orchestrator::ApiKey key{"team-a", std::string(64, 'b'), {}};
  key.limits.concurrent_requests = 1;
  redis->Kill();
  orchestrator::MoaCall::Options a = Request(clock), b = Request(clock), c = Request(clock),
                                 d = Request(clock);
  EXPECT_TRUE(open[0]->limiter->Admit(key, &a).ok());
  EXPECT_TRUE(open[1]->limiter->Admit(key, &b).ok()) << "each replica alone admits its one";
  absl::Status local = open[0]->limiter->Admit(key, &c);
  EXPECT_EQ(local.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(local.message()), HasSubstr("on this replica"));
  absl::Status unavailable = closed[0]->limiter->Admit(key, &d);
  EXPECT_EQ(unavailable.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(unavailable.message()), HasSubstr("store.failure: closed"));
  a.on_spent({.tokens = 1, .dollars = 0});  // Ends while the store is down: nothing to give back.
  b.on_spent({.tokens = 1, .dollars = 0});

  redis->Start();
  ASSERT_TRUE(redis->ready()) << redis->log();
  clock.Advance(absl::Seconds(3));  // Past the connections' backoff.
  orchestrator::MoaCall::Options e = Request(clock), f = Request(clock);
  EXPECT_TRUE(closed[0]->limiter->Admit(key, &e).ok());
  absl::Status shared = open[1]->limiter->Admit(key, &f);
  EXPECT_THAT(std::string(shared.message()), HasSubstr("across the cluster"));
  e.on_spent({.tokens = 1, .dollars = 0});
  EXPECT_TRUE(open[1]->limiter->Admit(key, &f).ok());
  f.on_spent({.tokens = 1, .dollars = 0});
}

}  // namespace
}  // namespace moa::store
