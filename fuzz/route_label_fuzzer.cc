// What a route reads from a peer: a classifier model's answer (any bytes)
// made into a label, and a client's message matched against the rules.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_config.h"
#include "services/orchestrator/engine/route.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const moa::config::RouteConfig& route = *moa::fuzz::Config().FindRoute("auto");
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)moa::orchestrator::LabelOf(*route.classifier, text);
  moa::orchestrator::RouteFacts facts;
  facts.last_user = text;
  facts.images = size % 2 == 1;
  (void)moa::orchestrator::FirstRuleThatHolds(route, facts);
  (void)moa::orchestrator::ClassifierConversation(*route.classifier, text);
  return 0;
}
