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

#include "common/failover_settings.h"
#include "common/secret.h"
#include "common/time.h"

namespace pgfailover::config {

// How pgfailover authenticates to one node. At most one of password_file / password_env is set;
// with neither, libpq's own sources apply (PGPASSFILE, ~/.pgpass).
struct NodeCredentials {
  std::string password_file;
  std::string password_env;
};

// How pgfailover runs commands on a node's host (stop, pg_rewind, pg_basebackup, start): over
// ssh, or locally when pgfailover shares the host. Without either, fencing is SQL-only and a
// node is never rejoined automatically.
struct SshConfig {
  std::string host;  // default: the node's host
  int port = 22;
  std::string user = "postgres";
  std::string private_key_file;
  std::string known_hosts_file;
  Millis connect_timeout{3000};
};

enum class HostExecKind { kNone, kSsh, kLocal };

struct HostExecConfig {
  HostExecKind kind = HostExecKind::kNone;
  SshConfig ssh;
  std::string run_as;  // local: run commands as this OS user (via runuser when root)
};

struct NodeConfig {
  std::string name;  // names a host, not a role: roles change
  std::string host;
  int port = 5432;
  std::string dbname = "postgres";
  std::string user = "postgres";
  NodeCredentials credentials;
  std::string sslmode = "prefer";
  // Files on pgfailover's host: the CA that signed the server's certificate (what verify-ca and
  // verify-full check against) and, optionally, a client certificate and its key.
  std::string sslrootcert;
  std::string sslcert;
  std::string sslkey;
  Secret password;  // resolved from credentials at load time; empty when libpq finds it itself

