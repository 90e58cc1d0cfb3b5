#include "lib/llm/openai_json.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "lib/base/json.h"
#include "lib/base/redact.h"
#include "lib/llm/http_status.h"
#include "lib/llm/tool_text.h"

namespace moa::llm {

using moa::json::Json;
using json = moa::json::Json;

namespace {

json ToolMessagesJson(const std::vector<Message>& conversation) {
  json messages = json::array();
  for (const Message& m : conversation) {
    json message = {{"role", RoleName(m.role)}, {"content", m.content}};
    if (!m.images.empty()) {
      // Text, then the images, as content parts.
      json parts = json::array();
      if (!m.content.empty()) parts.push_back({{"type", "text"}, {"text", m.content}});
      for (const Image& image : m.images) {
        json url = {{"url", image.url}};
        if (!image.detail.empty()) url["detail"] = image.detail;
        parts.push_back({{"type", "image_url"}, {"image_url", std::move(url)}});
      }
      message["content"] = std::move(parts);
    }
    if (!m.tool_calls.empty()) {
      if (m.content.empty()) message["content"] = nullptr;
      json calls = json::array();
      for (const ToolCall& c : m.tool_calls) {
        calls.push_back({{"id", c.id},
                         {"type", "function"},
                         {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
      }
      message["tool_calls"] = std::move(calls);
    }
    if (m.role == Role::kTool) message["tool_call_id"] = m.tool_call_id;
    messages.push_back(std::move(message));
  }
  return messages;
}

void AddTools(const ToolOptions& options, json* body) {
  json tools = json::array();
  for (const Tool& t : options.tools) {
    json function = {{"name", t.name}};
    if (!t.description.empty()) function["description"] = t.description;
    if (!t.parameters_json.empty()) {
      // Checked to be a JSON object where it entered (wire::ToTools); an
      // unparsable one cannot reach here, and would be sent as no schema.
      absl::StatusOr<json> schema = moa::json::Parse(t.parameters_json, 64);
      if (schema.ok()) function["parameters"] = *std::move(schema);
    }
    if (t.strict) function["strict"] = true;
    tools.push_back({{"type", "function"}, {"function", std::move(function)}});
  }
  (*body)["tools"] = std::move(tools);
  if (!options.choice_function.empty()) {
    (*body)["tool_choice"] = {{"type", "function"},
                              {"function", {{"name", options.choice_function}}}};
  } else if (!options.choice.empty()) {
    (*body)["tool_choice"] = options.choice;
  }
  if (options.parallel_tool_calls) (*body)["parallel_tool_calls"] = *options.parallel_tool_calls;
}

}  // namespace

std::string BuildChatCompletionBody(absl::string_view upstream_model, const ChatRequest& request,
                                    const ReasoningSettings& reasoning) {
  // A call without tools gets the conversation's tool turns as text: an
  // upstream refuses tool messages when it was given no tools.
  const bool tools = !request.tools.empty();
  json messages =
      tools ? ToolMessagesJson(request.messages)
            : ToolMessagesJson(HasToolTurns(request.messages) ? ToolTurnsAsText(request.messages)
                                                              : request.messages);
  json body = {{"model", upstream_model},
               {"messages", std::move(messages)},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  if (tools) AddTools(request.tools, &body);
  const SamplingParams& p = request.params;
  if (p.temperature) body["temperature"] = *p.temperature;
  // Reasoning models take max_completion_tokens (their budget covers the
  // thinking too) and refuse max_tokens.
  if (p.max_tokens)
    body[reasoning.empty() ? "max_tokens" : "max_completion_tokens"] = *p.max_tokens;
  if (!reasoning.effort.empty()) body["reasoning_effort"] = reasoning.effort;
  if (p.top_p) body["top_p"] = *p.top_p;
  if (p.seed) body["seed"] = *p.seed;
  if (!p.stop.empty()) body["stop"] = p.stop;
  if (request.continue_final_message) {
    body["continue_final_message"] = true;
    body["add_generation_prompt"] = false;
  }
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

absl::Status ErrorObjectToStatus(const json& error) {
  std::string message = "upstream reported an error";
  if (error.is_object()) {
    if (auto it = error.find("message"); it != error.end() && it->is_string()) {
      message = SanitizePeerText(it->get_ref<const std::string&>());
    }
    // Some servers put the HTTP status they would have sent in "code".
    if (auto code = moa::json::OptionalInt(error, "code", "code", 400, 599); code.ok() && *code) {
      return StatusFromHttp(static_cast<int>(**code), message);
    }
  } else if (error.is_string()) {
    message = SanitizePeerText(error.get_ref<const std::string&>());
  }
  return absl::UnavailableError(absl::StrCat("upstream error mid-stream: ", message));
}

// Reads one JSON text strictly (RFC 8259, UTF-8 checked) and keeps only
// choices[0].delta.content and choices[0].finish_reason. Every method returns
// false on anything it does not accept; the caller then falls back to the
// tree parser, which decides (so rejecting too much is only slower, never
// wrong, and accepting must never differ from the tree parser: fuzzed).
class CommonChunkScanner {
 public:
  explicit CommonChunkScanner(absl::string_view text)
      : at_(text.data()), end_(text.data() + text.size()) {}

  std::optional<StreamChunk> Scan() {
    StreamChunk chunk;
    SkipSpace();
    bool seen_choices = false;
    bool ok = Object([&](absl::string_view key) {
      if (key == "usage" || key == "error") return false;  // Rare: the tree parser.
      if (key != "choices") return SkipValue(0);
      if (seen_choices) return false;  // Duplicate: the tree parser keeps the last.
      seen_choices = true;
      return Choices(&chunk);
    });
    if (!ok) return std::nullopt;
    SkipSpace();
    if (at_ != end_) return std::nullopt;
    return chunk;
  }

 private:
  static constexpr int kMaxDepth = kMaxEventDepth;

  void SkipSpace() {
    while (at_ != end_ && (*at_ == ' ' || *at_ == '\n' || *at_ == '\r' || *at_ == '\t')) ++at_;
  }
  bool Take(char c) {
    SkipSpace();
    if (at_ == end_ || *at_ != c) return false;
    ++at_;
    return true;
  }
  bool Peek(char c) {
    SkipSpace();
    return at_ != end_ && *at_ == c;
  }

  // `{` members `}`; on_member(key) reads the member's value.
  template <typename OnMember>
  bool Object(OnMember on_member) {
    if (!Take('{')) return false;
    if (Take('}')) return true;
    while (true) {
      absl::string_view key;
      if (!Key(&key) || !Take(':')) return false;
      SkipSpace();
      if (!on_member(key)) return false;
      if (Take(',')) continue;
      return Take('}');
    }
  }

  // A key without escapes, as a view into the text.
  bool Key(absl::string_view* key) {
    if (!Take('"')) return false;
    const char* start = at_;
    while (at_ != end_ && *at_ != '"') {
      auto c = static_cast<unsigned char>(*at_);
      if (c == '\\' || c < 0x20 || c >= 0x80) return false;
      ++at_;
    }
    if (at_ == end_) return false;
    *key = absl::string_view(start, at_ - start);
    ++at_;
    return true;
  }

  bool Choices(StreamChunk* chunk) {
    if (!Take('[')) return false;
    if (Take(']')) return true;
    if (!Peek('{')) return false;  // The tree parser names a non-object choice.
    bool seen_delta = false, seen_finish = false;
    bool ok = Object([&](absl::string_view key) {
      if (key == "delta") {
        if (seen_delta) return false;
        seen_delta = true;
        if (!Peek('{')) return false;
        bool seen_content = false;
        return Object([&](absl::string_view delta_key) {
          // Tool call fragments are rare: the tree parser reads them. An
          // empty list or null (some servers send one in every delta) says
          // nothing.
          if (delta_key == "tool_calls") {
            SkipSpace();
            if (Literal("null")) return true;
            return Take('[') && Take(']');
          }
          // Thinking text (vLLM's reasoning parsers, DeepSeek, OpenRouter):
          // rare enough for the tree parser, which reads it as reasoning.
          if (delta_key == "reasoning_content" || delta_key == "reasoning") {
            SkipSpace();
            return Literal("null");
          }
          if (delta_key != "content") return SkipValue(2);
          if (seen_content) return false;
          seen_content = true;
          return StringOrNull(&chunk->delta);
        });
      }
      if (key == "finish_reason") {
        if (seen_finish) return false;
        seen_finish = true;
        std::string reason;
        bool is_string = Peek('"');
        if (!StringOrNull(&reason)) return false;
        if (is_string) chunk->finish_reason = std::move(reason);
        return true;
      }
      return SkipValue(1);
    });
    if (!ok) return false;
    while (Take(',')) {
      if (!SkipValue(1)) return false;
    }
    return Take(']');
  }

  bool StringOrNull(std::string* out) {
    SkipSpace();
    if (Peek('"')) return String(out);
    return Literal("null");
  }

  bool SkipValue(int depth) {
    if (depth > kMaxDepth) return false;
    SkipSpace();
    if (at_ == end_) return false;
    switch (*at_) {
      case '"':
        return String(nullptr);
      case '{':
        return Object([&](absl::string_view) { return SkipValue(depth + 1); });
      case '[': {
        ++at_;
        if (Take(']')) return true;
        do {
          if (!SkipValue(depth + 1)) return false;
        } while (Take(','));
        return Take(']');
      }
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  bool Literal(absl::string_view word) {
    if (static_cast<size_t>(end_ - at_) < word.size() ||
        absl::string_view(at_, word.size()) != word) {
      return false;
    }
    at_ += word.size();
    return true;
  }

  // Integers and plain decimals of at most 15 characters: nothing a double
  // cannot hold. Exponents and longer numbers go to the tree parser.
  bool Number() {
    const char* start = at_;
    auto digit = [&] { return at_ != end_ && *at_ >= '0' && *at_ <= '9'; };
    if (at_ != end_ && *at_ == '-') ++at_;
    if (!digit()) return false;
    if (*at_ == '0') {
      ++at_;
    } else {
      while (digit()) ++at_;
    }
    if (at_ != end_ && *at_ == '.') {
      ++at_;
      if (!digit()) return false;
      while (digit()) ++at_;
    }
    if (at_ != end_ && (*at_ == 'e' || *at_ == 'E')) return false;
    return at_ - start <= 15;
  }

  // A string with its escapes decoded into *out (when out is not null).
  bool String(std::string* out) {
    if (at_ == end_ || *at_ != '"') return false;
    ++at_;
    while (true) {
      const char* run = at_;
      while (at_ != end_) {
        auto c = static_cast<unsigned char>(*at_);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++at_;
      }
      if (out != nullptr) out->append(run, at_ - run);
      if (at_ == end_) return false;
      auto c = static_cast<unsigned char>(*at_);
      if (c == '"') {
        ++at_;
        return true;
      }
      if (c < 0x20) return false;
      if (c >= 0x80) {
        if (!Utf8Sequence(out)) return false;
        continue;
      }
      if (!Escape(out)) return false;
    }
  }

  // One UTF-8 sequence, checked as RFC 3629 defines it (no overlong forms,
  // no surrogates, nothing past U+10FFFF).
  bool Utf8Sequence(std::string* out) {
    auto byte = [&](ptrdiff_t i) { return static_cast<unsigned char>(at_[i]); };
    unsigned char b0 = byte(0);
    int length;
    unsigned char low = 0x80, high = 0xBF;  // Range of the second byte.
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      length = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      length = 3;
      if (b0 == 0xE0) low = 0xA0;
      if (b0 == 0xED) high = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      length = 4;
      if (b0 == 0xF0) low = 0x90;
      if (b0 == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (end_ - at_ < length) return false;
    if (byte(1) < low || byte(1) > high) return false;
    for (int i = 2; i < length; ++i) {
      if (byte(i) < 0x80 || byte(i) > 0xBF) return false;
    }
    if (out != nullptr) out->append(at_, length);
    at_ += length;
    return true;
  }

  bool Hex4(uint32_t* value) {
    if (end_ - at_ < 4) return false;
    *value = 0;
    for (int i = 0; i < 4; ++i) {
      char c = at_[i];
      uint32_t v;
      if (c >= '0' && c <= '9') {
        v = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v = c - 'A' + 10;
      } else {
        return false;
      }
      *value = *value * 16 + v;
    }
    at_ += 4;
    return true;
  }

  bool Escape(std::string* out) {
    ++at_;  // The backslash.
    if (at_ == end_) return false;
    char c = *at_++;
    char plain;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        plain = c;
        break;
      case 'b':
        plain = '\b';
        break;
      case 'f':
        plain = '\f';
        break;
      case 'n':
        plain = '\n';
        break;
      case 'r':
        plain = '\r';
        break;
      case 't':
        plain = '\t';
        break;
      case 'u': {
        uint32_t code;
        if (!Hex4(&code)) return false;
        if (code >= 0xDC00 && code <= 0xDFFF) return false;  // A lone low surrogate.
        if (code >= 0xD800 && code <= 0xDBFF) {
          uint32_t low;
          if (!Literal("\\u") || !Hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
          code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        if (out != nullptr) AppendUtf8(code, out);
        return true;
      }
      default:
        return false;
    }
    if (out != nullptr) out->push_back(plain);
    return true;
  }

  static void AppendUtf8(uint32_t code, std::string* out) {
    if (code < 0x80) {
      out->push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (code >> 6)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (code >> 12)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (code >> 18)));
      out->push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  const char* at_;
  const char* end_;
};

}  // namespace

std::optional<StreamChunk> ScanCommonStreamChunk(absl::string_view data) {
  return CommonChunkScanner(data).Scan();
}

namespace {

// A finish reason reaches the client as it is, so it must look like one:
// OpenAI's values and other short lower-case tokens (vLLM's "abort") pass;
// anything else (a 3 MiB string, markup) is the upstream's protocol error.
absl::Status CheckFinishReason(const std::optional<std::string>& reason) {
  if (!reason) return absl::OkStatus();
  const bool token = !reason->empty() && reason->size() <= 32 &&
                     std::all_of(reason->begin(), reason->end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                     });
  if (token) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(
      "upstream sent a malformed stream event: finish_reason is not a short lower-case token (",
      reason->size(), " bytes)"));
}

}  // namespace

absl::Status ReadToolCallFragments(const json& calls, std::vector<ToolCallFragment>* out) {
  auto malformed = [](absl::string_view what) {
    return absl::InternalError(
        absl::StrCat("upstream sent a malformed stream event: delta.tool_calls", what));
  };
  if (!calls.is_array()) return malformed(" is not a list");
  if (calls.size() > static_cast<size_t>(kMaxToolCallIndex)) return malformed(" is too long");
  for (size_t i = 0; i < calls.size(); ++i) {
    const json& call = calls[i];
    if (!call.is_object()) return malformed(absl::StrCat("[", i, "] is not an object"));
    ToolCallFragment fragment;
    // A server that leaves the index out sends each call whole, in order.
    auto index = moa::json::OptionalInt(call, "index", "index", 0, kMaxToolCallIndex - 1);
    if (!index.ok()) return malformed(absl::StrCat("[", i, "].", index.status().message()));
    fragment.index = static_cast<int>(index->value_or(static_cast<int64_t>(i)));
    auto id = moa::json::OptionalString(call, "id", "id");
    if (!id.ok()) return malformed(absl::StrCat("[", i, "].", id.status().message()));
    if (*id) fragment.id = **id;
    if (const json* function = moa::json::Member(call, "function")) {
      if (!function->is_object()) {
        return malformed(absl::StrCat("[", i, "].function is not an object"));
      }
      auto name = moa::json::OptionalString(*function, "name", "function.name");
      auto arguments = moa::json::OptionalString(*function, "arguments", "function.arguments");
      for (const auto* field : {&name, &arguments}) {
        if (!field->ok()) {
          return malformed(absl::StrCat("[", i, "].", field->status().message()));
        }
      }
      if (*name) fragment.name = **name;
      if (*arguments) fragment.arguments = **arguments;
    }
    out->push_back(std::move(fragment));
  }
  return absl::OkStatus();
}

absl::StatusOr<StreamChunk> ParseStreamChunk(absl::string_view data) {
  absl::StatusOr<StreamChunk> chunk = [&]() -> absl::StatusOr<StreamChunk> {
    if (auto scanned = ScanCommonStreamChunk(data)) return *std::move(scanned);
    return ParseStreamChunkTree(data);
  }();
  if (chunk.ok()) {
    if (absl::Status s = CheckFinishReason(chunk->finish_reason); !s.ok()) return s;
  }
  return chunk;
}

absl::StatusOr<StreamChunk> ParseStreamChunkTree(absl::string_view data) {
  // Depth is refused before a tree is built: one line of 4 MiB of '[' would
  // otherwise be millions of nested arrays (hundreds of MB).
  absl::StatusOr<json> parsed = moa::json::Parse(data, kMaxEventDepth);
  if (!parsed.ok()) {
    return absl::InternalError(
        absl::StrCat("upstream sent a malformed stream event (", parsed.status().message(), ")"));
  }
  const json& j = *parsed;
  if (!j.is_object()) {
    return absl::InternalError("upstream sent a malformed stream event (not a JSON object)");
  }
  StreamChunk chunk;
  if (auto it = j.find("error"); it != j.end() && !it->is_null()) {
    chunk.error = ErrorObjectToStatus(*it);
    return chunk;
  }
  if (auto it = j.find("choices"); it != j.end() && it->is_array() && !it->empty()) {
    const json& choice = (*it)[0];
    if (!choice.is_object()) {
      return absl::InternalError(
          "upstream sent a malformed stream event (choice is not an object)");
    }
    if (auto d = choice.find("delta"); d != choice.end() && d->is_object()) {
      if (auto c = d->find("content"); c != d->end() && c->is_string()) {
        chunk.delta = c->get<std::string>();
      }
      if (const json* calls = moa::json::Member(*d, "tool_calls")) {
        if (absl::Status s = ReadToolCallFragments(*calls, &chunk.tool_calls); !s.ok()) return s;
      }
      // Servers that stream a reasoning model's thinking apart from its
      // answer (vLLM's reasoning parsers and DeepSeek: reasoning_content;
      // OpenRouter and newer vLLM: reasoning): progress, never answer text.
      for (const char* key : {"reasoning_content", "reasoning"}) {
        if (auto r = d->find(key); r != d->end() && r->is_string()) {
          chunk.reasoning += r->get<std::string>();
        }
      }
    }
    if (auto f = choice.find("finish_reason"); f != choice.end() && f->is_string()) {
      chunk.finish_reason = f->get<std::string>();
    }
  }
  if (const json* u = moa::json::Member(j, "usage"); u != nullptr) {
    // Usage is optional, but one that is there must be well-formed: a wrong
    // type is the upstream's protocol error, named, never an exception.
    if (!u->is_object()) {
      return absl::InternalError("upstream sent a malformed stream event: usage is not an object");
    }
    constexpr int64_t kMaxTokens = int64_t{1} << 40;
    auto prompt = moa::json::OptionalInt(*u, "prompt_tokens", "usage.prompt_tokens", 0, kMaxTokens);
    auto completion =
        moa::json::OptionalInt(*u, "completion_tokens", "usage.completion_tokens", 0, kMaxTokens);
    // Reasoning models say how many of the completion tokens were thinking.
    absl::StatusOr<std::optional<int64_t>> reasoning = std::nullopt;
    if (const json* details = moa::json::Member(*u, "completion_tokens_details")) {
      reasoning =
          moa::json::OptionalInt(*details, "reasoning_tokens",
                                 "usage.completion_tokens_details.reasoning_tokens", 0, kMaxTokens);
    }
    for (const auto* field : {&prompt, &completion, &reasoning}) {
      if (!field->ok()) {
        return absl::InternalError(
            absl::StrCat("upstream sent a malformed stream event: ", field->status().message()));
      }
    }
    Usage usage;
    usage.prompt_tokens = prompt->value_or(0);
    usage.completion_tokens = completion->value_or(0);
    usage.reasoning_tokens = reasoning->value_or(0);
    chunk.usage = usage;
  }
  return chunk;
}

std::string ErrorMessageFromBody(absl::string_view body) {
  absl::StatusOr<json> parsed = moa::json::Parse(body, kMaxEventDepth);
  if (parsed.ok() && parsed->is_object()) {
    const json& j = *parsed;
    if (auto it = j.find("error"); it != j.end()) {
      if (it->is_object()) {
        if (auto m = it->find("message"); m != it->end() && m->is_string()) {
          return SanitizePeerText(m->get_ref<const std::string&>());
        }
      } else if (it->is_string()) {
        return SanitizePeerText(it->get_ref<const std::string&>());
      }
    }
    if (auto m = j.find("message"); m != j.end() && m->is_string()) {
      return SanitizePeerText(m->get_ref<const std::string&>());
    }
  }
  std::string text = SanitizePeerText(body, "", 200);
  return text.empty() ? "no error message" : text;
}

}  // namespace moa::llm
