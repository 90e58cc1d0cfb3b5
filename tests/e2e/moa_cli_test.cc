// The moa CLI against a live cluster on the simulator: ask, and the
// AlpacaEval and MT-Bench output formats field by field, multi-turn answers
// and resuming.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tests/support/local_cluster.h"
#include "tools/moa/batch.h"

namespace moa {
namespace {

using ::moa::testing::BinaryPath;
using ::moa::testing::LocalCluster;
using ::moa::testing::Process;
using ::testing::HasSubstr;
using json = nlohmann::json;

class MoaCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::ClusterSpec spec;
    spec.models = {"a", "b", "z"};
    spec.pipelines_yaml =
        "pipelines:\n  moa: {layers: [[a, b]], aggregator: z}\ndefault_pipeline: moa\n";
    spec.sim_profiles_yaml =
        "default: {time_to_first_token: 0.01, tokens_per_second: 2000, answer_tokens: 10}\n";
    cluster_ = new LocalCluster(spec);
  }
  static void TearDownTestSuite() { delete cluster_; }

  void SetUp() override {
    ASSERT_TRUE(cluster_->ok()) << cluster_->error();
    dir_ = std::filesystem::temp_directory_path() /
           ("moa-cli-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    since_ = cluster_->LastSimRequestId();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `moa` with the given arguments; returns the exit code.
  int Moa(std::vector<std::string> args, std::string* output = nullptr,
          const std::string& stdin_path = "") {
    std::vector<std::string> argv = {BinaryPath("tools/moa/moa"),
                                     "--orchestrator=" + cluster_->orchestrator_address()};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(argv, {}, stdin_path);
    int code = p.Wait(absl::Seconds(60));
    if (output) *output = p.Output();
    return code;
  }

  std::string Path(const std::string& name) { return (dir_ / name).string(); }

  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::vector<json> FinalRequests() {
    std::vector<json> out;
    for (const json& r : cluster_->SimRequests(since_)) {
      if (r["model"] == "z") out.push_back(r);
    }
    return out;
  }

  static LocalCluster* cluster_;
  std::filesystem::path dir_;
  int64_t since_ = 0;
};

LocalCluster* MoaCliTest::cluster_ = nullptr;

TEST_F(MoaCliTest, AskStreamsTheAnswerAndPrintsThePerModelTable) {
  std::string out;
  ASSERT_EQ(Moa({"ask", "What", "is", "MoA?"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("layer 1/2: 2 of 2 proposals"));
  EXPECT_THAT(out, HasSubstr("[z synthesis of 2 responses"));
  EXPECT_THAT(out,
              ::testing::ContainsRegex("layer +model +ttft +duration +tokens in/out +outcome"));
  EXPECT_THAT(out, ::testing::ContainsRegex("\n1 +a +[0-9.]+s +[0-9.]+s +[0-9]+/10 +ok"));
  EXPECT_THAT(out, ::testing::ContainsRegex("\nfinal +z +[0-9.]+s +[0-9.]+s +[0-9]+/10 +ok"));
  EXPECT_EQ(FinalRequests()[0]["messages"].back()["content"], "What is MoA?");
}

TEST_F(MoaCliTest, AskWithStaircaseStreamingSaysSoOnTheFinalRow) {
  std::string out;
  ASSERT_EQ(Moa({"ask", "--streaming=staircase", "What", "is", "MoA?"}, &out), 0) << out;
  EXPECT_THAT(out, ::testing::ContainsRegex("\nfinal +z .* ok \\(staircase: [0-9]+ steps?\\)"));
  EXPECT_EQ(Moa({"ask", "--streaming=stairs", "hi"}, &out), 2);
  EXPECT_THAT(out, HasSubstr("--streaming must be normal or staircase, not 'stairs'"));
}

TEST_F(MoaCliTest, AskReportsAnUnknownPipelineAndExitsNonZero) {
  std::string out;
  EXPECT_EQ(Moa({"ask", "--pipeline=ghost", "hi"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("NOT_FOUND: pipeline 'ghost' is not defined; available: moa"));
}

TEST_F(MoaCliTest, ChatKeepsEarlierTurnsInTheConversation) {
  std::ofstream(Path("stdin.txt")) << "Hello there\nAnd a follow-up\nexit\n";
  std::string out;
  ASSERT_EQ(Moa({"chat"}, &out, Path("stdin.txt")), 0) << out;
  EXPECT_THAT(out, HasSubstr(">>> "));
  auto finals = FinalRequests();
  ASSERT_EQ(finals.size(), 2u);
  const json& second = finals[1]["messages"];
  size_t n = second.size();
  ASSERT_GE(n, 3u);
  EXPECT_EQ(second[n - 3]["content"], "Hello there");
  EXPECT_EQ(second[n - 2]["role"], "assistant");
  EXPECT_THAT(second[n - 2]["content"].get<std::string>(), HasSubstr("[z synthesis of 2"));
  EXPECT_EQ(second[n - 1]["content"], "And a follow-up");
}

TEST_F(MoaCliTest, ChatWithoutMultiTurnSendsEachMessageAlone) {
  std::ofstream(Path("stdin.txt")) << "One\nTwo\n";
  ASSERT_EQ(Moa({"chat", "--multi_turn=false"}, nullptr, Path("stdin.txt")), 0);
  auto finals = FinalRequests();
  ASSERT_EQ(finals.size(), 2u);
  EXPECT_EQ(finals[1]["messages"].back()["content"], "Two");
  for (const json& m : finals[1]["messages"]) EXPECT_NE(m["content"], "One");
}

TEST_F(MoaCliTest, HealthChecksGrpcServersAndHttpUrls) {
  std::string out;
  EXPECT_EQ(Moa({"health", "--target=" + cluster_->orchestrator_address()}, &out), 0) << out;
  // The simulator speaks only HTTP: its container health check is a URL.
  std::string sim = "http://127.0.0.1:" + std::to_string(cluster_->sim_port());
  EXPECT_EQ(Moa({"health", "--target=" + sim + "/healthz"}, &out), 0) << out;
  EXPECT_EQ(Moa({"health", "--target=" + sim + "/nope"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("answered HTTP 404"));
  EXPECT_EQ(Moa({"health", "--target=http://127.0.0.1:1/healthz", "--timeout=2s"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("not reachable"));
}

TEST_F(MoaCliTest, AlpacaEvalOutputHasEveryFieldInInputOrder) {
  std::ofstream(Path("in.json")) << R"([
    {"instruction": "First?", "dataset": "helpful_base", "output": "reference"},
    {"instruction": "Second?", "dataset": "koala"},
    {"instruction": "Third?", "dataset": "oasst"}])";
  std::string out;
  ASSERT_EQ(Moa({"batch", "--format=alpaca_eval", "--input=" + Path("in.json"),
                 "--output=" + Path("out.json"), "--generator=my-moa", "--concurrency=2"},
                &out),
            0)
      << out;
  json result = json::parse(Read(Path("out.json")));
  ASSERT_EQ(result.size(), 3u);
  const char* instructions[] = {"First?", "Second?", "Third?"};
  const char* datasets[] = {"helpful_base", "koala", "oasst"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(result[i].size(), 4u) << result[i].dump();
    EXPECT_EQ(result[i]["instruction"], instructions[i]);
    EXPECT_EQ(result[i]["dataset"], datasets[i]);
    EXPECT_EQ(result[i]["generator"], "my-moa");
    EXPECT_THAT(result[i]["output"].get<std::string>(), HasSubstr("[z synthesis of 2 responses"));
  }
  EXPECT_THAT(out, HasSubstr("3/3 done, 0 failed"));
}

TEST_F(MoaCliTest, AlpacaEvalResumesSkippingItemsAlreadyInTheOutput) {
  std::ofstream(Path("in.json"))
      << R"([{"instruction": "Done already", "dataset": "d"}, {"instruction": "New one", "dataset": "d"}])";
  std::ofstream(Path("out.json"))
      << R"([{"instruction": "Done already", "output": "PREVIOUS", "generator": "g", "dataset": "d"}])";
  std::string out;
  ASSERT_EQ(Moa({"batch", "--format=alpaca_eval", "--input=" + Path("in.json"),
                 "--output=" + Path("out.json"), "--generator=g"},
                &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("resuming: 1 of 2 already in the output"));
  json result = json::parse(Read(Path("out.json")));
  ASSERT_EQ(result.size(), 2u);
  EXPECT_EQ(result[0]["output"], "PREVIOUS") << "kept as it was";
  EXPECT_EQ(result[1]["instruction"], "New one");
  auto finals = FinalRequests();
  ASSERT_EQ(finals.size(), 1u) << "only the new item was asked";
  EXPECT_EQ(finals[0]["messages"].back()["content"], "New one");
}

TEST_F(MoaCliTest, MtBenchAnswersTurnsInOrderWithEarlierTurnsAndCategoryTemperature) {
  std::ofstream(Path("q.jsonl"))
      << R"({"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Make it shorter."]})"
      << "\n"
      << R"({"question_id": 111, "category": "math", "turns": ["What is 2+2?", "And times 3?"]})"
      << "\n";
  std::string out;
  ASSERT_EQ(Moa({"batch", "--format=mt_bench", "--input=" + Path("q.jsonl"),
                 "--output=" + Path("a.jsonl"), "--generator=moa-test"},
                &out),
            0)
      << out;
  std::ifstream in(Path("a.jsonl"));
  std::map<int, json> answers;
  for (std::string line; std::getline(in, line);) {
    json a = json::parse(line);
    answers[a["question_id"].get<int>()] = a;
  }
  ASSERT_EQ(answers.size(), 2u);
  for (auto& [id, a] : answers) {
    EXPECT_EQ(a.size(), 5u) << a.dump();
    EXPECT_EQ(a["model_id"], "moa-test");
    EXPECT_EQ(a["answer_id"].get<std::string>().size(), 22u);
    EXPECT_TRUE(a["tstamp"].is_number());
    ASSERT_EQ(a["choices"].size(), 1u);
    EXPECT_EQ(a["choices"][0]["index"], 0);
    ASSERT_EQ(a["choices"][0]["turns"].size(), 2u);
  }
  // Turn 2 of question 81 was asked with turn 1 and its answer before it.
  std::string first_answer = answers[81]["choices"][0]["turns"][0];
  bool found = false;
  for (const json& r : FinalRequests()) {
    const json& msgs = r["messages"];
    if (msgs.back()["content"] != "Make it shorter.") continue;
    found = true;
    size_t n = msgs.size();
    EXPECT_EQ(msgs[n - 3]["content"], "Write a poem.");
    EXPECT_EQ(msgs[n - 2]["role"], "assistant");
    EXPECT_EQ(msgs[n - 2]["content"], first_answer);
    EXPECT_EQ(r["params"]["temperature"], 0.7) << "writing";
  }
  EXPECT_TRUE(found);
  for (const json& r : cluster_->SimRequests(since_)) {
    if (r["messages"].back()["content"] == "What is 2+2?") {
      EXPECT_EQ(r["params"]["temperature"], 0.0) << "math";
    }
  }
}

TEST_F(MoaCliTest, MtBenchResumesByQuestionId) {
  std::ofstream(Path("q.jsonl")) << R"({"question_id": 1, "category": "stem", "turns": ["A?"]})"
                                 << "\n"
                                 << R"({"question_id": 2, "category": "stem", "turns": ["B?"]})"
                                 << "\n";
  std::ofstream(Path("a.jsonl"))
      << R"({"question_id": 1, "answer_id": "x", "model_id": "m", "choices": [{"index": 0, "turns": ["old"]}], "tstamp": 1})"
      << "\n";
  ASSERT_EQ(Moa({"batch", "--format=mt_bench", "--input=" + Path("q.jsonl"),
                 "--output=" + Path("a.jsonl")}),
            0);
  std::ifstream in(Path("a.jsonl"));
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["choices"][0]["turns"][0], "old");
  EXPECT_EQ(lines[1]["question_id"], 2);
  auto finals = FinalRequests();
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(finals[0]["params"]["temperature"], 0.1) << "stem";
}

TEST_F(MoaCliTest, FlaskWritesQuestionIdAndTextPerQuestionAndResumes) {
  // FLASK's evaluation set: {idx, instruction, ...} per line (other fields kept
  // by FLASK for its reviewer are ignored here).
  std::ofstream(Path("flask.jsonl"))
      << R"({"idx": 0, "instruction": "Name a prime.", "answer": "2", "skill": ["Correctness"]})"
      << "\n\n"
      << R"({"idx": 1, "instruction": "Explain tides.", "domain": ["Natural Science"]})"
      << "\n"
      << R"({"idx": "q-2", "instruction": "Say hi."})"
      << "\n";
  // An earlier run answered idx 1.
  std::ofstream(Path("answers.jsonl")) << R"({"question_id": 1, "text": "old answer"})"
                                       << "\n";
  std::string out;
  ASSERT_EQ(Moa({"batch", "--format=flask", "--input=" + Path("flask.jsonl"),
                 "--output=" + Path("answers.jsonl"), "--temperature=0.3"},
                &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("resuming: 1 of 3 already in the output"));
  std::ifstream in(Path("answers.jsonl"));
  std::map<std::string, json> answers;
  for (std::string line; std::getline(in, line);) {
    json a = json::parse(line);
    EXPECT_EQ(a.size(), 2u) << "exactly question_id and text: " << a.dump();
    answers[a["question_id"].dump()] = a;
  }
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers["1"]["text"], "old answer");
  EXPECT_TRUE(answers["0"]["question_id"].is_number_integer()) << "idx keeps its JSON type";
  EXPECT_EQ(answers["\"q-2\""]["question_id"], "q-2");
  // Each answer is the final answer to its instruction, asked alone.
  std::set<std::string> asked;
  for (const json& r : FinalRequests()) {
    EXPECT_EQ(r["params"]["temperature"], 0.3);
    std::string question = r["messages"].back()["content"];
    EXPECT_NE(question, "Explain tides.") << "idx 1 was already answered";
    asked.insert(question);
  }
  EXPECT_EQ(asked.size(), 2u);
  for (const char* id : {"0", "\"q-2\""}) {
    EXPECT_FALSE(answers[id]["text"].get<std::string>().empty()) << id;
  }
  // Bad lines and repeated ids are refused before any request.
  std::ofstream(Path("bad.jsonl")) << R"({"idx": 3})"
                                   << "\n";
  EXPECT_EQ(Moa({"batch", "--format=flask", "--input=" + Path("bad.jsonl"),
                 "--output=" + Path("o.jsonl")},
                &out),
            2);
  EXPECT_THAT(out, HasSubstr("bad.jsonl:1 is not a FLASK question"));
  std::ofstream(Path("twice.jsonl")) << R"({"idx": 3, "instruction": "a"})"
                                     << "\n"
                                     << R"({"idx": 3, "instruction": "b"})"
                                     << "\n";
  EXPECT_EQ(Moa({"batch", "--format=flask", "--input=" + Path("twice.jsonl"),
                 "--output=" + Path("o.jsonl")},
                &out),
            2);
  EXPECT_THAT(out, HasSubstr("twice.jsonl:2 repeats idx 3"));
}

TEST_F(MoaCliTest, BadBatchInputIsReportedWithExitCode2) {
  std::ofstream(Path("bad.json")) << R"({"not": "a list"})";
  std::string out;
  EXPECT_EQ(Moa({"batch", "--format=alpaca_eval", "--input=" + Path("bad.json"),
                 "--output=" + Path("o.json")},
                &out),
            2);
  EXPECT_THAT(out, HasSubstr("is not a readable JSON list"));
  EXPECT_EQ(Moa({"batch", "--format=arena", "--input=x", "--output=y"}, &out), 2);
  EXPECT_THAT(out, HasSubstr("--format must be alpaca_eval, mt_bench or flask"));

  // Fields of the wrong type are reported, never a crash.
  std::ofstream(Path("typed.json")) << R"([{"instruction": "a", "dataset": 5}])";
  EXPECT_EQ(Moa({"batch", "--format=alpaca_eval", "--input=" + Path("typed.json"),
                 "--output=" + Path("o2.json")},
                &out),
            2);
  EXPECT_THAT(out, HasSubstr("'dataset' must be a string"));
  std::ofstream(Path("typed.jsonl")) << R"({"question_id": 1, "category": 7, "turns": ["a"]})"
                                     << "\n"
                                     << R"({"question_id": 2, "turns": [["nested"]]})"
                                     << "\n";
  EXPECT_EQ(Moa({"batch", "--format=mt_bench", "--input=" + Path("typed.jsonl"),
                 "--output=" + Path("o.jsonl")},
                &out),
            2);
  EXPECT_THAT(out, HasSubstr("is not a question"));
  std::ofstream(Path("prev.json")) << R"([{"instruction": 5}, "junk"])";
  std::ofstream(Path("one.json")) << R"([{"instruction": "a"}])";
  EXPECT_NE(Moa({"batch", "--format=alpaca_eval", "--input=" + Path("one.json"),
                 "--output=" + Path("prev.json"), "--orchestrator=127.0.0.1:1", "--timeout=1s"},
                &out),
            134)
      << "a mistyped earlier output is skipped, not a crash: " << out;
}

// A question line over the 4 MiB a request may be is refused by name before
// anything is sent; a file over 256 MiB is refused from its size alone.
TEST_F(MoaCliTest, BatchInputIsBoundedPerQuestionAndPerFile) {
  {
    std::ofstream big(Path("big.jsonl"));
    big << R"({"question_id": 1, "turns": [")" << std::string(5 << 20, 'a') << "\"]}\n";
  }
  std::string out;
  EXPECT_EQ(Moa({"batch", "--format=mt_bench", "--input=" + Path("big.jsonl"),
                 "--output=" + Path("o.jsonl")},
                &out),
            2);
  EXPECT_THAT(out, HasSubstr("big.jsonl:1 is 5242913 bytes; a question may be at most 4 MiB"));
  EXPECT_TRUE(FinalRequests().empty());
  std::filesystem::resize_file(Path("big.jsonl"), (int64_t{256} << 20) + 1);  // Sparse.
  EXPECT_EQ(Moa({"batch", "--format=flask", "--input=" + Path("big.jsonl"),
                 "--output=" + Path("o.jsonl")},
                &out),
            2);
  EXPECT_THAT(out, HasSubstr("is larger than the 256 MiB a batch file may be"));
}

// Against an orchestrator with keys on: without a key the CLI says how to
// give one; --api_key and MOA_API_KEY both work; the key is never printed.
TEST_F(MoaCliTest, AskAndBatchPresentTheClientKeyFromTheFlagOrTheEnvironment) {
  Process orchestrator(
      {BinaryPath("services/orchestrator/moa-orchestrator"), "--host=127.0.0.1", "--port=0",
       "--metrics_port=0", "--http_port=-1", "--config=" + cluster_->config_path()},
      {"MOA_API_KEYS=sk-cli-test-secret"});
  const int port = testing::WaitForLoggedPort(orchestrator, "serving gRPC on port");
  ASSERT_GT(port, 0) << orchestrator.Output();
  const std::string address = absl::StrCat("--orchestrator=127.0.0.1:", port);
  auto moa = [&](std::vector<std::string> args, std::vector<std::string> env, std::string* out) {
    std::vector<std::string> argv = {BinaryPath("tools/moa/moa"), address};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(argv, env);
    int code = p.Wait(absl::Seconds(60));
    *out = p.Output();
    return code;
  };
  std::string out;
  EXPECT_EQ(moa({"ask", "Hello"}, {}, &out), 1);
  EXPECT_THAT(out, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(out, HasSubstr("--api_key or MOA_API_KEY"));
  EXPECT_EQ(moa({"ask", "--api_key=sk-wrong", "Hello"}, {}, &out), 1);
  EXPECT_THAT(out, ::testing::Not(HasSubstr("sk-wrong")));
  EXPECT_EQ(moa({"ask", "--api_key=sk-cli-test-secret", "Hello"}, {}, &out), 0) << out;
  EXPECT_EQ(moa({"pipelines"}, {"MOA_API_KEY=sk-cli-test-secret"}, &out), 0) << out;
  std::ofstream(Path("q.json")) << R"([{"instruction": "a"}])";
  EXPECT_EQ(moa({"batch", "--format=alpaca_eval", "--input=" + Path("q.json"),
                 "--output=" + Path("o.json")},
                {"MOA_API_KEY=sk-cli-test-secret"}, &out),
            0)
      << out;
  EXPECT_THAT(out, ::testing::Not(HasSubstr("sk-cli-test-secret")));
}

TEST(MtBenchTemperatureTest, FollowsFastChatsCategoryTable) {
  EXPECT_EQ(cli::MtBenchTemperature("writing"), 0.7);
  EXPECT_EQ(cli::MtBenchTemperature("roleplay"), 0.7);
  EXPECT_EQ(cli::MtBenchTemperature("extraction"), 0.0);
  EXPECT_EQ(cli::MtBenchTemperature("math"), 0.0);
  EXPECT_EQ(cli::MtBenchTemperature("coding"), 0.0);
  EXPECT_EQ(cli::MtBenchTemperature("reasoning"), 0.0);
  EXPECT_EQ(cli::MtBenchTemperature("stem"), 0.1);
  EXPECT_EQ(cli::MtBenchTemperature("humanities"), 0.1);
  EXPECT_EQ(cli::MtBenchTemperature("other"), 0.7);
}

}  // namespace
}  // namespace moa
