// A client's POST /v1/moa/chat body (a moa.v1.ChatRequest in Protobuf's
// JSON form) through the event-stream door (fuzz/surface_request.h).
#include <cstddef>
#include <cstdint>

#include "fuzz/surface_request.h"
#include "services/orchestrator/events_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moa::fuzz::FuzzSurfaceRequest(moa::orchestrator::events::EventsSurface(),
                                absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
