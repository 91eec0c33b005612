#include "support/sshd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <vector>

#include "support/pg_cluster.h"
#include "support/process.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSshd = "/usr/sbin/sshd";

// Creates an ed25519 key pair at `path` and `path`.pub; the public line ("ssh-ed25519 AAAA...").
bool makeKey(const std::string& path, std::string* public_line) {
  ProcessResult keygen = runProcess(
      {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pgfailover-test", "-f", path},
      ProcessOptions{{}, 30s, true, ""});
  if (!keygen.ok()) {
    ADD_FAILURE() << "ssh-keygen for " << path << " failed: " << keygen.out;
    return false;
  }
  std::istringstream pub(readTextFile(path + ".pub"));
  std::string type, blob;
  pub >> type >> blob;
  *public_line = type + " " + blob;
  return !type.empty() && !blob.empty();
}

// Every process under `pid`, children before grandchildren.
std::vector<pid_t> descendants(pid_t pid) {
  std::vector<pid_t> all;
  std::vector<pid_t> frontier = {pid};
  while (!frontier.empty()) {
    std::vector<pid_t> next;
    for (pid_t parent : frontier) {
      for (pid_t child : childProcesses(parent)) {
        all.push_back(child);
        next.push_back(child);
      }
    }
    frontier = std::move(next);
  }
  return all;
}

}  // namespace

TestSshd::TestSshd() {
  if (geteuid() != 0) {
    ADD_FAILURE() << "TestSshd needs root (sshd's privilege separation switches users)";
    return;
  }
  if (access(kSshd, X_OK) != 0) {
    ADD_FAILURE() << kSshd << " not found: apt-get install openssh-server";
    return;
  }
  const char* base_env = std::getenv("PGFAILOVER_TEST_TMPDIR");
  std::string base = base_env != nullptr && *base_env != '\0' ? base_env : "/tmp";
  std::string pattern = base + "/pgfailover-sshd-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << ": " << std::strerror(errno);
    return;
  }
  dir_ = buffer.data();
  // sshd reads authorized_keys as the logging-in user.
  chmod(dir_.c_str(), 0755);
  passwd* account = getpwnam("postgres");
  if (account == nullptr) account = getpwnam("root");
  if (account == nullptr) {
    ADD_FAILURE() << "neither a postgres nor a root account";
    return;
  }
  user_ = account->pw_name;
  scratch_dir_ = path("scratch");
  if (mkdir(scratch_dir_.c_str(), 0755) != 0 ||
      chown(scratch_dir_.c_str(), account->pw_uid, account->pw_gid) != 0) {
    ADD_FAILURE() << "cannot create " << scratch_dir_ << ": " << std::strerror(errno);
    return;
  }
  config_ = path("sshd_config");
  log_ = path("sshd.log");
  client_key_ = path("client_key");
  unauthorized_key_ = path("unauthorized_key");
  known_hosts_ = path("known_hosts");
  wrong_known_hosts_ = path("wrong_known_hosts");

  // sshd refuses to start without its privilege separation directory (a package install or
  // systemd's RuntimeDirectory normally creates it).
  std::error_code ec;
  std::filesystem::create_directories("/run/sshd", ec);
  chmod("/run/sshd", 0755);

  std::string host_public, wrong_public, client_public, unauthorized_public;
  if (!makeKey(path("host_key"), &host_public) || !makeKey(path("wrong_host_key"), &wrong_public) ||
      !makeKey(client_key_, &client_public) || !makeKey(unauthorized_key_, &unauthorized_public)) {
    return;
  }
  if (!writeTextFile(path("authorized_keys"), client_public + "\n", 0644)) {
    ADD_FAILURE() << "cannot write authorized_keys in " << dir_;
    return;
  }

  // The port is picked free, but another process may take it before sshd binds: try a few.
  std::string why;
  for (int attempt = 0; attempt < 3 && !ok_; ++attempt) {
    port_ = freePort();
    if (port_ == 0) return;
    const std::string name = "[" + host_ + "]:" + std::to_string(port_) + " ";
    std::ostringstream config;
    config << "# Written by tests/support/sshd.cc\n"
           << "Port " << port_ << "\n"
           << "ListenAddress " << host_ << "\n"
           << "HostKey " << path("host_key") << "\n"
           << "PidFile " << path("sshd.pid") << "\n"
           << "AuthorizedKeysFile " << path("authorized_keys") << "\n"
           << "PubkeyAuthentication yes\n"
           << "PasswordAuthentication no\n"
           << "KbdInteractiveAuthentication no\n"
           << "PermitRootLogin prohibit-password\n"
           << "UsePAM yes\n"
           << "StrictModes no\n"
           << "UseDNS no\n"
           << "PrintMotd no\n"
           << "X11Forwarding no\n"
           << "AllowTcpForwarding no\n"
           << "AllowAgentForwarding no\n"
           << "MaxStartups 100\n"
           << "LogLevel VERBOSE\n";
    if (!writeTextFile(config_, config.str(), 0600) ||
        !writeTextFile(known_hosts_, name + host_public + "\n", 0644) ||
        !writeTextFile(wrong_known_hosts_, name + wrong_public + "\n", 0644)) {
      ADD_FAILURE() << "cannot write the sshd files in " << dir_;
      return;
    }
    ok_ = startOnce(&why);
  }
  if (!ok_) ADD_FAILURE() << "sshd did not start: " << why << "\n" << tailFile(log_, 30);
}

