// A real OpenSSH server for tests (/usr/sbin/sshd from Debian's openssh-server), on 127.0.0.1
// and a free port, with everything it needs in a temporary folder: a fresh ed25519 host key, a
// client key pair whose public part is the only authorized key, a second client key that is not
// authorized, a known_hosts file with the host's key, and a "wrong" known_hosts file that pins a
// different key under the same name. Logins are by key only, as "postgres" (the user
// pgfailover logs in as on a real node) when that account exists, else as root. sshd runs with
// UsePAM yes, as Debian ships it: without PAM, OpenSSH refuses accounts whose password is locked,
// and Debian's postgres account has a locked password.
//
// It is a child process of the test, started with -D -e and its own sshd_config, and stopped by
// PID in the destructor together with every session process it forked, also when a test fails
// (whose log it then prints). Nothing here finds or kills a process by name. It needs root:
// sshd's privilege separation needs /run/sshd and root's setuid, as on a real host.
#pragma once

#include <sys/types.h>

#include <string>

namespace pgfailover::testing {

class TestSshd {
 public:
  // Creates the keys and the configuration and starts sshd. On failure the current test gets
  // ADD_FAILURE and ok() is false.
  TestSshd();
  ~TestSshd();
  TestSshd(const TestSshd&) = delete;
  TestSshd& operator=(const TestSshd&) = delete;

  bool ok() const { return ok_; }
  const std::string& host() const { return host_; }  // "127.0.0.1"
  int port() const { return port_; }
  const std::string& user() const { return user_; }  // "postgres", or "root" without one
  // A folder owned by user(), for files that remote commands create.
  const std::string& scratchDir() const { return scratch_dir_; }
  const std::string& privateKeyFile() const { return client_key_; }
  // A valid key pair whose public part is not in authorized_keys.
  const std::string& unauthorizedKeyFile() const { return unauthorized_key_; }
  // "[127.0.0.1]:PORT ssh-ed25519 AAAA..." with this server's host key.
  const std::string& knownHostsFile() const { return known_hosts_; }
  // The same host name with another ed25519 key: what a client sees as a changed host key.
  const std::string& wrongKnownHostsFile() const { return wrong_known_hosts_; }
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  pid_t pid() const { return pid_; }
  bool running();  // reaps it once it has exited
  // Kills the listener and every session process under it (SIGKILL, by PID): to a client this
  // is the host's sshd gone, established connections included.
  void stop();
  // Starts sshd again on the same port with the same keys; false (and ADD_FAILURE) on failure.
  bool start();
  // SIGSTOP / SIGCONT the listener and every session process: a host that stops answering
  // while its TCP connections stay open (the kernel still accepts new ones).
  void pause();
  void resume();
  std::string log() const;

 private:
  bool startOnce(std::string* why);

  bool ok_ = false;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  std::string user_;
  std::string dir_;
  std::string scratch_dir_;
  std::string config_;
  std::string log_;
  std::string client_key_;
  std::string unauthorized_key_;
  std::string known_hosts_;
  std::string wrong_known_hosts_;
  pid_t pid_ = -1;
};

}  // namespace pgfailover::testing
