// Running commands for a node that lives on pgfailover's own host, through the same
// CommandRunner interface as SshRunner, so the executor does not care where a node is.
// Each command runs as `/bin/sh -c command` in a process group of its own, optionally as another
// OS user (when pgfailover runs as root and the node's files belong to "postgres"), in that
// user's home directory and with a small fresh environment, like an ssh login would give it.
// stdout and stderr are captured through pipes; on the deadline the whole process group gets
// SIGKILL and is reaped.
//
// What it deliberately does not do: pass pgfailover's own environment on (it may hold database
// passwords, see password_env), use a shell other than /bin/sh, give the command a terminal or
// stdin (it reads /dev/null), or wait for background processes that outlive the command but
// keep its output open (a server started with pg_ctl without -l): after the command itself
// exits, output is read for kDetachedOutputGrace more and then left.
#pragma once

#include <string>

#include "common/time.h"
#include "ssh/command_runner.h"

namespace pgfailover::ssh {

inline constexpr Millis kDetachedOutputGrace{200};

class LocalRunner : public CommandRunner {
 public:
  // `run_as_user` empty: commands run as pgfailover's own user. Otherwise as that user, which
  // needs pgfailover to run as root (or as that user already).
  explicit LocalRunner(std::string run_as_user = "");

  // Thread-safe: calls may run concurrently.
  CommandResult run(const std::string& command, Millis deadline) override;
  std::string describe() const override;

 private:
  std::string run_as_user_;
};

}  // namespace pgfailover::ssh
