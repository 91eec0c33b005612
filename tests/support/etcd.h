// A real etcd for tests (Debian's etcd-server, /usr/bin/etcd): one member, or a cluster of
// several on 127.0.0.1, each on free client and peer ports with its data in a temporary folder
// under $PGFAILOVER_TEST_TMPDIR. Members are child processes (DaemonProcess: they die with the
// test) stopped, killed, paused and restarted by PID; nothing here finds a process by name.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/daemon.h"

namespace pgfailover::testing {

class EtcdCluster {
 public:
  // Starts `members` members and waits until the cluster has a leader. `extra_args` go to
  // every member (e.g. "--auth-token-ttl=1"). On failure the test gets ADD_FAILURE, ok() false.
  // With `tls`, the client port serves https only, with a server certificate for 127.0.0.1
  // signed by a fresh test CA, and requires a client certificate signed by it (caFile(),
  // clientCertFile(), clientKeyFile()); otherCaFile() is a CA that signed nothing of this.
  explicit EtcdCluster(int members = 1, std::vector<std::string> extra_args = {}, bool tls = false);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  bool ok() const { return ok_; }
  int size() const { return static_cast<int>(members_.size()); }
  // "http://127.0.0.1:PORT" of member i.
  std::string clientUrl(int i) const;
  std::vector<std::string> clientUrls() const;
  const std::string& dir() const { return dir_; }
  std::string caFile() const { return dir_ + "/ca.crt"; }
  std::string otherCaFile() const { return dir_ + "/other-ca.crt"; }
  std::string clientCertFile() const { return dir_ + "/client.crt"; }
  std::string clientKeyFile() const { return dir_ + "/client.key"; }

  // SIGKILL member i (by PID) and reap it.
  void kill(int i);
  // Starts member i again on its ports with its data; false (and ADD_FAILURE) on failure.
  bool restart(int i);
  void pause(int i);   // SIGSTOP: connections are accepted, nothing answers
  void resume(int i);  // SIGCONT
  // Waits until member i answers /health with a leader.
  bool waitHealthy(int i, std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // Runs etcdctl (v3 API, plain http members only) against member 0 with `args`; returns its exit
  // status, output in `output` (stdout and stderr). `stdin_text` feeds prompts ("user add
  // --interactive=false" reads the password there).
  int etcdctl(const std::vector<std::string>& args, std::string* output = nullptr,
              const std::string& user = "", const std::string& password = "",
              const std::string& stdin_text = "");

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::string data_dir;
    std::unique_ptr<DaemonProcess> process;
  };
  std::unique_ptr<DaemonProcess> makeProcess(int i) const;
  bool makeCertificates();

  bool ok_ = false;
  std::string dir_;
  std::string cluster_token_;
  std::vector<std::string> extra_args_;
  bool tls_ = false;
  std::vector<Member> members_;
};

}  // namespace pgfailover::testing
