#include "services/orchestrator/engine/steps.h"

#include <algorithm>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moa::orchestrator {

const std::string& DefaultRankInstruction() {
  static const std::string kText =
      "Rank the responses above by how well they answer the query: correctness first, then "
      "completeness and clarity. Reply with the numbers of the responses from best to worst, "
      "separated by commas (for example: 2, 1, 3), and nothing else.";
  return kText;
}

const std::string& DefaultJudgeInstruction() {
  static const std::string kText =
      "Do not answer the query yourself. Analyse the responses above for someone who will write "
      "the final answer: list the points where they agree, the points where they contradict each "
      "other (and which side is right, when you can tell), the points only one of them makes that "
      "are worth keeping, and any errors. Be brief and concrete.";
  return kText;
}

const std::string& DefaultRefineInstruction() {
  static const std::string kText =
      "Improve your answer above: correct any errors, fill in what is missing, cut what does not "
      "help, and keep what is right. Reply with the improved answer only, without mentioning "
      "that it was revised.";
  return kText;
}

std::vector<llm::Message> CompareMessages(const std::vector<llm::Message>& conversation,
                                          const std::vector<synthesis::Reference>& texts,
                                          const std::string& instruction) {
  std::string query;
  for (auto it = conversation.rbegin(); it != conversation.rend(); ++it) {
    if (it->role == llm::Role::kUser) {
      query = it->content;
      break;
    }
  }
  std::string prompt = absl::StrCat("Query:\n", query, "\n");
  for (size_t i = 0; i < texts.size(); ++i) {
    absl::StrAppend(&prompt, "\nResponse ", i + 1, ":\n", texts[i].text, "\n");
  }
  absl::StrAppend(&prompt, "\n", instruction);
  return {llm::Message{llm::Role::kUser, std::move(prompt)}};
}

std::vector<llm::Message> RefineMessages(const std::vector<llm::Message>& conversation,
                                         const std::string& draft, const std::string& instruction) {
  std::vector<llm::Message> out = conversation;
  out.push_back({llm::Role::kAssistant, draft});
  out.push_back({llm::Role::kUser, instruction});
  return out;
}

std::vector<size_t> ReadRanking(const std::string& answer, size_t n, size_t* named) {
  std::vector<size_t> order;
  std::vector<bool> seen(n, false);
  for (size_t i = 0; i < answer.size();) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(answer[i]))) {
      ++i;
      continue;
    }
    size_t value = 0;
    bool huge = false;
    while (i < answer.size() && absl::ascii_isdigit(static_cast<unsigned char>(answer[i]))) {
      huge |= value > 1000000;
      value = value * 10 + static_cast<size_t>(answer[i] - '0');
      ++i;
    }
    if (!huge && value >= 1 && value <= n && !seen[value - 1]) {
      seen[value - 1] = true;
      order.push_back(value - 1);
    }
  }
  *named = order.size();
  for (size_t i = 0; i < n; ++i) {
    if (!seen[i]) order.push_back(i);
  }
  return order;
}

namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, 1).
double Unit(uint64_t& state) { return static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-53; }

// What a vote's normalization strips from the ends: quotes, brackets and
// markup around an answer, and the sentence's end after it (a sign or a
// decimal point inside stays: "-3" is not "3").
bool IsLeadingNoise(unsigned char c) {
  return std::string_view("\"'`([{*_").find(c) != std::string_view::npos;
}
bool IsTrailingNoise(unsigned char c) {
  return std::string_view("\"'`)]}*_.!?,;:").find(c) != std::string_view::npos;
}

}  // namespace

uint64_t StepSeed(uint64_t request_seed, int step) {
  uint64_t state = request_seed ^ (0x5851f42d4c957f2dULL * static_cast<uint64_t>(step));
  return SplitMix64(state);
}

