// The daemon's configuration: one JSON file, parsed and validated into Config. Parsing never
// throws: it returns the Config or the full list of problems, each naming its key, so a user
// fixes every mistake in one go. Every key, default and unit is documented in
// docs/configuration.md (a unit test checks the document names every key).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/secret.h"
#include "common/time.h"

namespace pgfailover::config {

// How pgfailover authenticates to one node. At most one of password_file / password_env is set;
// with neither, libpq's own sources apply (PGPASSFILE, ~/.pgpass).
struct NodeCredentials {
  std::string password_file;
  std::string password_env;
};

struct NodeConfig {
  std::string name;  // names a host, not a role: roles change
  std::string host;
  int port = 5432;
  std::string dbname = "postgres";
  std::string user = "postgres";
  NodeCredentials credentials;
  std::string sslmode = "prefer";
  Secret password;  // resolved from credentials at load time; empty when libpq finds it itself
};

struct ProbeConfig {
  Millis interval{1000};
  Millis connect_timeout{1000};
  Millis query_timeout{1000};
  bool heartbeat = true;
  std::string heartbeat_table = "pgfailover.heartbeat";
};

struct FailoverConfig {
  // Timeout when pgfailover has proof the primary is down (connection refused or reset).
  Millis confirmed_down_timeout{3000};
  // Timeout when the primary is merely silent (probe deadlines expire, no route).
  Millis unresponsive_timeout{10000};
  // Grace while the primary says it is starting up, shutting down or recovering.
  Millis starting_up_grace{30000};
  // The replica counts as having lost the primary once it heard nothing for this long (or its
  // WAL receiver stopped). The effective value is never below half its wal_receiver_timeout
  // plus one second, since a healthy idle stream can be that quiet.
  Millis replica_silence{5000};
  std::uint64_t max_lag_bytes = 16ull * 1024 * 1024;
  // pg_promote(wait => true, wait_seconds => this).
  Millis promote_timeout{10000};
  int promote_attempts = 3;
};

struct HttpConfig {
  std::string listen_address = "0.0.0.0";
  int port = 8008;
};

enum class LogFormat { kText, kJson };

struct LogConfig {
  LogFormat format = LogFormat::kText;
  std::string level = "info";
};

struct Config {
  std::string cluster_name = "pgfailover";
  std::vector<NodeConfig> nodes;
  ProbeConfig probe;
  FailoverConfig failover;
  HttpConfig http;
  LogConfig log;
};

struct LoadResult {
  std::optional<Config> config;
  std::vector<std::string> errors;  // each names its key, e.g. "nodes[1].port: must be 1..65535"
  bool ok() const { return config.has_value() && errors.empty(); }
};

// Parses JSON text. `environment` resolves password_env (a function so tests need no real
// environment); password files are read from disk.
LoadResult parseConfig(
    const std::string& json_text,
    const std::function<std::optional<std::string>(const std::string&)>& environment);
LoadResult loadConfigFile(const std::string& path);

// The effective configuration as JSON text, with every secret replaced by "<redacted>".
std::string describeConfig(const Config& config);

// Every key the parser accepts, dotted ("failover.confirmed_down_timeout_ms"); the docs test
// checks each appears in docs/configuration.md.
std::vector<std::string> knownKeys();

}  // namespace pgfailover::config
