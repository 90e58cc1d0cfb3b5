// One HTTP API over the engine (OpenAI chat completions, Anthropic
// Messages, ...): how its request body becomes a Chat request, and how a
// call's events and errors become that API's bytes. The HTTP server
// (openai_http_server.h) routes, authenticates, plans, admits and runs the
// call the same way for every surface; only these differ.
#ifndef MOA_SERVICES_ORCHESTRATOR_API_SURFACE_H_
#define MOA_SERVICES_ORCHESTRATOR_API_SURFACE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moa/v1/orchestrator.pb.h"

namespace moa::orchestrator {

// An error as the server decided it: HTTP status and OpenAI's fields; each
// surface writes it in its own shape.
struct HttpError {
  int status = 500;
  std::string message;
  std::string type;   // invalid_request_error, authentication_error, ...
  std::string param;  // The offending field, or empty.
  std::string code;   // model_not_found, invalid_api_key, ... or empty.
};

// 400 invalid request (param from a message like "messages[1].content ..."),
// 401, 403, 404 model_not_found, 429, 503, 504, 500 for the rest.
HttpError ErrorFromStatus(const absl::Status& status);

// A request as a surface read it.
struct ParsedRequest {
  v1::ChatRequest chat;  // pipeline = the request's model.
  bool stream = false;
  bool include_usage = false;
  std::string end_user;  // Who the client says the end user is, for the log line.
};

// Writes one call's response. Streaming: Head, then Event for each event
// (bytes to send now, maybe none), then Tail. Otherwise: Event for each
// event (bytes ignored), then Body.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual std::string Head() = 0;
  virtual std::string Event(const v1::ChatEvent& event) = 0;
  // The end of a stream: the last events after an OK status, or the error
  // as an event (the 200 is out already).
  virtual std::string Tail(const absl::Status& status) = 0;
  // The whole answer of an OK call, or an error (status and surface body)
  // when the answer cannot be written in this API (e.g. a tool call whose
  // arguments are not the object the API promises).
  virtual absl::StatusOr<std::string> Body() = 0;
};

class ApiSurface {
 public:
  virtual ~ApiSurface() = default;
  // The path it serves, e.g. "/v1/chat/completions".
  virtual absl::string_view path() const = 0;
  // Parses a body; a refusal sets `error` (status 400, the param named).
  virtual absl::StatusOr<ParsedRequest> Parse(absl::string_view body, HttpError* error) const = 0;
  // The JSON body of an error in this API's shape.
  virtual std::string ErrorJson(const HttpError& error) const = 0;
  // A writer for one call's response; `model` is the name to answer with.
  virtual std::unique_ptr<ResponseWriter> NewWriter(const ParsedRequest& request, std::string model,
                                                    int64_t created) const = 0;
};

}  // namespace moa::orchestrator

#endif  // MOA_SERVICES_ORCHESTRATOR_API_SURFACE_H_
