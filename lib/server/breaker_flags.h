// The circuit breaker flags every service that has breakers takes
// (--breaker_min_calls, --breaker_failure_ratio, --breaker_window,
// --breaker_cooldown), defined once.
#ifndef MOA_LIB_SERVER_BREAKER_FLAGS_H_
#define MOA_LIB_SERVER_BREAKER_FLAGS_H_

#include "lib/base/circuit_breaker.h"

namespace moa::server {

// The breakers' options from the flags.
BreakerOptions BreakerOptionsFromFlags();
// False when --breaker_min_calls=0 turned the breakers off.
bool BreakersEnabled();

}  // namespace moa::server

#endif  // MOA_LIB_SERVER_BREAKER_FLAGS_H_
