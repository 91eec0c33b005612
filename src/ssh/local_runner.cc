#include "ssh/local_runner.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace pgfailover::ssh {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// How long to wait for a SIGKILLed process group leader to be reaped before leaving that to a
// background thread (a process stuck in uninterruptible I/O dies only when the I/O ends).
constexpr Millis kReapAfterKill{1000};
constexpr Millis kPollSlice{50};

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// `fd` moved to a number of 3 or more: when pgfailover runs with stdin, stdout or stderr closed,
// a new descriptor can be 0, 1 or 2, and the child's dup2() onto 0/1/2 would then clobber one
// of its own sources.
Fd aboveStdio(Fd fd) {
  if (!fd.valid() || fd.get() > 2) return fd;
  return Fd(fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
}

struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::vector<gid_t> groups;
};

std::optional<Account> lookUp(const std::string* name, uid_t uid, std::string* error) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(static_cast<std::size_t>(size > 0 ? size : 16384));
  passwd entry{};
  passwd* found = nullptr;
  int rc = name != nullptr ? getpwnam_r(name->c_str(), &entry, buffer.data(), buffer.size(), &found)
                           : getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
  if (found == nullptr) {
    *error = rc != 0 ? std::strerror(rc) : "no such user";
    return std::nullopt;
  }
  Account account;
  account.name = entry.pw_name;
  account.uid = entry.pw_uid;
  account.gid = entry.pw_gid;
  account.home = entry.pw_dir != nullptr ? entry.pw_dir : "/";
  int count = 16;
  for (int tries = 0; tries < 4; ++tries) {
    account.groups.resize(static_cast<std::size_t>(count));
    int n = count;
    if (getgrouplist(account.name.c_str(), account.gid, account.groups.data(), &n) >= 0) {
      account.groups.resize(static_cast<std::size_t>(n));
      break;
    }
    count = std::max(n, count * 2);
  }
  return account;
}

std::string signalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? abbrev : std::to_string(sig);
}

void readAvailable(Fd& fd, OutputCapture& capture) {
  char buffer[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n > 0) {
      capture.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    fd.reset();  // EOF or a read error: this stream is done
    return;
  }
}

// What the child needs, all prepared before fork(): after fork in a threaded program the child
// may only make async-signal-safe calls, so no allocation happens there.
struct ChildPlan {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;
  bool switch_user = false;
  Account account;
};

[[noreturn]] void childFail(const char* what) {
  const char* reason = std::strerror(errno);
  (void)!::write(2, what, std::strlen(what));
  (void)!::write(2, ": ", 2);
  (void)!::write(2, reason, std::strlen(reason));
  (void)!::write(2, "\n", 1);
  _exit(126);
}

[[noreturn]] void runChild(const ChildPlan& plan, int null_fd, int out_fd, int err_fd) {
  setpgid(0, 0);
  // A daemon often ignores SIGPIPE or blocks signals in its threads; exec keeps both, and the
  // command must start with the defaults a shell expects.
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) _exit(126);
  close_range(3, UINT_MAX, 0);
  if (plan.switch_user) {
    if (setgroups(plan.account.groups.size(), plan.account.groups.data()) != 0)
      childFail("setgroups");
    if (setgid(plan.account.gid) != 0) childFail("setgid");
    if (setuid(plan.account.uid) != 0) childFail("setuid");
  }
  if (chdir(plan.account.home.c_str()) != 0 && chdir("/") != 0) childFail("chdir");
  execve("/bin/sh", plan.argv.data(), plan.envp.data());
  childFail("exec /bin/sh");
}

}  // namespace

LocalRunner::LocalRunner(std::string run_as_user) : run_as_user_(std::move(run_as_user)) {}

std::string LocalRunner::describe() const {
  return run_as_user_.empty() ? "local" : "local (as " + run_as_user_ + ")";
}

