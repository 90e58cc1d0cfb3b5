// Request ids and trace context in gRPC metadata (x-request-id,
// traceparent), for servers that receive them and clients that pass them on.
#ifndef MOA_LIB_SERVER_TRACE_METADATA_H_
#define MOA_LIB_SERVER_TRACE_METADATA_H_

#include <grpcpp/grpcpp.h>

#include "lib/base/trace_context.h"

namespace moa::server {

// The caller's ids when well-formed, else new ones (AcceptTraceContext).
TraceContext TraceFromMetadata(const grpc::ServerContextBase& context);

// What a call out carries: the request id and a child span of `trace`.
// Nothing when `trace` is empty.
void AddTraceMetadata(const TraceContext& trace, grpc::ClientContext* context);

}  // namespace moa::server

#endif  // MOA_LIB_SERVER_TRACE_METADATA_H_
