#include "support/daemon.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <thread>

#include "support/pg_cluster.h"
#include "support/process.h"

extern char** environ;

namespace pgfailover::testing {

using namespace std::chrono_literals;

namespace {

int statusToCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

DaemonProcess::DaemonProcess(const std::string& config_path, const std::string& log_path,
                             std::vector<std::string> extra_args) {
  options_.binary = PGFAILOVER_BINARY;
  options_.args = {"run", "--config", config_path};
  options_.args.insert(options_.args.end(), extra_args.begin(), extra_args.end());
  options_.log_path = log_path;
}

DaemonProcess::DaemonProcess(DaemonOptions options) : options_(std::move(options)) {
  if (options_.binary.empty()) options_.binary = PGFAILOVER_BINARY;
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) stop();
  if (pid_ > 0 && ::testing::Test::HasFailure()) {
    std::fprintf(stderr, "--- %s: last lines of %s ---\n%s\n", commandLine().c_str(),
                 options_.log_path.c_str(), logTail(60).c_str());
  }
}

std::string DaemonProcess::commandLine() const {
  std::string line = options_.binary;
  for (const auto& arg : options_.args) line += " " + arg;
  return line;
}

bool DaemonProcess::start() {
  if (pid_ > 0 && running()) {
    ADD_FAILURE() << "DaemonProcess: " << commandLine() << " already runs as pid " << pid_;
    return false;
  }
  if (options_.log_path.empty()) {
    ADD_FAILURE() << "DaemonProcess: no log_path for " << commandLine();
    return false;
  }
  int log_fd = ::open(options_.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    ADD_FAILURE() << "DaemonProcess: cannot open log " << options_.log_path << ": "
                  << std::strerror(errno);
    return false;
  }
  if (::access(options_.binary.c_str(), X_OK) != 0) {
    ::close(log_fd);
    ADD_FAILURE() << "DaemonProcess: " << options_.binary << " is not an executable file ("
                  << std::strerror(errno) << ")";
    return false;
  }
  // Everything the child needs is built before fork: only async-signal-safe calls after it.
  std::vector<std::string> args = {options_.binary};
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    std::string key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : options_.env) replaced = replaced || k == key;
    if (!replaced) env.push_back(entry);
  }
  for (const auto& [k, v] : options_.env) env.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    ::close(log_fd);
    ADD_FAILURE() << "DaemonProcess: fork failed: " << std::strerror(errno);
    return false;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    close_range(3, UINT_MAX, 0);
    execve(argv[0], argv.data(), envp.data());
    const char* msg = "DaemonProcess: exec failed\n";
    (void)!write(2, msg, std::strlen(msg));
    _exit(127);
  }
  ::close(log_fd);
  pid_ = pid;
  exit_status_.reset();
  return true;
}

bool DaemonProcess::reap(bool block) {
  if (pid_ <= 0) return true;
  if (exit_status_) return true;
  int status = 0;
  pid_t w;
  do {
    w = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (w < 0 && errno == EINTR);
  if (w == pid_) {
    exit_status_ = statusToCode(status);
    return true;
  }
  if (w < 0) {  // not our child any more (ECHILD)
    exit_status_ = -1;
    return true;
  }
  return false;
}

bool DaemonProcess::running() {
  return pid_ > 0 && !reap(false);
}

std::optional<int> DaemonProcess::exitStatus() {
  if (pid_ <= 0) return std::nullopt;
  reap(false);
  return exit_status_;
}

std::optional<int> DaemonProcess::waitForExit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  waitUntil([&] { return reap(false); }, timeout);
  return exit_status_;
}

bool DaemonProcess::signal(int signal_number) {
  if (!running()) return false;
  return ::kill(pid_, signal_number) == 0;
}

std::optional<int> DaemonProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return std::nullopt;
  if (running()) {
    ::kill(pid_, SIGCONT);  // a stopped process cannot handle SIGTERM
    ::kill(pid_, SIGTERM);
    if (!waitUntil([&] { return reap(false); }, grace)) {
      ::kill(pid_, SIGKILL);
      reap(true);
    }
  }
  return exit_status_;
}

std::string DaemonProcess::log() const {
  return readTextFile(options_.log_path);
}

std::string DaemonProcess::logTail(std::size_t lines) const {
  return tailFile(options_.log_path, lines);
}

int runPgfailover(const std::vector<std::string>& args, std::string* output,
                  std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {PGFAILOVER_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions options;
  options.merge_stderr = true;
  options.timeout = timeout;
  ProcessResult result = runProcess(argv, options);
  if (output != nullptr) *output = result.out;
  return result.exit_code;
}

nlohmann::json pgfailoverConfig(const PgCluster& cluster, int http_port) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& node : cluster.nodes()) {
    nodes.push_back({{"name", node.name},
                     {"host", "127.0.0.1"},
                     {"port", node.port},
                     {"dbname", "postgres"},
                     {"user", cluster.user()},
                     {"password_file", cluster.passwordFile()}});
  }
  return {{"cluster_name", "test"},
          {"nodes", nodes},
          {"probe", {{"interval_ms", 1000}}},
          {"failover", {{"confirmed_down_timeout_ms", 3000}, {"unresponsive_timeout_ms", 10000}}},
          {"http", {{"listen_address", "127.0.0.1"}, {"port", http_port}}}};
}

std::string writePgfailoverConfig(const PgCluster& cluster, const nlohmann::json& config,
                                  const std::string& file_name) {
  std::string path = cluster.dir() + "/" + file_name;
  if (!writeTextFile(path, config.dump(2) + "\n", 0600))
    ADD_FAILURE() << "writePgfailoverConfig: cannot write " << path << ": " << std::strerror(errno);
  return path;
}

}  // namespace pgfailover::testing
