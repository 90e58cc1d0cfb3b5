#include "tools/moa/api_key.h"

#include <grpcpp/support/client_interceptor.h>

#include <utility>
#include <vector>

namespace moa::cli {
namespace {

// A client interceptor rather than call credentials: gRPC sends call
// credentials only over TLS, and a cluster on loopback or inside a mesh
// may run its front door in plaintext.
class KeyInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit KeyInterceptor(std::string header) : header_(std::move(header)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", header_});
    }
    methods->Proceed();
  }

 private:
  const std::string header_;
};

class KeyInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit KeyInterceptorFactory(std::string api_key) : header_("Bearer " + std::move(api_key)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new KeyInterceptor(header_);
  }

 private:
  const std::string header_;
};

}  // namespace

std::shared_ptr<grpc::Channel> ChannelWithKey(const std::string& target,
                                              std::shared_ptr<grpc::ChannelCredentials> creds,
                                              const grpc::ChannelArguments& args,
                                              const std::string& api_key) {
  if (api_key.empty()) return grpc::CreateCustomChannel(target, creds, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<KeyInterceptorFactory>(api_key));
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, creds, args,
                                                                 std::move(factories));
}

}  // namespace moa::cli
