// A client's POST /v1/responses body through the Responses door
// (fuzz/surface_request.h).
#include <cstddef>
#include <cstdint>

#include "fuzz/surface_request.h"
#include "services/orchestrator/responses_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moa::fuzz::FuzzSurfaceRequest(moa::orchestrator::responses::ResponsesSurface(),
                                absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
