#include "tests/support/chat_load.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/requests.h"

namespace moa::testing {

ChatLoad::ChatLoad(v1::OrchestratorService::Stub* stub, int requests, int concurrency,
                   absl::Duration deadline) {
  for (int t = 0; t < concurrency; ++t) {
    threads_.emplace_back([this, stub, requests, deadline] {
      for (int i = next_++; i < requests; i = next_++) {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
        auto reader = stub->Chat(&context, UserQuestion(absl::StrCat("load ", i)));
        v1::ChatEvent event;
        while (reader->Read(&event)) {
        }
        grpc::Status status = reader->Finish();
        if (!status.ok()) {
          absl::MutexLock lock(&mu_);
          failures_.push_back(status.error_message());
        }
        ++done_;
      }
    });
  }
}

ChatLoad::~ChatLoad() { Finish(); }

std::vector<std::string> ChatLoad::Finish() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  absl::MutexLock lock(&mu_);
  return failures_;
}

}  // namespace moa::testing
