#include "lib/server/trace_metadata.h"

namespace moa::server {
namespace {

absl::string_view Metadata(const grpc::ServerContextBase& context, const char* key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(key);
  if (it == metadata.end()) return {};
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

TraceContext TraceFromMetadata(const grpc::ServerContextBase& context) {
  return AcceptTraceContext(Metadata(context, kRequestIdHeader),
                            Metadata(context, kTraceparentHeader));
}

void AddTraceMetadata(const TraceContext& trace, grpc::ClientContext* context) {
  if (trace.empty()) return;
  context->AddMetadata(kRequestIdHeader, trace.request_id);
  context->AddMetadata(kTraceparentHeader, trace.Child().Traceparent());
}

}  // namespace moa::server
