// What the shared limit store costs a request: KeyLimiter::Admit plus the
// request's end (on_spent) for a key with requests_per_minute and a day
// budget, and for a key with every limit (also concurrent_requests and
// tokens_per_minute: a lease), in memory (no store) and against a real
// redis-server on loopback (started here), one thread and four threads.
// Prints p50/p99 latency per admission and the process's CPU time per
// admission.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "lib/store/redis_connection.h"
#include "lib/store/shared_rate_limit.h"
#include "lib/store/shared_spend.h"
#include "lib/store/shared_usage.h"
#include "services/orchestrator/key_limits.h"
#include "tests/support/redis_server.h"

ABSL_FLAG(int, requests, 20000, "admissions per run");

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void Run(const char* name, moa::orchestrator::KeyLimiter& limiter, bool every_limit, int threads,
         int requests) {
  std::vector<std::vector<double>> waits(static_cast<size_t>(threads));
  const double cpu = CpuSeconds();
  const absl::Time start = absl::Now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      moa::orchestrator::ApiKey key{absl::StrFormat("key-%d", t), std::string(64, 'a' + t), {}};
      key.limits.requests_per_minute = 1 << 30;  // Never reached: the cost, not the refusal.
      key.limits.budget_dollars_per_day = 1e9;
      if (every_limit) {
        key.limits.concurrent_requests = 1 << 20;
        key.limits.tokens_per_minute = int64_t{1} << 40;
      }
      for (int i = 0; i < requests / threads; ++i) {
        moa::orchestrator::MoaCall::Options o;
        o.pipeline.name = "moa";
        o.deadline = absl::Now() + absl::Seconds(30);
        const absl::Time before = absl::Now();
        absl::Status s = limiter.Admit(key, &o);
        if (s.ok()) o.on_spent({.tokens = 100, .dollars = 0.0001});
        waits[static_cast<size_t>(t)].push_back(absl::ToDoubleMicroseconds(absl::Now() - before));
      }
    });
  }
  for (auto& w : workers) w.join();
  const double wall = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> all;
  for (auto& w : waits) all.insert(all.end(), w.begin(), w.end());
  std::sort(all.begin(), all.end());
  const double n = static_cast<double>(all.size());
  std::printf(
      "%-34s threads %d  admissions %6zu  p50 %8.1f us  p99 %8.1f us  %8.0f/s  cpu %6.1f us each\n",
      name, threads, all.size(), all[all.size() / 2], all[all.size() * 99 / 100], n / wall,
      (CpuSeconds() - cpu) / n * 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int requests = absl::GetFlag(FLAGS_requests);
  moa::testing::RedisServer redis;
  if (!redis.ready()) {
    std::fprintf(stderr, "redis-server did not start: %s\n", redis.log().c_str());
    return 1;
  }
  for (bool every_limit : {false, true}) {
    for (int threads : {1, 4}) {
      prometheus::Registry memory_registry, store_registry;
      moa::orchestrator::KeyLimiter memory(moa::Clock::Real(), memory_registry);
      Run(every_limit ? "memory, every limit" : "memory, rpm + budget", memory, every_limit,
          threads, requests);
      moa::store::RedisOptions o;
      o.port = redis.port();
      moa::store::RedisConnection connection(o);
      moa::store::SharedRateLimit window(&connection, "bench");
      moa::store::SharedSpend spend(&connection);
      moa::store::SharedUsage usage(&connection, "bench");
      moa::orchestrator::KeyLimiter shared(
          moa::Clock::Real(), store_registry,
          {.requests_per_minute = &window, .spend = &spend, .usage = &usage});
      Run(every_limit ? "redis, every limit (5 round trips)"
                      : "redis, rpm + budget (3 round trips)",
          shared, every_limit, threads, requests);
    }
  }
  return 0;
}