TestSshd::~TestSshd() {
  stop();
  if (::testing::Test::HasFailure() && !log_.empty()) {
    std::cerr << "---- sshd log (" << log_ << "), last lines ----\n" << tailFile(log_, 40);
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

bool TestSshd::startOnce(std::string* why) {
  ProcessResult check = runProcess({kSshd, "-t", "-f", config_}, ProcessOptions{{}, 30s, true, ""});
  if (!check.ok()) {
    *why = "sshd -t rejected the configuration: " + check.out;
    return false;
  }
  int log_fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    *why = "cannot open " + log_ + ": " + std::strerror(errno);
    return false;
  }
  std::vector<std::string> args = {kSshd, "-D", "-e", "-f", config_};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const std::size_t log_size_before = readTextFile(log_).size();
  pid_t pid = fork();
  if (pid < 0) {
    ::close(log_fd);
    *why = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  if (pid == 0) {
    // Dies with the test process, so a crashed test leaves no sshd behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    close_range(3, UINT_MAX, 0);
    execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(log_fd);
  pid_ = pid;
  const std::string listening = "Server listening on " + host_ + " port " + std::to_string(port_);
  bool up = waitUntil(
      [&] {
        if (!running()) return true;  // stop waiting; reported below
        return readTextFile(log_).find(listening, log_size_before) != std::string::npos;
      },
      10s);
  if (up && running()) return true;
  *why = running() ? "no '" + listening + "' in its log within 10 s" : "sshd exited";
  stop();
  return false;
}

bool TestSshd::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) pid_ = -1;  // reaps it once it has exited
  return pid_ > 0;
}

void TestSshd::stop() {
  if (pid_ <= 0) return;
  // Paused first, so it forks no new session between the look-up and the kill.
  kill(pid_, SIGSTOP);
  std::vector<pid_t> sessions = descendants(pid_);
  kill(pid_, SIGKILL);
  for (pid_t child : sessions) kill(child, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  waitUntil(
      [&] {
        for (pid_t child : sessions)
          if (processAlive(child)) return false;
        return true;
      },
      5s);
}

void TestSshd::pause() {
  if (pid_ <= 0) return;
  kill(pid_, SIGSTOP);
  for (pid_t child : descendants(pid_)) kill(child, SIGSTOP);
}

void TestSshd::resume() {
  if (pid_ <= 0) return;
  for (pid_t child : descendants(pid_)) kill(child, SIGCONT);
  kill(pid_, SIGCONT);
}

bool TestSshd::start() {
  if (running()) return true;
  std::string why;
  if (!startOnce(&why)) {
    ADD_FAILURE() << "sshd did not restart on port " << port_ << ": " << why << "\n"
                  << tailFile(log_, 30);
    return false;
  }
  return true;
}

std::string TestSshd::log() const {
  return readTextFile(log_);
}

}  // namespace pgfailover::testing
