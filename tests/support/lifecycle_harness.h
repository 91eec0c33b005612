// What the lifecycle end-to-end tests (tests/integration/lifecycle_*_test.cc) share: a real
// PostgreSQL 15 primary and replica (PgCluster), a real sshd whose login user ("postgres") owns
// their data directories (TestSshd), and the real pgfailover binary configured to rejoin nodes
// over that sshd, with a state file and an admin token. Also a client that keeps writing
// (libpq, its own connection, retrying) and remembers every row the server acknowledged, and a
// POST with a bearer token for the admin API.
//
// It sets up what pg_rewind needs on the primary and the nodes' hosts: EXECUTE on the four file
// functions for the replication role (scripts/node/init-primary.sh does not grant them) and a
// replication passfile readable by the postgres OS user. Everything it starts is stopped by PID
// in its destructor, also when a test fails. Deliberately not here: assertions about the
// lifecycle itself (the tests make them).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon.h"
#include "support/http_client.h"
#include "support/pg_cluster.h"
#include "support/sshd.h"

namespace pgfailover::testing {

// POST with `Authorization: Bearer <token>` (no header when `token` is empty).
HttpResponse adminPost(int port, const std::string& path, const std::string& body,
                       const std::string& token,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The GRANTs pg_rewind needs for a non-superuser source role (PostgreSQL 15 docs, pg_rewind).
std::string rewindGrantsSql(const std::string& role);

class LifecycleHarness {
 public:
  LifecycleHarness();
  ~LifecycleHarness();
  LifecycleHarness(const LifecycleHarness&) = delete;
  LifecycleHarness& operator=(const LifecycleHarness&) = delete;

  bool ok() const { return ok_; }
  PgCluster& cluster() { return cluster_; }
  TestSshd& sshd() { return sshd_; }
  int httpPort() const { return http_port_; }
  const std::string& token() const { return token_; }
  const std::string& tokenFile() const { return token_file_; }
  const std::string& statePath() const { return state_path_; }
  // "*:*:*:replicator:<password>", owned by postgres, mode 0600.
  const std::string& replicationPassfile() const { return replication_passfile_; }
  // A folder of the harness's own (mode 0755) for test files: fake bin dirs, configs.
  const std::string& dir() const { return dir_; }

  // pgfailover's configuration: both nodes with ssh (this sshd, its key and known_hosts),
  // data_dir, bin_dir, start_command (scripts/node/start.sh for the node, so logs and sockets
  // stay where PgCluster expects them), replication user + passfile, the admin token, the state
  // file, probe interval 1 s, failover.rejoin_grace_ms as given. Tests change what they need.
  nlohmann::json config(int rejoin_grace_ms = 2000) const;
  std::string writeConfig(const nlohmann::json& config,
                          const std::string& name = "pgfailover.json");
  // The start_command for node i.
  std::string startCommand(std::size_t i) const;

  // Starts `pgfailover run --config path` (replacing a previous daemon object) and waits until
  // /status says healthy; false (with ADD_FAILURE) otherwise.
  bool startDaemon(const std::string& config_path,
                   std::chrono::milliseconds healthy_within = std::chrono::seconds(60));
  DaemonProcess* daemon() { return daemon_.get(); }
  // SIGKILL and reap the daemon (a crash of pgfailover itself).
  void killDaemon();

  nlohmann::json status() const;  // GET /status, or null
  std::string state() const;      // its "state", or ""
  // GET /history when the endpoint answers 200, else the state file's "history" array.
  nlohmann::json history() const;
  nlohmann::json stateFile() const;  // the state file's JSON, or null
  std::string log() const;
  // Status, state file and the daemon log's tail, for failure messages.
  std::string describe() const;

  // Node i's WAL receiver as PostgreSQL reports it: "streaming <received_tli>", or "".
  std::string walReceiver(std::size_t i) const;
  // SELECT pg_is_in_recovery() on node i: "t", "f", or "" when unreachable.
  std::string inRecovery(std::size_t i) const;

 private:
  bool setUp();

  PgCluster cluster_;
  TestSshd sshd_;
  bool ok_ = false;
  std::string dir_;
  int http_port_ = 0;
  std::string token_;
  std::string token_file_;
  std::string state_path_;
  std::string replication_passfile_;
  std::unique_ptr<DaemonProcess> daemon_;
  int daemon_generation_ = 0;
};

// A client that inserts a row every `interval` over its own libpq connection (reconnecting after
// any error, as an application with a retry loop does) and records each acknowledged row: its
// id, when the COMMIT was acknowledged, and the port of the server that acknowledged it. The
// table needs columns (id bigint primary key, port int).
class Writer {
 public:
  struct Ack {
    long long id = 0;
    std::chrono::steady_clock::time_point at;
    std::chrono::system_clock::time_point wall;
    int port = 0;
  };

  Writer(std::string conninfo, std::string table,
         std::chrono::milliseconds interval = std::chrono::milliseconds(50));
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void start();
  void stop();
  std::vector<Ack> acks() const;
  std::size_t ackCount() const;
  long long attempts() const { return attempts_.load(); }
  std::string lastError() const;
  // Wall times at which a connection was established.
  std::vector<std::chrono::system_clock::time_point> connects() const;

 private:
  void run();

  std::string conninfo_;
  std::string table_;
  std::chrono::milliseconds interval_;
  std::atomic<bool> stop_{false};
  std::atomic<long long> attempts_{0};
  mutable std::mutex mutex_;
  std::vector<Ack> acks_;
  std::vector<std::chrono::system_clock::time_point> connects_;
  std::string last_error_;
  std::thread thread_;
};

// "HH:MM:SS.mmm" UTC, as in pgfailover's log lines, for messages.
std::string wallClock(std::chrono::system_clock::time_point t);

}  // namespace pgfailover::testing
