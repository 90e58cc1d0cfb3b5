// Requests of every service as raw protobuf bytes: parsed, then validated as
// the orchestrator, the proposer and the aggregator do before any work.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_config.h"
#include "lib/wire/wire.h"
#include "moa/v1/aggregator.pb.h"
#include "moa/v1/orchestrator.pb.h"
#include "moa/v1/proposer.pb.h"
#include "services/aggregator/aggregator_service.h"
#include "services/orchestrator/engine/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t kind = data[0] % 3;
  const void* bytes = data + 1;
  const int length = static_cast<int>(size - 1);
  if (kind == 0) {
    moa::v1::ChatRequest request;
    if (request.ParseFromArray(bytes, length)) {
      (void)moa::orchestrator::PlanChat(request, moa::fuzz::Config());
    }
  } else if (kind == 1) {
    moa::v1::GenerateRequest request;
    if (request.ParseFromArray(bytes, length)) {
      (void)moa::wire::ToMessages(request.messages());
      (void)moa::wire::ToParams(request.params());
    }
  } else {
    moa::v1::AggregateRequest request;
    if (request.ParseFromArray(bytes, length)) {
      moa::aggregator::AggregatorOptions options;
      options.models = {"a", "b"};
      options.limits = moa::fuzz::Config().limits;
      (void)moa::aggregator::PlanAggregate(request, options);
    }
  }
  return 0;
}
