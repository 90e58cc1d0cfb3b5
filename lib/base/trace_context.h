// A request's identity across every hop: its request id (x-request-id) and
// its W3C trace context (traceparent, https://www.w3.org/TR/trace-context/).
// Both come from the client when well-formed and are made up otherwise; the
// trace id stays, each outgoing call gets a span id of its own.
#ifndef MOA_LIB_BASE_TRACE_CONTEXT_H_
#define MOA_LIB_BASE_TRACE_CONTEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace moa {

inline constexpr char kRequestIdHeader[] = "x-request-id";
inline constexpr char kTraceparentHeader[] = "traceparent";

struct TraceContext {
  std::string request_id;
  std::string trace_id;  // 32 lowercase hex digits, not all zero.
  std::string span_id;   // 16 lowercase hex digits, not all zero: the caller's span.
  std::string flags = "01";

  // "00-<trace_id>-<span_id>-<flags>".
  std::string Traceparent() const;
  // The same trace and request id with a new span id: what an outgoing call
  // carries.
  TraceContext Child() const;
  bool empty() const { return request_id.empty(); }
};

// A client's values when well-formed, else new ones: a request id of 1 to
// 128 characters of [A-Za-z0-9._:-] is kept (anything else is replaced, so
// log lines and headers never carry a peer's odd bytes); a traceparent of
// version 00 with non-zero ids is kept.
TraceContext AcceptTraceContext(absl::string_view request_id, absl::string_view traceparent);

}  // namespace moa

#endif  // MOA_LIB_BASE_TRACE_CONTEXT_H_
