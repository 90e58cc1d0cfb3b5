#include "tests/support/test_support.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moa::testing {
namespace {
size_t Collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}
}  // namespace

HttpResult HttpRequest(const std::string& method, const std::string& url, const std::string& body,
                       const std::vector<std::string>& headers, const std::string& ca_file) {
  HttpResult result;
  char error[CURL_ERROR_SIZE] = "";
  CURL* curl = curl_easy_init();
  curl_slist* header_list = nullptr;
  for (const std::string& h : headers) header_list = curl_slist_append(header_list, h.c_str());
  if (header_list) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Collect);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  if (!ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  } else {
    result.error = error;
  }
  curl_easy_cleanup(curl);
  curl_slist_free_all(header_list);
  return result;
}

HttpResult HttpGet(const std::string& url) { return HttpRequest("GET", url); }

bool MakeThrowawayCa(const std::string& dir, const std::string& name) {
  const std::string ca = absl::StrCat(
      "cd ", dir, " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1",
      " -nodes -keyout ", name, ".key -out ", name, ".crt -subj /CN=", name,
      " -days 1 2>/dev/null");
  std::ofstream(dir + "/" + name + ".ext")
      << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n";
  const std::string leaf = absl::StrCat(
      "cd ", dir,
      " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ", name,
      "-leaf.key -out ", name, "-leaf.csr -subj /CN=", name,
      "-service 2>/dev/null && openssl x509 -req -in ", name, "-leaf.csr -CA ", name,
      ".crt -CAkey ", name, ".key -CAcreateserial -out ", name, "-leaf.crt -days 1 -extfile ", name,
      ".ext 2>/dev/null");
  return std::system(ca.c_str()) == 0 && std::system(leaf.c_str()) == 0;
}

void InstallTlsFiles(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  for (auto [from, to] : {std::pair<std::string, std::string>{name + "-leaf.key", "tls.key"},
                          {name + "-leaf.crt", "tls.crt"},
                          {name + ".crt", "ca.crt"}}) {
    fs::copy_file(fs::path(dir) / from, fs::path(dir) / (to + ".new"),
                  fs::copy_options::overwrite_existing);
    fs::rename(fs::path(dir) / (to + ".new"), fs::path(dir) / to);
  }
}

std::string UrlEscape(const std::string& text) {
  char* escaped = curl_easy_escape(nullptr, text.c_str(), static_cast<int>(text.size()));
  std::string out = escaped ? escaped : "";
  curl_free(escaped);
  return out;
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return condition();
}

std::string PortHolder(int port) {
  std::string cmd = absl::StrCat("ss -Hltnp 'sport = :", port, "' 2>/dev/null");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  pclose(pipe);
  if (out.empty()) return "";
  size_t users = out.find("users:((\"");
  if (users == std::string::npos) return "another process";
  size_t name_end = out.find('"', users + 9);
  size_t pid = out.find("pid=", name_end);
  std::string name = out.substr(users + 9, name_end - users - 9);
  std::string pid_text =
      pid == std::string::npos ? "?" : out.substr(pid + 4, out.find(',', pid) - pid - 4);
  return absl::StrCat(name, " (pid ", pid_text, ")");
}

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::string BinaryPath(const std::string& relative) {
  return std::string(MOA_BIN_DIR) + "/" + relative;
}

Process::Process(std::vector<std::string> argv, std::vector<std::string> env,
                 const std::string& stdin_path) {
  char tmpl[] = "/tmp/moa-test-proc-XXXXXX";
  int fd = mkstemp(tmpl);
  log_path_ = tmpl;
  pid_ = fork();
  if (pid_ == 0) {
    // The child dies with the test (or benchmark), even when that crashes.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    int in = open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
    if (in >= 0) dup2(in, STDIN_FILENO);
    // Children must not inherit the test's blocked signal mask.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const std::string& kv : env) putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fd);
}

Process::~Process() {
  if (!exited_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    Wait(absl::Seconds(5));
  }
  unlink(log_path_.c_str());
}

void Process::Signal(int sig) {
  if (!exited_) kill(pid_, sig);
}

int Process::Wait(absl::Duration timeout) {
  if (exited_) return exit_code_;
  absl::Time end = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (absl::Now() >= end) return -1;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::string Process::Output() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string AddKeyWithCli(const std::string& file, const std::string& name,
                          std::vector<std::string> args) {
  std::vector<std::string> argv = {BinaryPath("tools/moa/moa"), "keys", "add", name,
                                   "--keys_file=" + file};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv);
  const int code = p.Wait(absl::Seconds(10));
  const std::string out = p.Output();
  std::smatch m;
  if (code != 0 || !std::regex_search(out, m, std::regex("sk-moa-[0-9a-f]{48}"))) {
    ADD_FAILURE() << "moa keys add " << name << " failed: " << out;
    return "";
  }
  return m.str();
}

}  // namespace moa::testing
