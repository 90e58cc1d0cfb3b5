// The shared key directory against a real redis-server: keys seeded from the
// file, added, limited and revoked, seen by a second replica after one
// refresh; a revoked key never comes back from the seed; a store that lost
// its data is seeded again; an unreadable record refuses only its key.
#include "services/orchestrator/key_directory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/base/sha256.h"
#include "lib/store/redis_connection.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_support.h"

namespace moa::orchestrator {
namespace {

using ::moa::testing::RedisServer;
using ::testing::HasSubstr;

// One orchestrator replica's view: its connection, records and keys.
struct Replica {
  explicit Replica(int port, std::vector<ApiKey> seed = {})
      : connection([port] {
          store::RedisOptions o;
          o.port = port;
          return o;
        }()),
        records(&connection, kKeysHash, kMaxSharedKeys, kMaxKeyRecordBytes),
        directory(&records, &keys, &clock, std::move(seed)) {}
  bool Accepts(const std::string& secret) { return keys.CheckAuthorization("Bearer " + secret); }

  FakeClock clock;
  store::RedisConnection connection;
  store::SharedRecords records;
  ApiKeys keys;
  KeyDirectory directory;
};

ApiKey FileKey(const std::string& name, const std::string& secret) {
  return {name, Sha256Hex(secret), {}};
}

TEST(KeyDirectoryTest, ChangesThroughOneReplicaReachAnotherAtItsNextRefresh) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  Replica one(redis.port(), {FileKey("from-file", "sk-file")});
  Replica two(redis.port(), {FileKey("from-file", "sk-file")});
  EXPECT_TRUE(one.keys.enabled()) << "keys are required with a directory, even while empty";
  ASSERT_TRUE(one.directory.Refresh().ok());
  ASSERT_TRUE(two.directory.Refresh().ok());
  EXPECT_TRUE(one.Accepts("sk-file"));
  EXPECT_TRUE(two.Accepts("sk-file"));