CommandResult LocalRunner::run(const std::string& command, Millis deadline) {
  const auto start = Clock::now();
  const auto until = start + deadline;
  const std::string prefix = describe() + ": ";
  CommandResult result;
  auto finish = [&](Status status) {
    result.status = std::move(status);
    result.took = elapsed(start, Clock::now());
    return result;
  };

  ChildPlan plan;
  std::string error;
  std::optional<Account> account =
      run_as_user_.empty() ? lookUp(nullptr, geteuid(), &error) : lookUp(&run_as_user_, 0, &error);
  if (!account) {
    if (!run_as_user_.empty()) {
      return finish({StatusCode::kFailedPrecondition,
                     prefix + "cannot run as user '" + run_as_user_ + "': " + error});
    }
    // pgfailover's own uid has no passwd entry (a container with an arbitrary uid): run as is.
    account = Account{};
    account->uid = geteuid();
    account->gid = getegid();
    const char* home = std::getenv("HOME");
    account->home = home != nullptr ? home : "/";
  }
  plan.account = *account;
  plan.switch_user = plan.account.uid != geteuid();
  if (plan.switch_user && geteuid() != 0) {
    return finish({StatusCode::kFailedPrecondition,
                   prefix + "cannot run as user '" + run_as_user_ + "': pgfailover runs as uid " +
                       std::to_string(geteuid()) + ", and only root can switch users"});
  }

  plan.args = {"sh", "-c", command};
  const char* path = std::getenv("PATH");
  plan.env.push_back(std::string("PATH=") +
                     (path != nullptr && *path != '\0' ? path : kDefaultPath));
  plan.env.push_back("HOME=" + plan.account.home);
  plan.env.push_back("SHELL=/bin/sh");
  if (!plan.account.name.empty()) {
    plan.env.push_back("USER=" + plan.account.name);
    plan.env.push_back("LOGNAME=" + plan.account.name);
  }
  for (const char* name : {"LANG", "LC_ALL", "TZ"}) {
    if (const char* value = std::getenv(name)) plan.env.push_back(std::string(name) + "=" + value);
  }
  for (auto& arg : plan.args) plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  for (auto& entry : plan.env) plan.envp.push_back(entry.data());
  plan.envp.push_back(nullptr);

  auto systemError = [&](const char* what) {
    int code = errno;
    return finish({StatusCode::kInternal, prefix + what + ": " + std::strerror(code)});
  };
  Fd null_fd = aboveStdio(Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  if (!null_fd.valid()) return systemError("open /dev/null");
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return systemError("pipe");
  Fd out_read(out_pipe[0]);
  Fd out_write = aboveStdio(Fd(out_pipe[1]));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return systemError("pipe");
  Fd err_read(err_pipe[0]);
  Fd err_write = aboveStdio(Fd(err_pipe[1]));
  if (!out_write.valid() || !err_write.valid()) return systemError("fcntl");
  fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
  fcntl(err_read.get(), F_SETFL, O_NONBLOCK);

  pid_t pid = fork();
  if (pid < 0) return systemError("fork");
  if (pid == 0) runChild(plan, null_fd.get(), out_write.get(), err_write.get());
  // Also from the parent, so the group exists before any kill(-pid) below, whoever runs first.
  setpgid(pid, pid);
  out_write.reset();
  err_write.reset();
  null_fd.reset();

  OutputCapture out;
  OutputCapture err;
  int wait_status = 0;
  bool reaped = false;
  std::optional<SteadyTime> exited_at;
  bool timed_out = false;
  while (out_read.valid() || err_read.valid() || !reaped) {
    if (!reaped) {
      pid_t w = waitpid(pid, &wait_status, WNOHANG);
      if (w == pid) {
        reaped = true;
        exited_at = Clock::now();
      }
    }
    auto now = Clock::now();
    if (exited_at && now - *exited_at >= kDetachedOutputGrace) break;
    if (now >= until) {
      // Once the command itself has exited, what is left is its detached output: not a timeout.
      timed_out = !reaped;
      break;
    }
    pollfd fds[2];
    nfds_t count = 0;
    if (out_read.valid()) fds[count++] = {out_read.get(), POLLIN, 0};
    if (err_read.valid()) fds[count++] = {err_read.get(), POLLIN, 0};
    auto slice = std::min(kPollSlice, std::chrono::ceil<Millis>(until - now));
    if (exited_at)
      slice = std::min(slice, std::chrono::ceil<Millis>(*exited_at + kDetachedOutputGrace - now));
    int ready = poll(count > 0 ? fds : nullptr, count,
                     static_cast<int>(std::max(slice, Millis{1}).count()));
    if (ready <= 0) continue;
    if (out_read.valid()) readAvailable(out_read, out);
    if (err_read.valid()) readAvailable(err_read, err);
  }

  if (timed_out) {
    kill(-pid, SIGKILL);
    if (!reaped) {
      const auto give_up = Clock::now() + kReapAfterKill;
      while (!reaped && Clock::now() < give_up) {
        if (waitpid(pid, &wait_status, WNOHANG) == pid) {
          reaped = true;
        } else {
          poll(nullptr, 0, 5);
        }
      }
      if (!reaped) std::thread([pid] { waitpid(pid, nullptr, 0); }).detach();
    }
  }
  if (out_read.valid()) readAvailable(out_read, out);
  if (err_read.valid()) readAvailable(err_read, err);
  result.stdout_text = out.text();
  result.stderr_text = err.text();
  result.output_truncated = out.truncated() || err.truncated();

  if (timed_out) {
    return finish({StatusCode::kDeadlineExceeded,
                   prefix + "deadline of " + std::to_string(deadline.count()) +
                       " ms passed while the command ran; its process group was killed"});
  }
  if (WIFEXITED(wait_status)) {
    result.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    result.signal = signalName(WTERMSIG(wait_status));
  }
  return finish(Status::ok());
}

}  // namespace pgfailover::ssh
