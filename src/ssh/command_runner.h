// Running one shell command on a node's host, under a deadline, with its exit code and output
// captured: the way pgfailover fences an old primary (pg_ctl stop, standby.signal) and rejoins
// it (pg_rewind, pg_basebackup). CommandRunner is the interface the executor holds; SshRunner
// (ssh_runner.h) runs commands on another host, LocalRunner (local_runner.h) on pgfailover's own.
//
// What it deliberately does not do: decide what to run, retry a command, or log. A command that
// may have started is never retried here, because fencing and rewinding commands are not all
// idempotent; the caller decides. Output is captured, capped, and returned, never interpreted.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"
#include "common/time.h"

namespace pgfailover::ssh {

// What one run() produced.
//
// `status` is about getting the command run and its result back: ok means the command ran to
// its end and `exit_code` (or `signal`) says how it ended. A non-zero exit is still an ok status;
// succeeded() is the one-line check. Codes: kDeadlineExceeded (the deadline passed; the command
// may have run partly, or may still be running on a remote host), kUnavailable (host or sshd not
// reachable, connection lost), kUnauthenticated (the key was refused), kFailedPrecondition (the
// local setup is wrong: known_hosts, host key, private key, run-as user), kInternal.
struct CommandResult {
  Status status;
  int exit_code = -1;  // -1 when the command did not exit normally (or did not run)
  std::string signal;  // name of the signal that ended the command ("KILL"), empty otherwise
  std::string stdout_text;
  std::string stderr_text;
  bool output_truncated = false;  // stdout or stderr exceeded kMaxOutputBytes
  Millis took{0};

  bool succeeded() const { return status.isOk() && exit_code == 0 && signal.empty(); }
  // One line for a log or an error message: "exit 3: <last line of stderr>", "killed by signal
  // KILL", or the status message. Not redacted: pass it through redactForLog() if the command's
  // output could hold a secret.
  std::string summary() const;
};

// Per stream. Commands pgfailover runs print little; a runaway one must not fill memory.
inline constexpr std::size_t kMaxOutputBytes = 64 * 1024;

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;

  // Runs `command` with the remote (or local) user's shell as `sh -c command` would, and waits
  // for it to end. `deadline` is the whole budget for this call, connecting included, counted
  // from the call; the call returns within it (plus a few milliseconds) whatever the host does.
  virtual CommandResult run(const std::string& command, Millis deadline) = 0;

  // Where commands run, for messages: "ssh postgres@10.0.0.2:22", "local (as postgres)".
  virtual std::string describe() const = 0;
};

// Keeps the first and the last half of kMaxOutputBytes of a stream, because a command's usage
// line comes first and its error last; what lies between is replaced by one marker line.
class OutputCapture {
 public:
  explicit OutputCapture(std::size_t limit = kMaxOutputBytes) : limit_(limit) {}

  void append(const char* data, std::size_t size);
  bool truncated() const;
  std::string text() const;

 private:
  std::size_t limit_;
  std::string head_;
  std::string tail_;
  std::size_t dropped_ = 0;
};

}  // namespace pgfailover::ssh
