#include "tools/moa/batch.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "lib/base/json.h"
#include "tools/moa/chat_runner.h"

namespace moa::cli {
namespace {

using nlohmann::json;

// Input and output files of a batch are read whole, so they are bounded: a
// 1 GB line once took 6.4 GB of memory and was then sent as one message.
constexpr int64_t kMaxBatchFileBytes = int64_t{256} << 20;
// A question is one request: more than the orchestrator's default
// limits.max_request_bytes would be refused by it anyway.
constexpr size_t kMaxQuestionBytes = 4 << 20;

// The file's bytes; *ok false (and a message printed) when it cannot be
// read or is larger than kMaxBatchFileBytes. A file that does not exist is
// not ok but prints nothing (a new output file).
std::string ReadFile(const std::string& path, bool* ok) {
  *ok = false;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  if (size < 0 || size > kMaxBatchFileBytes) {
    std::fprintf(stderr, "moa batch: %s is larger than the %lld MiB a batch file may be\n",
                 path.c_str(), static_cast<long long>(kMaxBatchFileBytes >> 20));
    return "";
  }
  std::string text(static_cast<size_t>(size), '\0');
  in.seekg(0);
  in.read(text.data(), size);
  *ok = static_cast<bool>(in);
  return text;
}

// Parsed with the same depth bound as every other JSON from outside;
// discarded (is_discarded()) when it is not JSON.
json ParseJson(absl::string_view text) {
  absl::StatusOr<json> parsed = moa::json::Parse(text);
  return parsed.ok() ? *std::move(parsed) : json(json::value_t::discarded);
}

// Writes atomically: a reader (or a crash) never sees half a file.
bool WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << text;
    if (!out.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

std::string ShortId() {
  static const char kAlphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string id;
  for (int i = 0; i < 22; ++i) id += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return id;
}

// What the run's answered requests cost (Summary.cost_dollars), printed at
// the end. One batch runs per process, so one total.
class Spend {
 public:
  static Spend& Run() {
    static Spend* spend = new Spend;
    return *spend;
  }
  void Add(const ChatResult& r) {
    if (!r.summary) return;
    std::lock_guard<std::mutex> lock(mu_);
    dollars_ += r.summary->cost_dollars();
  }
  double dollars() {
    std::lock_guard<std::mutex> lock(mu_);
    return dollars_;
  }

 private:
  std::mutex mu_;
  double dollars_ = 0;
};

// Every request of a batch: RunChat, its cost counted.
ChatResult BatchChat(v1::OrchestratorService::Stub& stub, const v1::ChatRequest& req,
                     absl::Duration timeout) {
  ChatResult r = RunChat(stub, req, timeout, {});
  Spend::Run().Add(r);
  return r;
}

// A progress bar on stderr: redrawn in place on a terminal, a line per
// item otherwise (logs, CI).
class Progress {
 public:
  Progress(int total, int skipped) : total_(total), done_(skipped), tty_(isatty(2)) {
    if (skipped > 0)
      std::fprintf(stderr, "resuming: %d of %d already in the output\n", skipped, total);
    Draw();
  }
  void Item(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    ++done_;
    if (!ok) ++failed_;
    Draw();
  }
  void End() {
    if (tty_) std::fprintf(stderr, "\n");
    std::fprintf(stderr, "cost of this run: $%.6f (tokens x the models' prices in the config)\n",
                 Spend::Run().dollars());
  }

 private:
  void Draw() {
    int width = 30;
    int filled = total_ == 0 ? width : done_ * width / total_;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "%s[%s] %d/%d done, %d failed, %.0fs%s", tty_ ? "\r" : "", bar.c_str(),
                 done_, total_, failed_, absl::ToDoubleSeconds(absl::Now() - start_),
                 tty_ ? "" : "\n");
    std::fflush(stderr);
  }
  std::mutex mu_;
  const int total_;
  int done_;
  int failed_ = 0;
  const bool tty_;
  const absl::Time start_ = absl::Now();
};

// Runs `work(i)` for each index on `concurrency` threads.
void ForEachConcurrently(const std::vector<size_t>& indices, int concurrency,
                         const std::function<void(size_t)>& work) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, concurrency); ++t) {
    threads.emplace_back([&] {
      for (size_t k; (k = next.fetch_add(1)) < indices.size();) work(indices[k]);
    });
  }
  for (auto& t : threads) t.join();
}

