#include "tools/upstream-sim/answer.h"

#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace moa::sim {
namespace {

uint64_t Fnv1a(uint64_t h, absl::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

constexpr absl::string_view kWords[] = {
    "the",   "answer", "depends", "on",    "context",  "and",      "careful",  "reasoning",
    "shows", "that",   "each",    "step",  "matters",  "because",  "evidence", "supports",
    "a",     "clear",  "result",  "while", "simple",   "examples", "help",     "explain",
    "why",   "it",     "works",   "in",    "practice", "so",       "we",       "conclude"};

}  // namespace

bool QuestionInShare(const std::vector<SimMessage>& messages, double share) {
  if (share >= 1) return true;
  std::string_view question;
  for (const SimMessage& m : messages) {
    if (m.role == "user") question = m.content;
  }
  uint64_t hash = 14695981039346656037ull;  // FNV-1a: stable across runs and builds.
  for (unsigned char c : question) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return static_cast<double>(hash % 10000) < share * 10000;
}

int CountReferences(const std::vector<SimMessage>& messages) {
  for (const SimMessage& m : messages) {
    if (m.role != "system") continue;
    size_t start = m.content.find("Responses from models:");
    if (start == std::string::npos) return 0;
    int count = 0;
    size_t pos = start;
    while (true) {
      size_t next = m.content.find(absl::StrCat("\n", count + 1, ". "), pos);
      if (next == std::string::npos) break;
      ++count;
      pos = next + 1;
    }
    return count;
  }
  return 0;
}

std::vector<std::string> AnswerTokens(absl::string_view model,
                                      const std::vector<SimMessage>& messages, int length) {
  uint64_t h = Fnv1a(14695981039346656037ULL, model);
  for (const SimMessage& m : messages) {
    h = Fnv1a(h, m.role);
    h = Fnv1a(h, "\x1f");
    h = Fnv1a(h, m.content);
    h = Fnv1a(h, "\x1e");
  }
  std::string intro;
  int refs = CountReferences(messages);
  if (refs > 0) {
    intro = absl::StrFormat("[%s synthesis of %d responses, %06x]", model, refs, h & 0xffffff);
  } else {
    intro = absl::StrFormat("[%s answer %06x]", model, h & 0xffffff);
  }
  std::vector<std::string> tokens;
  for (absl::string_view w : absl::StrSplit(intro, ' ')) tokens.push_back(absl::StrCat(w, " "));
  uint64_t state = h;
  while (static_cast<int>(tokens.size()) < length) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    tokens.push_back(absl::StrCat(kWords[(state >> 33) % std::size(kWords)], " "));
  }
  tokens.resize(length);
  return tokens;
}

Continuation FindContinuation(const std::vector<SimMessage>& messages) {
  Continuation c;
  if (messages.size() < 2) return c;
  const SimMessage& last = messages.back();
  if (last.role == "assistant") {
    c.kind = Continuation::Kind::kPrefill;
    c.prefix = last.content;
  } else if (last.role == "user" && absl::StartsWith(last.content, kContinueInstruction)) {
    c.kind = Continuation::Kind::kInstruction;
    c.prefix = last.content.substr(kContinueInstruction.size());
  } else {
    return c;
  }
  c.preceding.assign(messages.begin(), messages.end() - 1);
  return c;
}

const char* ContinuationName(Continuation::Kind kind) {
  switch (kind) {
    case Continuation::Kind::kPrefill:
      return "prefill";
    case Continuation::Kind::kInstruction:
      return "instruction";
    case Continuation::Kind::kNone:
      return "none";
  }
  return "none";
}

std::vector<std::string> TokensAfter(const std::vector<std::string>& tokens,
                                     absl::string_view prefix) {
  std::string text;
  for (const std::string& t : tokens) text += t;
  if (!absl::StartsWith(text, prefix)) return tokens;
  std::vector<std::string> rest;
  size_t at = 0;
  for (const std::string& t : tokens) {
    const size_t end = at + t.size();
    if (end > prefix.size()) rest.push_back(at >= prefix.size() ? t : t.substr(prefix.size() - at));
    at = end;
  }
  return rest;
}

int PromptTokens(const std::vector<SimMessage>& messages) {
  int n = 0;
  for (const SimMessage& m : messages) {
    n += 4;
    for (absl::string_view w :
         absl::StrSplit(m.content, absl::ByAnyChar(" \n\t"), absl::SkipEmpty())) {
      (void)w;
      ++n;
    }
  }
  return n;
}

}  // namespace moa::sim
