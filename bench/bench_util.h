// Small helpers shared by the benchmarks.
#ifndef MOA_BENCH_BENCH_UTIL_H_
#define MOA_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace moa::bench {

// Waits for "<prefix> <number>" in a process's log; exits the benchmark if
// it never comes.
int WaitForLoggedPort(moa::testing::Process& p, const std::string& prefix);

// VmRSS of a process in KiB.
long ResidentKb(pid_t pid);

// q in [0, 1]; sorts a copy.
double Percentile(std::vector<double> values, double q);

template <typename T>
size_t CountFailed(const std::vector<T>& results) {
  size_t n = 0;
  for (const auto& r : results) n += !r.ok;
  return n;
}

// Prints the CPU model and core count, so numbers can be compared.
void PrintMachine();

}  // namespace moa::bench

#endif  // MOA_BENCH_BENCH_UTIL_H_
