// The pgfailover binary (or any program) as a child process of a test: its stdout and stderr go
// to a log file, it is stopped by PID (SIGTERM, then SIGKILL after a deadline), and it dies
// with the test process (PR_SET_PDEATHSIG) so a crashed test leaves no daemon behind. Also
// builds the JSON configuration for a PgCluster. Does not parse the daemon's output.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgfailover::testing {

class PgCluster;

struct DaemonOptions {
  std::string binary;             // default: PGFAILOVER_BINARY (the built pgfailover)
  std::vector<std::string> args;  // argv[1..]
  std::string log_path;           // stdout and stderr, appended; required
  std::vector<std::pair<std::string, std::string>> env;  // added to the environment
};

class DaemonProcess {
 public:
  // `pgfailover run --config <config_path> [extra_args...]`, logging to `log_path`.
  DaemonProcess(const std::string& config_path, const std::string& log_path,
                std::vector<std::string> extra_args = {});
  explicit DaemonProcess(DaemonOptions options);
  // Stops it (stop()); prints the log's tail when the test has failed.
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Starts the process; false (and ADD_FAILURE) when it cannot be started. Call it from the
  // test's own thread: the child gets SIGKILL when the thread that started it ends.
  bool start();
  // True while it runs (reaps it once it has exited).
  bool running();
  pid_t pid() const { return pid_; }
  // SIGTERM, waits up to `grace`, then SIGKILL. Returns the exit status (128 + signal when a
  // signal ended it), or nullopt when it was never started.
  std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Sends a signal (SIGSTOP, SIGCONT, SIGKILL...) by PID; false when not running.
  bool signal(int signal_number);
  // The exit status once it has exited.
  std::optional<int> exitStatus();
  // Waits up to `timeout` for it to exit by itself.
  std::optional<int> waitForExit(std::chrono::milliseconds timeout);

  const std::string& logPath() const { return options_.log_path; }
  std::string log() const;
  std::string logTail(std::size_t lines = 40) const;
  // A printable command line, for messages.
  std::string commandLine() const;

 private:
  bool reap(bool block);

  DaemonOptions options_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

// Runs the pgfailover binary to completion (check-config, status...) with a deadline; returns
// its exit status and fills `output` with stdout+stderr.
int runPgfailover(const std::vector<std::string>& args, std::string* output = nullptr,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

// pgfailover's configuration for `cluster`, in the documented format: nodes pg1..pgN on
// 127.0.0.1 with the cluster's superuser and password file, probe interval 1000 ms, failover
// timeouts 3000/10000 ms, HTTP on 127.0.0.1:http_port. Tests change what they need.
nlohmann::json pgfailoverConfig(const PgCluster& cluster, int http_port);
// Writes `config` to <cluster dir>/<file_name> and returns the path.
std::string writePgfailoverConfig(const PgCluster& cluster, const nlohmann::json& config,
                                  const std::string& file_name = "pgfailover.json");

}  // namespace pgfailover::testing
