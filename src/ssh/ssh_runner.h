// Running commands on a node's host over ssh (libssh 0.10), for fencing and rejoin: pg_ctl stop,
// standby.signal, pg_rewind, pg_basebackup. One SshRunner per host keeps one authenticated
// session open and reuses it for every command; a broken or abandoned session is dropped and
// the next command connects anew.
//
// Safety rules it enforces, because a command sent to the wrong machine can destroy a database:
//   - The host key is always checked against the configured known_hosts file and accepted only
//     when it matches exactly. An unknown host, a changed key, a key of another type or a missing
//     file is an error naming the host, the port and the file, with the command that fixes it.
//     It never trusts on first use and never writes to known_hosts. ~/.ssh/config, the user's
//     ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts are not read.
//   - It authenticates with the configured private key file only: no password, no agent, no
//     keyboard-interactive. Keys protected by a passphrase are refused (pgfailover runs
//     unattended).
//   - Every call returns within its deadline: the session is non-blocking and every wait is a
//     poll(2) bounded by the time left. On a deadline the command is sent SIGKILL (OpenSSH
//     delivers it to the command's process group), the channel is closed and the session
//     dropped.
//
// What it deliberately does not do: retry a command that may have started, resolve host names
// without blocking (libssh calls getaddrinfo; use an IP address or an /etc/hosts name), forward
// agents or ports, transfer files, or allocate a terminal.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/time.h"
#include "ssh/command_runner.h"

namespace pgfailover::ssh {

struct SshTarget {
  std::string host;  // an IP address or a name that resolves without DNS delays
  int port = 22;
  std::string user;              // the OS user commands run as on the host, usually "postgres"
  std::string private_key_file;  // unencrypted; its public part in the user's authorized_keys
  std::string known_hosts_file;  // must hold the host's key ("[host]:port" when port != 22)
  Millis connect_timeout{3000};  // TCP connect + key exchange + authentication
};

class SshRunner : public CommandRunner {
 public:
  explicit SshRunner(SshTarget target);
  ~SshRunner() override;
  SshRunner(const SshRunner&) = delete;
  SshRunner& operator=(const SshRunner&) = delete;

  // Thread-safe: concurrent calls run one after the other on the one session; a call that cannot
  // start before its deadline returns kDeadlineExceeded.
  CommandResult run(const std::string& command, Millis deadline) override;
  std::string describe() const override;

  // Closes the session, if any (waiting for a running command to end); the next run() connects
  // again.
  void disconnect();
  // Sessions established (connected, host key verified, authenticated) since construction. A
  // count, not a timing, so tests can prove a session was reused or re-established.
  std::uint64_t connectCount() const { return connect_count_.load(); }
  const SshTarget& target() const { return target_; }

 private:
  class Session;

  SshTarget target_;
  std::timed_mutex mutex_;  // guards session_; timed so waiting for it honours the deadline
  std::unique_ptr<Session> session_;
  std::atomic<std::uint64_t> connect_count_{0};
};

}  // namespace pgfailover::ssh