  // Host-side operations (lifecycle).
  HostExecConfig exec;
  std::string data_dir;
  std::string bin_dir = "/usr/lib/postgresql/15/bin";
  std::string start_command;  // default: pg_ctl start; {data_dir} {bin_dir} {node} expand
  // How the other nodes reach this one for replication (default: host and port above).
  std::string replication_host;
  int replication_port = 0;
};

struct ReplicationConfig {
  std::string user = "replicator";
  // A libpq password file on every node's host, readable by the user commands run as; used in
  // primary_conninfo, pg_rewind and pg_basebackup so no password is ever on a command line.
  std::string passfile;
  // TLS of those replication connections. sslrootcert is a file on every node's host (like
  // passfile), not on pgfailover's: the standby's WAL receiver, pg_rewind and pg_basebackup
  // read it there.
  std::string sslmode = "prefer";
  std::string sslrootcert;
  bool slots = true;
  Millis slot_drop_after{failover_defaults::kSlotDropAfter};
};

using ::pgfailover::SyncMode;

struct SynchronousConfig {
  SyncMode mode = SyncMode::kOff;
  Millis standalone_after{failover_defaults::kStandaloneAfter};
};

struct AdminConfig {
  std::string token_file;
  Secret token;  // read from token_file; empty disables the admin endpoints
};

struct ProbeConfig {
  Millis interval{1000};
  Millis connect_timeout{1000};
  Millis query_timeout{1000};
  bool heartbeat = true;
  std::string heartbeat_table = "pgfailover.heartbeat";
  bool icmp = false;  // also ping each node's host (the seed's check), for information only
  // The lease each heartbeat grants the primary (written into the heartbeat row): a node's
  // lease guard makes it read-only once neither pgfailover's heartbeat nor its replica has
  // reached it for this long, which is before pgfailover can promote the other node
  // (docs/lifecycle.md, "Self-fencing"). Unset in the file: min(failover timeouts) - 500 ms;
  // 0: no lease.
  Millis primary_lease{0};
};

// The settings the decision reads (common/failover_settings.h) and what only the runtime uses.
struct FailoverConfig : FailoverSettings {
  Millis rejoin_timeout{600000};
  // How a node that diverged is copied back (lifecycle/rejoin.h, RewindPolicy): "auto" runs
  // pg_rewind unless a fresh copy moves fewer bytes, "always" pg_rewind whenever it can work,
  // "never" a fresh pg_basebackup.
  std::string rewind = "auto";
  std::string preferred_node;  // default: the first node
  // STONITH-style command run on pgfailover's host before every failover promotion; a non-zero
  // exit cancels that promotion attempt. Environment: PGFAILOVER_OLD_PRIMARY,
  // PGFAILOVER_NEW_PRIMARY.
  std::string fencing_hook;
  Millis fencing_hook_timeout{10000};
};

// HTTPS for the API: all three are file paths; certificate and key together turn TLS on, and
// client_ca additionally requires a client certificate signed by it on the admin routes.
struct HttpTlsConfig {
  std::string certificate;
  std::string key;
  std::string client_ca;
  bool enabled() const { return !certificate.empty(); }
};

struct HttpConfig {
  std::string listen_address = "0.0.0.0";
  int port = 8008;
  // A request (TLS handshake, headers and body) must arrive whole within this, from its first
  // byte; an idle keep-alive connection is closed after idle_timeout.
  Millis request_timeout{2000};
  Millis idle_timeout{5000};
  // Connections held at once, in total and from one client address; more are refused at once.
  int max_connections = 512;
  int max_connections_per_address = 64;
  HttpTlsConfig tls;
};

// Several pgfailover instances, one acting, coordinated through etcd v3 (docs/coordination.md).
// Without an "etcd" section (enabled false) pgfailover runs alone, as it always did.
struct EtcdTlsConfig {
  std::string ca_file;    // the CA that signed etcd's certificates (default: the system's)
  std::string cert_file;  // client certificate, when etcd runs with --client-cert-auth
  std::string key_file;
};

struct EtcdConfig {
  bool enabled = false;
  std::string name;  // this instance, unique among the instances; default: the host name
  std::vector<std::string> endpoints;  // "http://10.0.0.1:2379", "https://etcd-1:2379"
  std::string prefix;                  // default: "/pgfailover/<cluster_name>"
  // Where the other instances and clients reach this instance's API; empty: derived at start
  // from http.listen_address (a wildcard: the host's first non-loopback IPv4 address).
  std::string api_url;
  // The leader key's lease. Renewed every tick; the acting instance stops acting
  // max(1000 ms, TTL / 5) before it could run out. Whole seconds: etcd leases count seconds.
  Millis lease_ttl{5000};
  // Connect and read deadline of each etcd call, per endpoint.
  Millis request_timeout{1000};
  EtcdTlsConfig tls;
  std::string user;
  std::string password_file;
  Secret password;  // read from password_file
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
  ReplicationConfig replication;
  SynchronousConfig synchronous;
  AdminConfig admin;
  std::string state_file;  // empty: nothing persisted across restarts
  EtcdConfig etcd;
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
// The largest configuration file read (a real one is a few KiB).
inline constexpr long kMaxConfigFileBytes = 1024 * 1024;
LoadResult loadConfigFile(const std::string& path);

// The effective configuration as JSON text, with every secret replaced by "<redacted>".
std::string describeConfig(const Config& config);

// A node (or the replication connections) whose password would go to a server that is not
// verified: sslmode below verify-ca lets anything answering at the address take it. One line
// per case, naming the node and what to set; logged at start and shown in /status.
std::vector<std::string> tlsWarnings(const Config& config);
// Whether an sslmode checks the server's certificate against a CA.
bool verifiesServer(const std::string& sslmode);
// The physical replication slot kept for node `node_name` on the primary: "pgfailover_" and the
// name in lower case with every character outside [a-z0-9_] as _, at most 63 bytes. Node names
// that map to one slot are refused.
std::string replicationSlotName(const std::string& node_name);

// Every key the parser accepts, dotted ("failover.confirmed_down_timeout_ms"); the docs test
// checks each appears in docs/configuration.md.
std::vector<std::string> knownKeys();

}  // namespace pgfailover::config
