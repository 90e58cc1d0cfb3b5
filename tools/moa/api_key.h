// The client key the `moa` commands that call the orchestrator present:
// every call on the channel carries `authorization: Bearer KEY`, the
// metadata the orchestrator's gRPC door checks when keys are on.
#ifndef MOA_TOOLS_MOA_API_KEY_H_
#define MOA_TOOLS_MOA_API_KEY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace moa::cli {

// A channel to `target` whose calls present `api_key` (none when empty).
std::shared_ptr<grpc::Channel> ChannelWithKey(const std::string& target,
                                              std::shared_ptr<grpc::ChannelCredentials> creds,
                                              const grpc::ChannelArguments& args,
                                              const std::string& api_key);

}  // namespace moa::cli

#endif  // MOA_TOOLS_MOA_API_KEY_H_