std::vector<size_t> ShuffledOrder(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  uint64_t state = seed;
  for (size_t i = n; i > 1; --i) {
    size_t j = static_cast<size_t>(SplitMix64(state) % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

std::vector<bool> DropoutKeeps(size_t n, double rate, size_t min_keep, uint64_t seed) {
  std::vector<bool> keep(n);
  uint64_t state = seed;
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    keep[i] = Unit(state) >= rate;
    kept += keep[i] ? 1 : 0;
  }
  for (size_t i = 0; i < n && kept < std::min(min_keep, n); ++i) {
    if (!keep[i]) {
      keep[i] = true;
      ++kept;
    }
  }
  return keep;
}

std::string VoteKey(const std::string& text, bool normalize) {
  if (!normalize) return std::string(absl::StripAsciiWhitespace(text));
  std::string key;
  bool space = false;
  for (unsigned char c : text) {
    if (absl::ascii_isspace(c)) {
      space = !key.empty();
      continue;
    }
    if (space) key += ' ';
    space = false;
    key += static_cast<char>(absl::ascii_tolower(c));
  }
  size_t begin = 0, end = key.size();
  while (begin < end && IsLeadingNoise(static_cast<unsigned char>(key[begin]))) ++begin;
  while (end > begin && IsTrailingNoise(static_cast<unsigned char>(key[end - 1]))) --end;
  return key.substr(begin, end - begin);
}

VoteResult Vote(const std::vector<synthesis::Reference>& texts, bool normalize) {
  VoteResult result;
  std::vector<size_t> first;  // Per key: the index of its first text.
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string key = VoteKey(texts[i].text, normalize);
    auto it = std::find_if(result.counts.begin(), result.counts.end(),
                           [&](const auto& kv) { return kv.first == key; });
    if (it == result.counts.end()) {
      result.counts.push_back({std::move(key), 1});
      first.push_back(i);
    } else {
      ++it->second;
    }
  }
  size_t best = 0;
  for (size_t k = 1; k < result.counts.size(); ++k) {
    if (result.counts[k].second > result.counts[best].second) best = k;  // Ties keep the first.
  }
  result.winner = first.empty() ? 0 : first[best];
  return result;
}

namespace {

std::vector<std::string> WordSet(const std::string& text) {
  std::vector<std::string> words;
  for (absl::string_view w : absl::StrSplit(VoteKey(text, true), ' ', absl::SkipEmpty())) {
    size_t begin = 0, end = w.size();
    while (begin < end && !absl::ascii_isalnum(static_cast<unsigned char>(w[begin])) &&
           static_cast<unsigned char>(w[begin]) < 0x80) {
      ++begin;
    }
    while (end > begin && !absl::ascii_isalnum(static_cast<unsigned char>(w[end - 1])) &&
           static_cast<unsigned char>(w[end - 1]) < 0x80) {
      --end;
    }
    if (begin < end) words.emplace_back(w.substr(begin, end - begin));
  }
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  return words;
}

double Overlap(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.empty() || b.empty()) return 0;
  size_t shared = 0;
  for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
    if (a[i] == b[j]) {
      ++shared, ++i, ++j;
    } else if (a[i] < b[j]) {
      ++i;
    } else {
      ++j;
    }
  }
  return static_cast<double>(shared) / static_cast<double>(a.size() + b.size() - shared);
}

}  // namespace

double Similarity(const std::string& a, const std::string& b) {
  if (VoteKey(a, true) == VoteKey(b, true)) return 1;
  return Overlap(WordSet(a), WordSet(b));
}

Agreement Agree(const std::vector<synthesis::Reference>& texts, double similarity,
                size_t min_answers) {
  Agreement result;
  const size_t n = texts.size();
  if (n == 0) return result;
  std::vector<std::string> keys;
  std::vector<std::vector<std::string>> words;
  for (const synthesis::Reference& t : texts) {
    keys.push_back(VoteKey(t.text, true));
    if (similarity < 1) words.push_back(WordSet(t.text));
  }
  std::vector<double> total(n, 0);
  result.lowest = 1;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      const double s = keys[i] == keys[j] ? 1.0 : similarity < 1 ? Overlap(words[i], words[j]) : 0;
      total[i] += s;
      total[j] += s;
      result.lowest = std::min(result.lowest, s);
    }
  }
  result.answer = static_cast<size_t>(std::max_element(total.begin(), total.end()) - total.begin());
  result.agreed = n >= min_answers && result.lowest >= similarity;
  return result;
}

}  // namespace moa::orchestrator
