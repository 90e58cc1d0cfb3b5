// BreakingClient: an LlmClient with a CircuitBreaker in front, so a proposer
// whose upstream keeps failing (or asked to wait, 429 Retry-After) answers
// UNAVAILABLE at once for every request instead of sending more.
#ifndef MOA_LIB_LLM_BREAKING_CLIENT_H_
#define MOA_LIB_LLM_BREAKING_CLIENT_H_

#include <memory>

#include "lib/base/circuit_breaker.h"
#include "lib/llm/llm_client.h"

namespace moa::llm {

class BreakingClient final : public LlmClient {
 public:
  // Both must outlive this.
  BreakingClient(LlmClient* inner, CircuitBreaker* breaker) : inner_(inner), breaker_(breaker) {}

  std::shared_ptr<CallHandle> Start(ChatRequest request,
                                    std::shared_ptr<StreamObserver> observer) override;

 private:
  LlmClient* const inner_;
  CircuitBreaker* const breaker_;
};

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_BREAKING_CLIENT_H_
