#include "support/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

extern char** environ;

namespace pgfailover::testing {
namespace {

using Clock = std::chrono::steady_clock;

int exitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::vector<std::string> mergedEnvironment(
    const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> result;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    std::string key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : extra) replaced = replaced || k == key;
    if (!replaced) result.push_back(std::move(entry));
  }
  for (const auto& [k, v] : extra) result.push_back(k + "=" + v);
  return result;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (auto& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

// /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
bool readStat(pid_t pid, char* state, pid_t* ppid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 4 > line.size()) return false;
  std::istringstream rest(line.substr(close + 2));
  long parent = 0;
  char s = '?';
  if (!(rest >> s >> parent)) return false;
  if (state != nullptr) *state = s;
  if (ppid != nullptr) *ppid = static_cast<pid_t>(parent);
  return true;
}

template <typename F>
void forEachPid(F&& f) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid <= 0) continue;
    f(static_cast<pid_t>(pid));
  }
  closedir(proc);
}

}  // namespace

ProcessResult runProcess(const std::vector<std::string>& argv, const ProcessOptions& options) {
  ProcessResult result;
  if (argv.empty()) return result;
  std::vector<std::string> args = argv;
  std::vector<std::string> env = mergedEnvironment(options.env);
  std::vector<char*> arg_ptrs = pointers(args);
  std::vector<char*> env_ptrs = pointers(env);

  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return result;
  }
  if (!options.stdin_text.empty()) signal(SIGPIPE, SIG_IGN);

  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], in_pipe[0], in_pipe[1]})
      ::close(fd);
    result.err = std::string("fork failed: ") + std::strerror(errno);
    return result;
  }
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(options.merge_stderr ? out_pipe[1] : err_pipe[1], 2);
    close_range(3, UINT_MAX, 0);
    execvpe(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
    const char* msg = "exec failed: ";
    (void)!write(2, msg, std::strlen(msg));
    (void)!write(2, arg_ptrs[0], std::strlen(arg_ptrs[0]));
    (void)!write(2, "\n", 1);
    _exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(in_pipe[0]);
  int out_fd = out_pipe[0], err_fd = err_pipe[0], in_fd = in_pipe[1];
  std::size_t in_written = 0;
  if (options.stdin_text.empty()) {
    ::close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }

  const auto start = Clock::now();
  std::optional<Clock::time_point> exited_at;
  int status = 0;
  bool reaped = false;
  char buffer[8192];
  while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
    if (!reaped) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        reaped = true;
        exited_at = Clock::now();
      }
    }
    // A grandchild that inherited the pipes (a daemon) must not keep us here.
    if (exited_at && Clock::now() - *exited_at > std::chrono::milliseconds(300)) break;
    int wait_ms = 100;
    if (options.timeout.count() > 0 && !result.timed_out) {
      auto left = options.timeout - (Clock::now() - start);
      if (left <= Clock::duration::zero()) {
        result.timed_out = true;
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        exited_at = Clock::now();  // read what is left for a moment, then stop
        continue;
      }
      wait_ms = static_cast<int>(std::min<long long>(
          100, std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1));
    }
    pollfd fds[3];
    int n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    int ready = poll(fds, n, wait_ms);
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < n && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      int fd = fds[i].fd;
      if (fd == in_fd) {
        ssize_t w = write(in_fd, options.stdin_text.data() + in_written,
                          options.stdin_text.size() - in_written);
        if (w > 0) in_written += static_cast<std::size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) in_written = options.stdin_text.size();
        if (in_written >= options.stdin_text.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      ssize_t r = read(fd, buffer, sizeof buffer);
      if (r > 0) {
        (fd == out_fd ? result.out : result.err).append(buffer, static_cast<std::size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fd);
        if (fd == out_fd) out_fd = -1;
        if (fd == err_fd) err_fd = -1;
      }
    }
  }
  for (int fd : {out_fd, err_fd, in_fd})
    if (fd >= 0) ::close(fd);
  if (!reaped) {
    if (options.timeout.count() > 0 && !result.timed_out) {
      // Output closed; give it the rest of its deadline to exit.
      while (waitpid(pid, &status, WNOHANG) == 0) {
        if (Clock::now() - start > options.timeout) {
          result.timed_out = true;
          kill(-pid, SIGKILL);
          kill(pid, SIGKILL);
          waitpid(pid, &status, 0);
          break;
        }
        usleep(10000);
      }
    } else {
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  result.exit_code = exitCodeOf(status);
  if (result.timed_out) {
    result.err += "\n[killed after " + std::to_string(options.timeout.count()) + " ms]\n";
    if (options.merge_stderr)
      result.out += "\n[killed after " + std::to_string(options.timeout.count()) + " ms]\n";
  }
  return result;
}

int runCommand(const std::string& command, std::string* output, std::chrono::milliseconds timeout) {
  ProcessOptions options;
  options.merge_stderr = true;
  options.timeout = timeout;
  ProcessResult result = runProcess({"/bin/sh", "-c", command}, options);
  if (output != nullptr) *output = result.out;
  return result.exit_code;
}

std::string shellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'')
      quoted += "'\\''";
    else
      quoted += c;
  }
  return quoted + "'";
}

bool processAlive(pid_t pid) {
  if (pid <= 0) return false;
  char state = '?';
  if (!readStat(pid, &state, nullptr)) return false;
  return state != 'Z' && state != 'X';
}

std::vector<pid_t> childProcesses(pid_t pid) {
  std::vector<pid_t> children;
  forEachPid([&](pid_t candidate) {
    pid_t parent = 0;
    if (readStat(candidate, nullptr, &parent) && parent == pid) children.push_back(candidate);
  });
  return children;
}

std::vector<pid_t> processesWorkingIn(const std::string& dir) {
  std::error_code ec;
  std::string wanted = std::filesystem::weakly_canonical(dir, ec).string();
  if (ec) wanted = dir;
  std::vector<pid_t> pids;
  forEachPid([&](pid_t pid) {
    char link[PATH_MAX];
    std::string path = "/proc/" + std::to_string(pid) + "/cwd";
    ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
    if (n <= 0) return;
    if (std::string(link, static_cast<std::size_t>(n)) == wanted && processAlive(pid))
      pids.push_back(pid);
  });
  return pids;
}

std::string readTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

bool writeTextFile(const std::string& path, const std::string& content, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  fchmod(fd, mode);
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t w = write(fd, content.data() + done, content.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      ::close(fd);
      return false;
    }
    done += static_cast<std::size_t>(w);
  }
  return ::close(fd) == 0;
}

std::string tailFile(const std::string& path, std::size_t lines) {
  std::string content = readTextFile(path);
  if (content.empty()) return content;
  std::size_t pos = content.size();
  if (content.back() == '\n') --pos;
  for (std::size_t seen = 0; pos > 0; --pos) {
    if (content[pos - 1] == '\n' && ++seen == lines) break;
  }
  return content.substr(pos);
}

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  auto begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  auto end = text.find_last_not_of(space);
  return text.substr(begin, end - begin + 1);
}

std::string randomToken(std::size_t length) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device device;
  std::uniform_int_distribution<std::size_t> pick(0, sizeof kAlphabet - 2);
  std::string token;
  for (std::size_t i = 0; i < length; ++i) token += kAlphabet[pick(device)];
  return token;
}

}  // namespace pgfailover::testing