  KeyLimits limits;
  limits.requests_per_minute = 5;
  absl::StatusOr<KeyDirectory::Created> created = one.directory.Create("team-b", limits);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_THAT(created->secret, ::testing::StartsWith("sk-moa-"));
  EXPECT_TRUE(one.Accepts(created->secret)) << "the replica that added it, at once";
  EXPECT_FALSE(two.Accepts(created->secret));
  ASSERT_TRUE(two.directory.Refresh().ok());
  ASSERT_TRUE(two.Accepts(created->secret));
  EXPECT_EQ(two.keys.Authenticate("Bearer " + created->secret)->limits.requests_per_minute, 5);
  EXPECT_EQ(one.directory.Create("team-b", {}).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(one.directory.Create("no spaces", {}).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Limited: a patch sets one limit and clears another.
  absl::StatusOr<KeyRecord> patched = two.directory.Update(
      "team-b", json::Json{{"requests_per_minute", nullptr}, {"concurrent_requests", 2}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_FALSE(patched->key.limits.requests_per_minute);
  ASSERT_TRUE(one.directory.Refresh().ok());
  EXPECT_EQ(one.keys.Authenticate("Bearer " + created->secret)->limits.concurrent_requests, 2);
  EXPECT_EQ(one.directory.Update("team-b", json::Json{{"colour", "red"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(one.directory.Update("nobody", json::Json::object()).status().code(),
            absl::StatusCode::kNotFound);

  // Revoked: refused after the refresh; revoking again changes nothing; a
  // revoked key takes no new limits.
  std::shared_ptr<const ApiKey> held = two.keys.Authenticate("Bearer sk-file");
  ASSERT_TRUE(one.directory.Revoke("from-file").ok());
  ASSERT_TRUE(two.directory.Refresh().ok());
  EXPECT_FALSE(two.Accepts("sk-file"));
  EXPECT_EQ(held->name, "from-file") << "a request holding the key keeps it to its end";
  EXPECT_TRUE(one.directory.Revoke("from-file").value().revoked);
  EXPECT_EQ(one.directory.Update("from-file", json::Json::object()).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // A new replica seeding from the same file does not bring it back.
  Replica three(redis.port(), {FileKey("from-file", "sk-file")});
  ASSERT_TRUE(three.directory.Refresh().ok());
  EXPECT_FALSE(three.Accepts("sk-file"));
  EXPECT_TRUE(three.Accepts(created->secret));
  absl::StatusOr<std::vector<KeyRecord>> all = three.directory.List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
}

TEST(KeyDirectoryTest, AStoreThatLostItsDataIsSeededAgain) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  Replica one(redis.port(), {FileKey("from-file", "sk-file")});
  ASSERT_TRUE(one.directory.Refresh().ok());
  absl::StatusOr<KeyDirectory::Created> created = one.directory.Create("runtime", {});
  ASSERT_TRUE(created.ok());
  ASSERT_TRUE(one.connection.Command({"FLUSHALL"}).ok());
  ASSERT_TRUE(one.directory.Refresh().ok());
  EXPECT_TRUE(one.Accepts("sk-file")) << "the file's keys are back";
  EXPECT_FALSE(one.Accepts(created->secret)) << "a key only the lost store knew is gone";
}

TEST(KeyDirectoryTest, WhileTheStoreIsDownAReplicaKeepsTheKeysItReadLast) {
  auto redis = std::make_unique<RedisServer>();
  ASSERT_TRUE(redis->ready()) << redis->log();
  Replica one(redis->port(), {FileKey("from-file", "sk-file")});
  ASSERT_TRUE(one.directory.Refresh().ok());
  redis->Kill();
  EXPECT_EQ(one.directory.Refresh().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(one.Accepts("sk-file"));
  EXPECT_EQ(one.directory.Create("x", {}).status().code(), absl::StatusCode::kUnavailable);
}

TEST(KeyDirectoryTest, AnUnreadableRecordRefusesOnlyItsKey) {
  RedisServer redis;
  ASSERT_TRUE(redis.ready()) << redis.log();
  Replica one(redis.port(), {FileKey("good", "sk-good")});
  ASSERT_TRUE(one.directory.Refresh().ok());
  for (const char* bad : {"not json", R"({"sha256": "short"})",
                          R"({"sha256": "%s", "requests_per_minute": -1})", "[1,2]"}) {
    ASSERT_TRUE(one.connection.Command({"HSET", kKeysHash, "bad", bad}).ok());
    ASSERT_TRUE(one.connection.Command({"INCR", std::string(kKeysHash) + ":version"}).ok());
    ASSERT_TRUE(one.directory.Refresh().ok()) << bad;
    EXPECT_TRUE(one.Accepts("sk-good")) << bad;
    EXPECT_EQ(one.keys.size(), 1u) << bad;
  }
  ASSERT_TRUE(one.connection.Command({"SET", std::string(kKeysHash) + ":version", "x"}).ok());
  EXPECT_EQ(one.directory.Refresh().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(one.Accepts("sk-good"));
}

TEST(KeyRecordTest, RecordsAndLimitsRoundTripAndWrongValuesAreNamed) {
  KeyRecord r;
  r.key = {"team-a", Sha256Hex("s"), {}};
  r.key.limits.requests_per_minute = 60;
  r.key.limits.budget_dollars_per_day = 2.5;
  r.key.limits.pipelines = {"moa", "fast"};
  r.key.limits.preset = "budget";
  r.created = 1700000000;
  r.revoked = 1700000100;
  absl::StatusOr<KeyRecord> back = ParseKeyRecord("team-a", KeyRecordJson(r));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->key.sha256, r.key.sha256);
  EXPECT_EQ(back->key.limits.requests_per_minute, 60);
  EXPECT_EQ(back->key.limits.budget_dollars_per_day, 2.5);
  EXPECT_EQ(back->key.limits.pipelines, r.key.limits.pipelines);
  EXPECT_EQ(back->key.limits.preset, "budget");
  EXPECT_EQ(back->revoked, 1700000100);
  EXPECT_EQ(KeyRecordView(r).dump().find(r.key.sha256), std::string::npos);

  KeyLimits l;
  auto error = [&](const json::Json& j) {
    absl::Status s = ReadKeyLimits(j, {}, &l);
    return std::string(s.message());
  };
  EXPECT_THAT(error({{"requests_per_minute", 0}}), HasSubstr("requests_per_minute"));
  EXPECT_THAT(error({{"requests_per_minute", 1.5}}), HasSubstr("requests_per_minute"));
  EXPECT_THAT(error({{"budget_dollars_per_day", -1}}), HasSubstr("budget_dollars_per_day"));
  EXPECT_THAT(error({{"pipelines", "moa"}}), HasSubstr("pipelines"));
  EXPECT_THAT(error({{"pipelines", {""}}}), HasSubstr("pipelines"));
  EXPECT_THAT(error({{"rpm", 5}}), HasSubstr("unknown field 'rpm'"));
  EXPECT_THAT(error({{"preset", 5}}), HasSubstr("preset must be a preset's name"));
  EXPECT_THAT(error({{"preset", "a\nb"}}), HasSubstr("preset must be a preset's name"));
  l.preset = "x";
  EXPECT_TRUE(ReadKeyLimits({{"preset", nullptr}}, {}, &l).ok());
  EXPECT_EQ(l.preset, "") << "null clears it";
  EXPECT_FALSE(ParseKeyRecord("bad name", KeyRecordJson(r)).ok());
  EXPECT_FALSE(ParseKeyRecord("team-a", std::string(2000, ' ')).ok());
}

}  // namespace
}  // namespace moa::orchestrator