v1::ChatMessage* Add(v1::ChatRequest& req, v1::Role role, const std::string& text) {
  v1::ChatMessage* m = req.add_messages();
  m->set_role(role);
  m->set_content(text);
  return m;
}

int RunAlpacaEval(v1::OrchestratorService::Stub& stub, const BatchOptions& o) {
  bool ok;
  json input = ParseJson(ReadFile(o.input, &ok));
  if (!ok || input.is_discarded() || !input.is_array()) {
    std::fprintf(stderr, "moa batch: %s is not a readable JSON list of {instruction, ...}\n",
                 o.input.c_str());
    return 2;
  }
  std::map<std::string, json> done;  // By instruction.
  {
    std::string existing = ReadFile(o.output, &ok);
    if (!ok && std::ifstream(o.output)) return 2;  // There but too large (said why).
    if (ok && !existing.empty()) {
      json prev = ParseJson(existing);
      if (prev.is_discarded() || !prev.is_array()) {
        std::fprintf(stderr, "moa batch: %s exists but is not a JSON list; move it away\n",
                     o.output.c_str());
        return 2;
      }
      for (const json& item : prev) {
        auto instruction = moa::json::OptionalString(item, "instruction", "instruction");
        if (instruction.ok() && *instruction) done[**instruction] = item;
      }
    }
  }
  std::vector<size_t> todo;
  for (size_t i = 0; i < input.size(); ++i) {
    if (!input[i].is_object() || !input[i].contains("instruction") ||
        !input[i]["instruction"].is_string()) {
      std::fprintf(stderr, "moa batch: %s item %zu has no string 'instruction'\n", o.input.c_str(),
                   i);
      return 2;
    }
    if (!moa::json::OptionalString(input[i], "dataset", "dataset").ok()) {
      std::fprintf(stderr, "moa batch: %s item %zu: 'dataset' must be a string\n", o.input.c_str(),
                   i);
      return 2;
    }
    if (done.count(input[i]["instruction"].get<std::string>()) == 0) todo.push_back(i);
  }
  Progress progress(static_cast<int>(input.size()), static_cast<int>(input.size() - todo.size()));
  std::mutex mu;
  std::atomic<int> failed{0};
  auto write_all = [&] {  // In input order, every item answered so far.
    json out = json::array();
    for (const json& item : input) {
      auto it = done.find(item["instruction"].get<std::string>());
      if (it != done.end()) out.push_back(it->second);
    }
    return WriteFileAtomically(o.output,
                               out.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  };
  ForEachConcurrently(todo, o.concurrency, [&](size_t i) {
    const std::string instruction = input[i]["instruction"].get<std::string>();
    v1::ChatRequest req = o.base;
    if (o.temperature_override) req.mutable_params()->set_temperature(*o.temperature_override);
    Add(req, v1::ROLE_USER, instruction);
    ChatResult r = BatchChat(stub, req, o.timeout);
    if (!r.status.ok()) {
      ++failed;
      std::fprintf(stderr, "\nitem %zu failed: %s\n", i, r.status.error_message().c_str());
      progress.Item(false);
      return;
    }
    json item = {{"instruction", instruction},
                 {"output", r.answer},
                 {"generator", o.generator},
                 {"dataset", moa::json::OptionalString(input[i], "dataset", "dataset")
                                 .value_or(std::nullopt)
                                 .value_or("")}};
    std::lock_guard<std::mutex> lock(mu);
    done[instruction] = item;
    if (!write_all()) std::fprintf(stderr, "\ncannot write %s\n", o.output.c_str());
    progress.Item(true);
  });
  progress.End();
  return failed > 0 ? 1 : 0;
}

// Reads a JSON-lines question file; blank lines are skipped. `invalid(q)`
// says what is wrong with a question ("" when nothing is), reported as
// "PATH:LINE <what>". nullopt (after saying why) when the file is unusable.
std::optional<std::vector<json>> ReadQuestions(
    const std::string& path, const std::function<std::string(const json&)>& invalid) {
  bool ok;
  std::string text = ReadFile(path, &ok);
  if (!ok) {
    std::fprintf(stderr, "moa batch: cannot read %s\n", path.c_str());
    return std::nullopt;
  }
  std::vector<json> questions;
  std::istringstream lines(text);
  std::string line;
  for (int n = 1; std::getline(lines, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (line.size() > kMaxQuestionBytes) {
      std::fprintf(stderr, "moa batch: %s:%d is %zu bytes; a question may be at most %zu MiB\n",
                   path.c_str(), n, line.size(), kMaxQuestionBytes >> 20);
      return std::nullopt;
    }
    json q = ParseJson(line);
    std::string problem = invalid(q);
    if (!problem.empty()) {
      std::fprintf(stderr, "moa batch: %s:%d %s\n", path.c_str(), n, problem.c_str());
      return std::nullopt;
    }
    questions.push_back(std::move(q));
  }
  return questions;
}

// Answers the questions not yet in the JSON-lines output (matched by the
// output's "question_id" against each question's `id_field`), `concurrency`
// at a time, appending each answer line as it finishes. `answer(q)` returns
// the line to write or why the question failed (left for a rerun).
int AnswerJsonLines(const BatchOptions& o, const std::vector<json>& questions, const char* id_field,
                    const std::function<absl::StatusOr<json>(const json&)>& answer) {
  std::set<std::string> done;
  {
    bool ok;
    std::string existing = ReadFile(o.output, &ok);
    if (!ok && std::ifstream(o.output)) return 2;  // There but too large (said why).
    std::istringstream prev(existing);
    for (std::string l; std::getline(prev, l);) {
      json a = ParseJson(l);
      if (!a.is_discarded() && a.is_object() && a.contains("question_id")) {
        done.insert(a["question_id"].dump());
      }
    }
  }
  std::vector<size_t> todo;
  for (size_t i = 0; i < questions.size(); ++i) {
    if (done.count(questions[i][id_field].dump()) == 0) todo.push_back(i);
  }
  std::ofstream out(o.output, std::ios::app);
  if (!out) {
    std::fprintf(stderr, "moa batch: cannot write %s\n", o.output.c_str());
    return 2;
  }
  Progress progress(static_cast<int>(questions.size()),
                    static_cast<int>(questions.size() - todo.size()));
  std::mutex mu;
  std::atomic<int> failed{0};
  ForEachConcurrently(todo, o.concurrency, [&](size_t i) {
    absl::StatusOr<json> line = answer(questions[i]);
    if (!line.ok()) {
      ++failed;
      std::fprintf(stderr, "\nquestion %s failed: %s\n", questions[i][id_field].dump().c_str(),
                   std::string(line.status().message()).c_str());
      progress.Item(false);
      return;
    }
    std::lock_guard<std::mutex> lock(mu);
    out << moa::json::Dump(*line) << "\n";
    out.flush();
    progress.Item(true);
  });
  progress.End();
  return failed > 0 ? 1 : 0;
}

absl::Status StatusOf(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

int RunMtBench(v1::OrchestratorService::Stub& stub, const BatchOptions& o) {
  auto questions = ReadQuestions(o.input, [](const json& q) -> std::string {
    bool turns_are_text = !q.is_discarded() && q.is_object() && q.contains("turns") &&
                          q["turns"].is_array() && !q["turns"].empty();
    for (size_t k = 0; turns_are_text && k < q["turns"].size(); ++k) {
      turns_are_text = q["turns"][k].is_string();
    }
    if (!turns_are_text || !q.contains("question_id") ||
        !moa::json::OptionalString(q, "category", "category").ok()) {
      return "is not a question {question_id, category (a string), turns (strings)}";
    }
    return "";
  });
  if (!questions) return 2;
  return AnswerJsonLines(o, *questions, "question_id", [&](const json& q) -> absl::StatusOr<json> {
    double temperature = o.temperature_override.value_or(MtBenchTemperature(
        moa::json::OptionalString(q, "category", "category").value_or(std::nullopt).value_or("")));
    // Each turn sees the earlier turns and their answers.
    v1::ChatRequest req = o.base;
    req.mutable_params()->set_temperature(temperature);
    std::vector<std::string> answers;
    for (const json& turn : q["turns"]) {
      Add(req, v1::ROLE_USER, turn.get<std::string>());
      ChatResult r = BatchChat(stub, req, o.timeout);
      if (!r.status.ok()) return StatusOf(r.status);
      answers.push_back(r.answer);
      Add(req, v1::ROLE_ASSISTANT, r.answer);
    }
    return json{{"question_id", q["question_id"]},
                {"answer_id", ShortId()},
                {"model_id", o.generator},
                {"choices", json::array({{{"index", 0}, {"turns", answers}}})},
                {"tstamp", static_cast<double>(absl::ToUnixMicros(absl::Now())) / 1e6}};
  });
}

// FLASK (Ye et al., 2023): questions as JSON lines {idx, instruction, ...}
// (its evaluation_set/flask_evaluation.jsonl); answers as JSON lines
// {question_id: idx, text}, the file its GPT-4 reviewer reads and matches to
// the questions by question_id. Answers are appended as they finish, so an
// interrupted run resumes by question_id.
int RunFlask(v1::OrchestratorService::Stub& stub, const BatchOptions& o) {
  std::set<std::string> ids;
  auto questions = ReadQuestions(o.input, [&ids](const json& q) -> std::string {
    bool valid = !q.is_discarded() && q.is_object() && q.contains("instruction") &&
                 q["instruction"].is_string() && q.contains("idx") &&
                 (q["idx"].is_number_integer() || q["idx"].is_string());
    if (!valid)
      return "is not a FLASK question {idx (an integer or string), instruction (a string)}";
    if (!ids.insert(q["idx"].dump()).second) return "repeats idx " + q["idx"].dump();
    return "";
  });
  if (!questions) return 2;
  return AnswerJsonLines(o, *questions, "idx", [&](const json& q) -> absl::StatusOr<json> {
    v1::ChatRequest req = o.base;
    if (o.temperature_override) req.mutable_params()->set_temperature(*o.temperature_override);
    Add(req, v1::ROLE_USER, q["instruction"].get<std::string>());
    ChatResult r = BatchChat(stub, req, o.timeout);
    if (!r.status.ok()) return StatusOf(r.status);
    return json{{"question_id", q["idx"]}, {"text", r.answer}};
  });
}

}  // namespace

double MtBenchTemperature(const std::string& category) {
  static const std::map<std::string, double> kTemperature = {
      {"writing", 0.7}, {"roleplay", 0.7},  {"extraction", 0.0}, {"math", 0.0},
      {"coding", 0.0},  {"reasoning", 0.0}, {"stem", 0.1},       {"humanities", 0.1}};
  auto it = kTemperature.find(category);
  return it == kTemperature.end() ? 0.7 : it->second;
}

int RunBatch(v1::OrchestratorService::Stub& stub, const BatchOptions& options) {
  if (options.input.empty() || options.output.empty()) {
    std::fprintf(stderr, "moa batch: --input and --output are required\n");
    return 2;
  }
  if (options.format == "alpaca_eval") return RunAlpacaEval(stub, options);
  if (options.format == "mt_bench") return RunMtBench(stub, options);
  if (options.format == "flask") return RunFlask(stub, options);
  std::fprintf(stderr, "moa batch: --format must be alpaca_eval, mt_bench or flask, got '%s'\n",
               options.format.c_str());
  return 2;
}

}  // namespace moa::cli
