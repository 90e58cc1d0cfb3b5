// The engine's own event stream over HTTP, for browsers and any client
// that wants every ChatEvent without gRPC: POST /v1/moa/chat with a
// moa.v1.ChatRequest in Protobuf's JSON form answers text/event-stream,
// one SSE event per ChatEvent (the event's name is its oneof case, its data
// the ChatEvent's JSON form plus "at_ms", milliseconds since this server
// read the request), then `done` or `error`. The playground (/ui/) is
// built on it, so the page shows nothing this API does not give a client.
#ifndef MOA_SERVICES_ORCHESTRATOR_EVENTS_API_H_
#define MOA_SERVICES_ORCHESTRATOR_EVENTS_API_H_

#include <string>

#include "services/orchestrator/api_surface.h"

namespace moa::orchestrator::events {

inline constexpr char kPath[] = "/v1/moa/chat";

const ApiSurface& EventsSurface();

// One ChatEvent as the stream sends it (an SSE event), at `at` after the
// request was read.
std::string SseEvent(const v1::ChatEvent& event, absl::Duration at);

}  // namespace moa::orchestrator::events

#endif  // MOA_SERVICES_ORCHESTRATOR_EVENTS_API_H_
