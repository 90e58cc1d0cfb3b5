// Per-model behaviour of the upstream simulator: latency and injected faults.
#ifndef MOA_TOOLS_UPSTREAM_SIM_PROFILES_H_
#define MOA_TOOLS_UPSTREAM_SIM_PROFILES_H_

#include <map>
#include <optional>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace moa::sim {

// Probability of each fault per request; they are exclusive, drawn in this
// order, and their sum must be <= 1.
struct FaultRates {
  double http_500 = 0;   // 500 with an OpenAI-style error body.
  double http_429 = 0;   // 429 with Retry-After: retry_after_seconds.
  double hang = 0;       // Accepts the request and never answers.
  double reset = 0;      // Streams half the answer, then resets the connection.
  double malformed = 0;  // Streams half the answer, then an event that is not JSON.
  double retry_after_seconds = 1;
  // No fault is drawn for a request that continues a cut answer, so a test
  // can cut an answer once and see it resumed.
  bool spare_continuations = false;
};

struct Profile {
  // Time to first token: fixed when sigma == 0, else lognormal with this median.
  double ttft_median_seconds = 0.2;
  double ttft_sigma = 0;
  double tokens_per_second = 50;
  int answer_tokens = 40;
  // Set: the model always answers this text (its words are the tokens;
  // answer_tokens is ignored), for tests of steps that read answers (a
  // ranking, a vote). Empty: generated words.
  std::string answer_text;
  // Below 1: answer_text answers only this share of the questions (chosen
  // by a hash of the last user message, so every model with the same share
  // picks the same questions); the rest get generated words, which differ
  // between models. For benchmarks of panels that agree on some questions.
  double answer_text_share = 1;
  // When a request gives tools (and tool_choice is not "none") and its last
  // message is not a tool result, the answer is a call of the first tool
  // (or the one tool_choice names) with `tool_arguments`; after a result,
  // the answer is text as usual.
  bool tool_calls = false;
  std::string tool_arguments = "{}";  // A JSON object's text.
  // Set: a request that asks for JSON (response_format, or the cluster's
  // structured-output words) is answered with a value that conforms to its
  // schema with this probability, and with prose otherwise.
  std::optional<double> structured_answers;
  // A request that asks the model to think (OpenAI reasoning_effort,
  // Anthropic thinking, a Gemini thinking budget other than 0) is answered
  // after this many tokens of thinking, reported as each API does (and as
  // text where the API sends it: Anthropic's thinking block, Gemini's
  // thought parts when includeThoughts).
  int reasoning_tokens = 0;
  FaultRates faults;

  absl::Duration SampleTimeToFirstToken(std::mt19937_64& rng) const;
};

struct Profiles {
  Profile default_profile;
  std::map<std::string, Profile, std::less<>> models;

  const Profile& For(absl::string_view model) const;
};

// Parses the profiles YAML (see docs/simulator.md); unknown keys
// and rates outside [0, 1] are INVALID_ARGUMENT naming the place.
absl::StatusOr<Profiles> ParseProfiles(absl::string_view yaml, absl::string_view source);
absl::StatusOr<Profiles> LoadProfiles(const std::string& path);

}  // namespace moa::sim

#endif  // MOA_TOOLS_UPSTREAM_SIM_PROFILES_H_
