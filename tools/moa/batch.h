// `moa batch`: the generation step of AlpacaEval, MT-Bench and FLASK, writing the
// files their judges read. Resumable: items already in the output are
// skipped, so an interrupted run continues where it stopped.
#ifndef MOA_TOOLS_MOA_BATCH_H_
#define MOA_TOOLS_MOA_BATCH_H_

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "moa/v1/orchestrator.grpc.pb.h"

namespace moa::cli {

struct BatchOptions {
  std::string format;  // "alpaca_eval", "mt_bench" or "flask".
  std::string input;
  std::string output;
  int concurrency = 4;
  std::string generator;  // Name written as generator / model_id.
  absl::Duration timeout = absl::Minutes(10);
  // Pipeline choice and params for every request; for mt_bench the
  // temperature is set per category unless `temperature_override`.
  v1::ChatRequest base;
  std::optional<double> temperature_override;
};

// MT-Bench's sampling temperature by question category (FastChat's table):
// writing and roleplay 0.7; extraction, math, coding, reasoning 0.0; stem
// and humanities 0.1; anything else 0.7.
double MtBenchTemperature(const std::string& category);

// Runs the batch; returns the process exit code (0 all written, 1 some items
// failed and were left for a rerun, 2 bad input or output file).
int RunBatch(v1::OrchestratorService::Stub& stub, const BatchOptions& options);

}  // namespace moa::cli

#endif  // MOA_TOOLS_MOA_BATCH_H_
