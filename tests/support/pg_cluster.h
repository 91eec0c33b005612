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

// A PostgreSQL 15 program: $PG_BIN/<name>, else /usr/lib/postgresql/15/bin/<name>, else the
// bare name (found in PATH).
std::string pgBinary(const std::string& name);

// PgCluster's folders go under $PGFAILOVER_TEST_TMPDIR (default /tmp; scripts/test.sh points it
// at a folder of its run); PGFAILOVER_KEEP_TEST_DIRS=1 keeps the folder of a failed test.
struct PgClusterOptions {
  int replicas = 1;
  // Extra postgresql.conf lines for every node, "name = value" (e.g. "synchronous_commit = off").
  std::vector<std::string> settings;
  // initdb/pg_basebackup --no-sync and fsync = off: safe for process crashes (kill -9), which is
  // all the tests cause; only an OS crash would lose data.
  bool fast = true;
};

class PgCluster {
 public:
  // Creates a primary (first node) and `replicas` streaming replicas cloned with
  // pg_basebackup -R. Fails the current test (ADD_FAILURE + returns) when setup fails.
  explicit PgCluster(int replicas = 1);
  explicit PgCluster(const PgClusterOptions& options);
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

  // Node i's WAL receiver reports "streaming" (pg_stat_wal_receiver).
  bool isStreaming(std::size_t i) const;
  // Node i's folder (data_dir's parent): pgfailover-node.conf, pg_hba.conf, run/, the log.
  std::string nodeDir(std::size_t i) const;
  std::string logFile(std::size_t i) const;  // the server log (pg_ctl -l)
  // The replication role "replicator"; its password file; the replication passfile each node
  // names in primary_conninfo ("*:*:*:replicator:<password>", owned by the server's OS user).
  const std::string& replicationUser() const { return replication_user_; }
  const std::string& replicationPasswordFile() const { return replication_password_file_; }
  std::string replicationPassfile(std::size_t i) const;
  // A pgpass file for clients: "127.0.0.1:*:*:pgfailover:<password>".
  const std::string& passfile() const { return passfile_; }
  // Runs scripts/node/<script> for node i (--dir and --name given) with `args`; returns its
  // exit status and fills `output` (stdout+stderr). E.g. runNodeScript(1, "stop.sh",
  // {"--mode", "fast"}).
  int runNodeScript(std::size_t i, const std::string& script, const std::vector<std::string>& args,
                    std::string* output = nullptr) const;

 private:
  bool setUp(const PgClusterOptions& options);
  void shutDown(std::size_t i);
  std::vector<int> processesOf(std::size_t i) const;

  bool ok_ = false;
  std::string dir_;
  std::string user_ = "pgfailover";
  std::string password_;
  std::string password_file_;
  std::vector<PgNode> nodes_;
  std::string replication_user_ = "replicator";
  std::string replication_password_file_;
  std::string passfile_;
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
  // Closes every open connection at once (both sides see a reset); keeps listening.
  void closeAll();
  // Connections currently open through the forwarder.
  int connectionCount() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgfailover::testing
