// Runs child processes for tests: a command to completion with its output captured and a
// deadline, and the /proc look-ups the harness uses to find, pause and kill processes by PID.
// Every child closes the test's other file descriptors before exec, so a server started through
// a script never inherits (and keeps open) a test's sockets. Nothing here kills by name.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace pgfailover::testing {

struct ProcessOptions {
  // Added to (or replacing in) the test's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Killed (SIGKILL, with its process group) after this long; 0 = no deadline.
  std::chrono::milliseconds timeout{0};
  // Send stderr into stdout's capture, in order.
  bool merge_stderr = false;
  std::string stdin_text;  // written to the child's stdin, then closed
};

struct ProcessResult {
  int exit_code = -1;  // the exit status, 128 + signal when killed, -1 when it could not start
  bool timed_out = false;
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0; }
};

// Runs argv[0] (searched in PATH) with argv[1..] and waits for it.
ProcessResult runProcess(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// Like runCommand() in pg_cluster.h with a deadline: "/bin/sh -c command", output merged.
int runCommand(const std::string& command, std::string* output, std::chrono::milliseconds timeout);

// Single-quotes `text` for /bin/sh.
std::string shellQuote(const std::string& text);

// True while `pid` exists and is not a zombie.
bool processAlive(pid_t pid);
// Direct children of `pid`, from /proc.
std::vector<pid_t> childProcesses(pid_t pid);
// Processes whose working directory is `dir` (a postmaster and all its backends work in the
// data directory, also after the postmaster was killed).
std::vector<pid_t> processesWorkingIn(const std::string& dir);

std::string readTextFile(const std::string& path);
// Writes `content` to `path` with `mode` (created or truncated); false on error.
bool writeTextFile(const std::string& path, const std::string& content, unsigned mode = 0644);
// The last `lines` lines of a file ("" when unreadable).
std::string tailFile(const std::string& path, std::size_t lines);
std::string trim(const std::string& text);
// Random letters and digits.
std::string randomToken(std::size_t length);

}  // namespace pgfailover::testing
