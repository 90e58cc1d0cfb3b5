#include "absl/strings/str_cat.h"
#include "lib/base/retry_after.h"
#include "lib/server/grpc_server.h"
#include "lib/server/server_stream_reactor.h"

namespace moa::server {

grpc::Status StreamFinalStatus(grpc::CallbackServerContext* context, const absl::Status& status,
                               bool broken) {
  if (broken && status.ok()) return ToGrpcStatus(absl::CancelledError("the client went away"));
  if (IsFromUpstream(status)) context->AddTrailingMetadata("moa-from-upstream", "1");
  if (auto retry_after = GetRetryAfter(status)) {
    context->AddTrailingMetadata(
        "retry-after",
        absl::StrCat(absl::ToInt64Seconds(absl::Ceil(*retry_after, absl::Seconds(1)))));
  }
  return ToGrpcStatus(status);
}

namespace {

class RefusedStreamReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit RefusedStreamReactor(const absl::Status& status) {
    Finish(
        grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message())));
  }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* RefusedStream(const absl::Status& status) {
  return new RefusedStreamReactor(status);
}

}  // namespace moa::server
