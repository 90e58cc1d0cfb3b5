// Small request builders shared by tests.
#ifndef MOA_TESTS_SUPPORT_REQUESTS_H_
#define MOA_TESTS_SUPPORT_REQUESTS_H_

#include <string>

#include "moa/v1/orchestrator.pb.h"

namespace moa::testing {

// A Chat request of one user message, on the default pipeline.
inline v1::ChatRequest UserQuestion(const std::string& text = "hi") {
  v1::ChatRequest r;
  auto* m = r.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content(text);
  return r;
}

}  // namespace moa::testing

#endif  // MOA_TESTS_SUPPORT_REQUESTS_H_
