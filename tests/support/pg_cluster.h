// Real PostgreSQL 15 servers for tests, on loopback, in a temporary folder, set up by the same
// scripts/node/ scripts the labs use. Runs the server as the "postgres" OS user when the tests
// run as root (PostgreSQL refuses to run as root). Every server is stopped (by PID) and every
// file removed in the destructor, also when a test fails.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pgfailover::testing {

// Polls `predicate` every 100 ms until it holds or `timeout` passes. Tests wait with this,
// never with bare sleeps.
bool waitUntil(const std::function<bool()>& predicate, std::chrono::milliseconds timeout);

// Runs a shell command; returns its exit status and fills `output` (stdout+stderr) if given.
int runCommand(const std::string& command, std::string* output = nullptr);

// Picks a free TCP port on 127.0.0.1.
int freePort();

struct PgNode {
  std::string name;
  int port = 0;
  std::string data_dir;
};

class PgCluster {
 public:
  // Creates a primary (first node) and `replicas` streaming replicas cloned with
  // pg_basebackup -R. Fails the current test (ADD_FAILURE + returns) when setup fails.
  explicit PgCluster(int replicas = 1);
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  bool ok() const { return ok_; }
  const std::vector<PgNode>& nodes() const { return nodes_; }
  const PgNode& node(std::size_t i) const { return nodes_.at(i); }
  // Superuser "pgfailover" with this password (scram-sha-256 over TCP).
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  // A file holding only the password, mode 0600, for config "password_file".
  const std::string& passwordFile() const { return password_file_; }
  const std::string& dir() const { return dir_; }

  // libpq connection string for node i (host=127.0.0.1 port=... user=... password=...).
  std::string dsn(std::size_t i) const;
  // Runs one SQL statement through psql on node i; returns trimmed stdout, or "" + ok=false.
  std::string sql(std::size_t i, const std::string& query, bool* ok = nullptr) const;

  int postmasterPid(std::size_t i) const;  // from postmaster.pid; 0 when not running
  void kill9(std::size_t i);               // SIGKILL the postmaster (a crash)
  void stop(std::size_t i);                // SIGSTOP the postmaster and all its children
  void resume(std::size_t i);              // SIGCONT them
  void start(std::size_t i);               // pg_ctl start, as the data directory is
  bool isRunning(std::size_t i) const;

 private:
  bool ok_ = false;
  std::string dir_;
  std::string user_ = "pgfailover";
  std::string password_;
  std::string password_file_;
  std::vector<PgNode> nodes_;
};

// A TCP forwarder on 127.0.0.1:listenPort() -> 127.0.0.1:target_port, run on its own thread.
// pause() keeps every connection open but stops moving bytes (and stops accepting), which is
// what a cut link looks like to the client: silence, not a refusal. resume() moves bytes again.
class TcpForwarder {
 public:
  explicit TcpForwarder(int target_port);
  ~TcpForwarder();
  TcpForwarder(const TcpForwarder&) = delete;
  TcpForwarder& operator=(const TcpForwarder&) = delete;
  int listenPort() const;
  void pause();
  void resume();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgfailover::testing
