#include "config/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "common/lsn.h"
#include "common/secret_file.h"

namespace pgfailover::config {

namespace {

using nlohmann::json;

// Collects every problem instead of stopping at the first, so one run shows them all.
class Reader {
 public:
  explicit Reader(std::vector<std::string>& errors) : errors_(errors) {}

  void error(const std::string& key, const std::string& message) {
    errors_.push_back(key + ": " + message);
  }

  // Reports keys of `object` not in `allowed`.
  void rejectUnknown(const json& object, const std::string& prefix,
                     const std::set<std::string>& allowed) {
    for (auto it = object.begin(); it != object.end(); ++it)
      if (!allowed.count(it.key()))
        error(join(prefix, it.key()), "unknown key (allowed: " + list(allowed) + ")");
  }

  void readString(const json& object, const std::string& prefix, const std::string& key,
                  std::string& out, bool required = false) {
    auto it = object.find(key);
    if (it == object.end()) {
      if (required) error(join(prefix, key), "is required");
      return;
    }
    if (!it->is_string()) return error(join(prefix, key), "must be a string");
    out = it->get<std::string>();
    if (required && out.empty()) error(join(prefix, key), "must not be empty");
  }

  void readBool(const json& object, const std::string& prefix, const std::string& key, bool& out) {
    auto it = object.find(key);
    if (it == object.end()) return;
    if (!it->is_boolean()) return error(join(prefix, key), "must be true or false");
    out = it->get<bool>();
  }

  void readInt(const json& object, const std::string& prefix, const std::string& key, int& out,
               long min, long max) {
    auto it = object.find(key);
    if (it == object.end()) return;
    if (!it->is_number_integer()) return error(join(prefix, key), "must be an integer");
    // A number above the signed range is read unsigned: reported as written, never wrapped.
    const bool in_range =
        it->is_number_unsigned()
            ? it->get<std::uint64_t>() <= static_cast<std::uint64_t>(max) &&
                  (min <= 0 || it->get<std::uint64_t>() >= static_cast<std::uint64_t>(min))
            : it->get<long long>() >= min && it->get<long long>() <= max;
    if (!in_range)
      return error(join(prefix, key), "must be between " + std::to_string(min) + " and " +
                                          std::to_string(max) + ", got " + it->dump());
    out = static_cast<int>(it->get<long long>());
  }

  // Durations are integers in milliseconds, strictly positive.
  void readMillis(const json& object, const std::string& prefix, const std::string& key,
                  Millis& out) {
    auto it = object.find(key);
    if (it == object.end()) return;
    if (!it->is_number_integer())
      return error(join(prefix, key), "must be an integer number of milliseconds");
    constexpr long long kDay = 24LL * 3600 * 1000;
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(kDay))
      return error(join(prefix, key), "must be at most 1 day, got " + it->dump());
    long long value = it->get<long long>();
    if (value <= 0)
      return error(join(prefix, key),
                   "must be a positive duration in milliseconds, got " + it->dump());
    if (value > kDay) return error(join(prefix, key), "must be at most 1 day, got " + it->dump());
    out = Millis{value};
  }

  void readBytes(const json& object, const std::string& prefix, const std::string& key,
                 std::uint64_t& out) {
    auto it = object.find(key);
    if (it == object.end()) return;
    if (it->is_number_integer()) {
      if (!it->is_number_unsigned() && it->get<long long>() < 0)
        return error(join(prefix, key), "must not be negative, got " + it->dump());
      out = it->get<std::uint64_t>();
      return;
    }
    if (it->is_string()) {
      if (auto bytes = parseByteSize(it->get<std::string>())) {
        out = *bytes;
        return;
      }
    }
    error(join(prefix, key), "must be a number of bytes or a size such as \"16MB\"");
  }

  // Returns the object at `key`, reporting a wrong type; null json when absent.
  const json* section(const json& object, const std::string& key) {
    auto it = object.find(key);
    if (it == object.end()) return nullptr;
    if (!it->is_object()) {
      error(key, "must be an object");
      return nullptr;
    }
    return &*it;
  }

  static std::string join(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
  }

 private:
  static std::string list(const std::set<std::string>& keys) {
    std::string text;
    for (const auto& k : keys) text += (text.empty() ? "" : ", ") + k;
    return text;
  }
  std::vector<std::string>& errors_;
};

const std::set<std::string> kTopKeys = {"cluster_name", "nodes",      "probe",       "failover",
                                        "http",         "log",        "replication", "synchronous",
                                        "admin",        "state_file", "etcd"};
const std::set<std::string> kSynchronousKeys = {"mode", "standalone_after_ms"};
const std::set<std::string> kNodeKeys = {"name",
                                         "host",
                                         "port",
                                         "dbname",
                                         "user",
                                         "password_file",
                                         "password_env",
                                         "sslmode",
                                         "sslrootcert",
                                         "sslcert",
                                         "sslkey",
                                         "ssh",
                                         "local",
                                         "data_dir",
                                         "bin_dir",
                                         "start_command",
                                         "replication_host",
                                         "replication_port"};
const std::set<std::string> kSshKeys = {
    "host", "port", "user", "private_key_file", "known_hosts_file", "connect_timeout_ms"};
const std::set<std::string> kLocalKeys = {"run_as"};
const std::set<std::string> kReplicationKeys = {"user",        "passfile", "sslmode",
                                                "sslrootcert", "slots",    "slot_drop_after_ms"};
const std::set<std::string> kSslModes = {"disable", "allow",     "prefer",
                                         "require", "verify-ca", "verify-full"};
constexpr const char* kSslModeList =
    "must be one of disable, allow, prefer, require, verify-ca, verify-full";
const std::set<std::string> kAdminKeys = {"token_file"};
const std::set<std::string> kProbeKeys = {
    "interval_ms", "connect_timeout_ms", "query_timeout_ms", "heartbeat", "heartbeat_table",
    "icmp",        "primary_lease_ms"};
const std::set<std::string> kFailoverKeys = {"confirmed_down_timeout_ms",
                                             "unresponsive_timeout_ms",
                                             "host_lost_timeout_ms",
                                             "starting_up_grace_ms",
                                             "replica_silence_ms",
                                             "max_lag_bytes",
                                             "promote_timeout_ms",
                                             "promote_attempts",
                                             "rejoin",
                                             "rejoin_grace_ms",
                                             "rejoin_retry_interval_ms",
                                             "rejoin_timeout_ms",
                                             "rewind",
                                             "switchover_timeout_ms",
                                             "failback",
                                             "preferred_node",
                                             "failback_delay_ms",
                                             "fencing_hook",
                                             "fencing_hook_timeout_ms"};
const std::set<std::string> kHttpKeys = {"listen_address",
                                         "port",
                                         "request_timeout_ms",
                                         "idle_timeout_ms",
                                         "max_connections",
                                         "max_connections_per_address",
                                         "tls"};
const std::set<std::string> kHttpTlsKeys = {"certificate", "key", "client_ca"};

// A TLS file named in http.tls: a readable regular file; the key also private to its owner, as
// ssh insists for its keys, so a key readable by others is refused rather than used.
void checkTlsFile(Reader& r, const std::string& key, const std::string& path, bool secret) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    return r.error(key, "cannot read " + path + ": " + std::strerror(errno));
  if (!S_ISREG(info.st_mode)) return r.error(key, path + " is not a regular file");
  // The same rule as every other secret file (a root-owned 0440, as Kubernetes mounts a
  // Secret with fsGroup, is fine).
  if (secret)
    if (std::string unsafe = unsafeSecretFileMode(path); !unsafe.empty())
      return r.error(key, unsafe);
  if (::access(path.c_str(), R_OK) != 0)
    r.error(key, "cannot read " + path + ": " + std::strerror(errno));
}
const std::set<std::string> kLogKeys = {"format", "level"};
const std::set<std::string> kEtcdKeys = {"name",         "endpoints",          "prefix",
                                         "lease_ttl_ms", "request_timeout_ms", "tls",
                                         "user",         "password_file",      "api_url"};
const std::set<std::string> kEtcdTlsKeys = {"ca_file", "cert_file", "key_file"};

std::optional<std::string> readPasswordFile(const std::string& path, std::string& problem) {
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
    problem = "password file " + path + " is not a regular file";
    return std::nullopt;
  }
  std::ifstream file(path);
  if (!file) {
    problem = "cannot read password file " + path;
    return std::nullopt;
  }
  if (std::string unsafe = unsafeSecretFileMode(path); !unsafe.empty()) {
    problem = "password file " + unsafe;
    return std::nullopt;
  }
  std::string line;
  std::getline(file, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) {
    problem = "password file " + path + " is empty";
    return std::nullopt;
  }
  return line;
}

bool readableFile(const std::string& path) {
  std::ifstream file(path);
  return file.good();
}

// pgfailover quotes each placeholder's value for the shell itself ('/srv/my data'). Inside
// "..." those quotes would be literal and a $(...) or `...` in the value would run; inside '...'
// the value's quotes would end the string. A placeholder must stand outside any quotes.
std::string startCommandProblem(const std::string& command) {
  char quote = 0;
  for (std::size_t i = 0; i < command.size(); ++i) {
    const char c = command[i];
    if (quote == '\'') {
      if (c == '\'') quote = 0;
    } else if (c == '\\') {
      ++i;
      continue;
    } else if (c == '\'' || c == '"') {
      quote = quote == c ? 0 : (quote == 0 ? c : quote);
    }
    if (quote != 0 && c == '{') {
      for (const char* placeholder : {"{data_dir}", "{bin_dir}", "{node}"})
        if (command.compare(i, std::strlen(placeholder), placeholder) == 0)
          return std::string(placeholder) + " stands inside " +
                 (quote == '"' ? "double" : "single") +
                 " quotes: pgfailover quotes each placeholder itself, and inside quotes a $(...) "
                 "in the value would run; write it bare, e.g. pg_ctl start -D {data_dir}";
    }
  }
  if (quote != 0) return std::string("has an unterminated ") + quote + " quote";
  return "";
}

void readHostExec(Reader& r, const json& value, const std::string& prefix, NodeConfig& node) {
  auto ssh = value.find("ssh");
  auto local = value.find("local");
  if (ssh != value.end() && local != value.end()) {
    r.error(prefix, "ssh and local are exclusive; set one");
    return;
  }
  if (ssh != value.end()) {
    const std::string key = prefix + ".ssh";
    if (!ssh->is_object()) return r.error(key, "must be an object");
    r.rejectUnknown(*ssh, key, kSshKeys);
    auto& cfg = node.exec.ssh;
    node.exec.kind = HostExecKind::kSsh;
    cfg.host = node.host;
    r.readString(*ssh, key, "host", cfg.host);
    r.readInt(*ssh, key, "port", cfg.port, 1, 65535);
    r.readString(*ssh, key, "user", cfg.user);
    r.readString(*ssh, key, "private_key_file", cfg.private_key_file, true);
    r.readString(*ssh, key, "known_hosts_file", cfg.known_hosts_file, true);
    r.readMillis(*ssh, key, "connect_timeout_ms", cfg.connect_timeout);
    if (!cfg.private_key_file.empty() && !readableFile(cfg.private_key_file))
      r.error(key + ".private_key_file", "cannot read " + cfg.private_key_file);
    else if (std::string unsafe = unsafeSecretFileMode(cfg.private_key_file); !unsafe.empty())
      r.error(key + ".private_key_file", unsafe);
    if (!cfg.known_hosts_file.empty() && !readableFile(cfg.known_hosts_file))
      r.error(key + ".known_hosts_file",
              "cannot read " + cfg.known_hosts_file +
                  " (host keys are always verified; create it with ssh-keyscan)");
  } else if (local != value.end()) {
    const std::string key = prefix + ".local";
    if (!local->is_object()) return r.error(key, "must be an object");
    r.rejectUnknown(*local, key, kLocalKeys);
    node.exec.kind = HostExecKind::kLocal;
    r.readString(*local, key, "run_as", node.exec.run_as);
  }
  if (node.exec.kind != HostExecKind::kNone && node.data_dir.empty())
    r.error(prefix + ".data_dir", "is required when ssh or local is set");
}

void readNode(Reader& r, const json& value, std::size_t index, Config& config,
              const std::function<std::optional<std::string>(const std::string&)>& environment) {
  const std::string prefix = "nodes[" + std::to_string(index) + "]";
  if (!value.is_object()) return r.error(prefix, "must be an object");
  r.rejectUnknown(value, prefix, kNodeKeys);
  NodeConfig node;
  r.readString(value, prefix, "name", node.name, true);
  r.readString(value, prefix, "host", node.host, true);
  r.readInt(value, prefix, "port", node.port, 1, 65535);
  r.readString(value, prefix, "dbname", node.dbname);
  r.readString(value, prefix, "user", node.user);
  r.readString(value, prefix, "sslmode", node.sslmode);
  r.readString(value, prefix, "sslrootcert", node.sslrootcert);
  r.readString(value, prefix, "sslcert", node.sslcert);
  r.readString(value, prefix, "sslkey", node.sslkey);
  r.readString(value, prefix, "password_file", node.credentials.password_file);
  r.readString(value, prefix, "password_env", node.credentials.password_env);
  r.readString(value, prefix, "data_dir", node.data_dir);
  r.readString(value, prefix, "bin_dir", node.bin_dir);
  r.readString(value, prefix, "start_command", node.start_command);
  r.readString(value, prefix, "replication_host", node.replication_host);
  r.readInt(value, prefix, "replication_port", node.replication_port, 1, 65535);
  readHostExec(r, value, prefix, node);

  static const std::regex kNamePattern("[A-Za-z0-9_.-]{1,63}");
  if (!node.name.empty() && !std::regex_match(node.name, kNamePattern))
    r.error(prefix + ".name", "must be 1-63 characters of A-Z a-z 0-9 _ . - (it appears in URLs)");
  else if (node.name.find_first_not_of('.') == std::string::npos && !node.name.empty())
    r.error(prefix + ".name",
            "must not be only dots (\"" + node.name + "\" is a path step in a URL)");
  if (std::string problem = startCommandProblem(node.start_command); !problem.empty())
    r.error(prefix + ".start_command", problem);
  if (!kSslModes.count(node.sslmode)) r.error(prefix + ".sslmode", kSslModeList);
  // Checked here rather than at the first connect, where libpq's complaint would come back as
  // a probe failure every tick.
  auto readable = [&](const char* key, const std::string& path) {
    if (!path.empty() && !readableFile(path)) r.error(prefix + "." + key, "cannot read " + path);
  };
  readable("sslrootcert", node.sslrootcert);
  readable("sslcert", node.sslcert);
  readable("sslkey", node.sslkey);
  // A client key is a secret like the ssh key (libpq itself refuses a key others can read).
  if (!node.sslkey.empty())
    if (std::string unsafe = unsafeSecretFileMode(node.sslkey); !unsafe.empty())
      r.error(prefix + ".sslkey", unsafe);
  if (node.sslcert.empty() != node.sslkey.empty())
    r.error(prefix, "sslcert and sslkey go together (a client certificate and its key)");
  const auto& creds = node.credentials;
  if (!creds.password_file.empty() && !creds.password_env.empty()) {
    r.error(prefix, "password_file and password_env are exclusive; set one");
  } else if (!creds.password_file.empty()) {
    std::string problem;
    if (auto password = readPasswordFile(creds.password_file, problem))
      node.password = Secret(*password);
    else
      r.error(prefix + ".password_file", problem);
  } else if (!creds.password_env.empty()) {
    auto password = environment(creds.password_env);
    if (!password || password->empty())
      r.error(prefix + ".password_env",
              "environment variable " + creds.password_env + " is not set or empty");
    else
      node.password = Secret(*password);
  }
  config.nodes.push_back(std::move(node));
}

// The "etcd" section (docs/coordination.md). Runs after probe and cluster_name are read.
void readEtcd(Reader& r, const json& root, Config& config) {
  const json* section = r.section(root, "etcd");
  if (section == nullptr) return;
  auto& etcd = config.etcd;
  etcd.enabled = true;
  r.rejectUnknown(*section, "etcd", kEtcdKeys);

  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) etcd.name = host;
  r.readString(*section, "etcd", "name", etcd.name);
  static const std::regex kName("[A-Za-z0-9][A-Za-z0-9._-]{0,62}");
  if (!std::regex_match(etcd.name, kName))
    r.error("etcd.name", "'" + etcd.name +
                             "' must be 1 to 63 letters, digits, '.', '_' or '-' (starting with "
                             "a letter or digit); it names this instance in the leader key");

  auto endpoints = section->find("endpoints");
  if (endpoints == section->end() || !endpoints->is_array() || endpoints->empty()) {
    r.error("etcd.endpoints",
            "is required: a list of etcd client URLs such as "
            "\"https://10.0.0.1:2379\"");
  } else {
    static const std::regex kUrl(R"((https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5}))");
    std::set<std::string> schemes;
    for (std::size_t i = 0; i < endpoints->size(); ++i) {
      const std::string key = "etcd.endpoints[" + std::to_string(i) + "]";
      const json& item = (*endpoints)[i];
      std::smatch match;
      std::string url = item.is_string() ? item.get<std::string>() : "";
      if (!item.is_string() || !std::regex_match(url, match, kUrl) ||
          std::stol(match[3].str()) < 1 || std::stol(match[3].str()) > 65535) {
        r.error(key, "must be a URL http://host:port or https://host:port (no path), got " +
                         item.dump());
        continue;
      }
      schemes.insert(match[1].str());
      etcd.endpoints.push_back(url);
    }
    if (schemes.size() > 1)
      r.error("etcd.endpoints",
              "mixes http:// and https://; every member of one etcd cluster "
              "is reached the same way");
  }

  r.readString(*section, "etcd", "api_url", etcd.api_url);
  if (!etcd.api_url.empty()) {
    static const std::regex kApiUrl(
        R"((https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5}))");
    std::smatch match;
    if (!std::regex_match(etcd.api_url, match, kApiUrl) || std::stol(match[3].str()) < 1 ||
        std::stol(match[3].str()) > 65535)
      r.error("etcd.api_url",
              "must be a URL http://host:port or https://host:port (no path), got '" +
                  etcd.api_url + "'");
  }

  r.readString(*section, "etcd", "prefix", etcd.prefix);
  if (section->find("prefix") == section->end()) etcd.prefix = "/pgfailover/" + config.cluster_name;
  if (etcd.prefix.empty() || etcd.prefix.front() != '/' || etcd.prefix.back() == '/')
    r.error("etcd.prefix", "'" + etcd.prefix +
                               "' must start with '/' and not end with one (keys are "
                               "<prefix>/leader, <prefix>/state...)");

  r.readMillis(*section, "etcd", "lease_ttl_ms", etcd.lease_ttl);
  r.readMillis(*section, "etcd", "request_timeout_ms", etcd.request_timeout);
  const long long ttl = etcd.lease_ttl.count();
  const long long margin = ttl / 5 > 1000 ? ttl / 5 : 1000;  // as coord::Leadership
  if (ttl % 1000 != 0 || ttl < 2000 || ttl > 60000) {
    r.error("etcd.lease_ttl_ms", "is " + std::to_string(ttl) +
                                     "; must be whole seconds from 2000 to 60000 (etcd leases "
                                     "count seconds and are at least 2 s)");
  } else {
    // Renewed every tick: one late or failed renewal must not end the leadership, so the
    // acting window after a renewal holds two ticks; and a renewal attempt (connect + read)
    // must end within that window.
    const long long window = ttl - margin;
    if (window < 2 * config.probe.interval.count())
      r.error("etcd.lease_ttl_ms",
              "is " + std::to_string(ttl) +
                  " ms; the instance acts for TTL - max(1000, TTL/5) = " + std::to_string(window) +
                  " ms after a renewal, which must cover two ticks (2 x "
                  "probe.interval_ms = " +
                  std::to_string(2 * config.probe.interval.count()) + " ms)");
    if (2 * etcd.request_timeout.count() > window)
      r.error("etcd.request_timeout_ms",
              "is " + std::to_string(etcd.request_timeout.count()) +
                  " ms; a call (connect + read) must end within the " + std::to_string(window) +
                  " ms the instance acts after a renewal: at most " + std::to_string(window / 2));
  }

  if (const json* tls = section->find("tls") == section->end() ? nullptr : &(*section)["tls"]) {
    if (!tls->is_object()) {
      r.error("etcd.tls", "must be an object");
    } else {
      r.rejectUnknown(*tls, "etcd.tls", kEtcdTlsKeys);
      r.readString(*tls, "etcd.tls", "ca_file", etcd.tls.ca_file);
      r.readString(*tls, "etcd.tls", "cert_file", etcd.tls.cert_file);
      r.readString(*tls, "etcd.tls", "key_file", etcd.tls.key_file);
      if (etcd.tls.cert_file.empty() != etcd.tls.key_file.empty())
        r.error("etcd.tls",
                "cert_file and key_file go together (a client certificate and its key)");
      for (const auto& [key, path] :
           {std::pair{"ca_file", etcd.tls.ca_file}, std::pair{"cert_file", etcd.tls.cert_file},
            std::pair{"key_file", etcd.tls.key_file}})
        if (!path.empty() && !readableFile(path))
          r.error(std::string("etcd.tls.") + key, "cannot read " + path);
      if (!etcd.tls.key_file.empty() && readableFile(etcd.tls.key_file))
        if (std::string unsafe = unsafeSecretFileMode(etcd.tls.key_file); !unsafe.empty())
          r.error("etcd.tls.key_file", unsafe);
      const bool any_tls = !etcd.tls.ca_file.empty() || !etcd.tls.cert_file.empty();
      for (const auto& url : etcd.endpoints)
        if (any_tls && url.rfind("https://", 0) != 0) {
          r.error("etcd.tls", "is set but endpoint " + url + " is plain http://; use https://");
          break;
        }
    }
  }

  r.readString(*section, "etcd", "user", etcd.user);
  r.readString(*section, "etcd", "password_file", etcd.password_file);
  if (!etcd.user.empty() && etcd.password_file.empty())
    r.error("etcd.password_file", "is required with etcd.user (the user's password, one line)");
  if (etcd.user.empty() && !etcd.password_file.empty())
    r.error("etcd.user", "is required with etcd.password_file");
  if (!etcd.user.empty() && !etcd.password_file.empty()) {
    std::string problem;
    if (auto password = readPasswordFile(etcd.password_file, problem))
      etcd.password = Secret(*password);
    else
      r.error("etcd.password_file", problem);
  }
}

}  // namespace

LoadResult parseConfig(
    const std::string& json_text,
    const std::function<std::optional<std::string>(const std::string&)>& environment) {
  LoadResult result;
  // JSON allows a key twice and keeps the last one: a setting could be overridden further down
  // the file without anyone noticing. Every object's keys are tracked while parsing.
  std::vector<std::set<std::string>> open_objects;
  std::vector<std::string> duplicates;
  const json::parser_callback_t track_keys = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end && !open_objects.empty()) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty() && parsed.is_string()) {
      if (!open_objects.back().insert(parsed.get<std::string>()).second)
        duplicates.push_back(parsed.get<std::string>());
    }
    return true;
  };
  json root =
      json::parse(json_text, track_keys, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (!root.is_discarded() && !duplicates.empty()) {
    for (const auto& key : duplicates)
      result.errors.push_back("key \"" + key +
                              "\" appears twice in one object: JSON keeps only the last; remove "
                              "one");
    return result;
  }
  if (!root.is_discarded()) {
    // A control character in a value (a newline, a tab, a NUL) would reach PostgreSQL's files
    // and connection strings; no setting needs one, nor does any key. C1 controls (U+0080 to
    // U+009F, bytes C2 80 to C2 9F in UTF-8) are refused too: terminals act on some of them.
    auto has_control = [](const std::string& text) {
      for (std::size_t i = 0; i < text.size(); ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte < 0x20 || byte == 0x7f) return true;
        if (byte == 0xc2 && i + 1 < text.size() &&
            static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
            static_cast<unsigned char>(text[i + 1]) <= 0x9f)
          return true;
      }
      return false;
    };
    std::vector<std::string> bad;
    std::function<void(const json&, const std::string&)> walk = [&](const json& value,
                                                                    const std::string& where) {
      if (value.is_object()) {
        for (const auto& [key, item] : value.items()) {
          // A key is shown as JSON (escaped) when it holds one, so the message stays one line.
          const std::string shown = has_control(key) ? json(key).dump() : key;
          const std::string path = where.empty() ? shown : where + "." + shown;
          if (has_control(key))
            bad.push_back(path + " (the key)");
          else
            walk(item, path);
        }
      } else if (value.is_array()) {
        for (std::size_t i = 0; i < value.size(); ++i)
          walk(value[i], where + "[" + std::to_string(i) + "]");
      } else if (value.is_string() && has_control(value.get_ref<const std::string&>())) {
        bad.push_back(where);
      }
    };
    walk(root, "");
    for (const auto& where : bad)
      result.errors.push_back(where +
                              ": holds a control character (newline, tab, NUL...); no "
                              "setting takes one");
    if (!bad.empty()) return result;
  }
  if (root.is_discarded()) {
    // Re-parse with exceptions to get the position of the syntax error.
    try {
      json reparsed = json::parse(json_text, nullptr, true, true);
      (void)reparsed;
    } catch (const json::parse_error& e) {
      result.errors.push_back(std::string("invalid JSON: ") + e.what());
      return result;
    }
    result.errors.push_back("invalid JSON");
    return result;
  }
  if (!root.is_object()) {
    result.errors.push_back("the configuration must be a JSON object");
    return result;
  }
  Config config;
  std::optional<Millis> lease_setting;  // probe.primary_lease_ms as written, if it is
  Reader r(result.errors);
  r.rejectUnknown(root, "", kTopKeys);
  r.readString(root, "", "cluster_name", config.cluster_name);

  auto nodes = root.find("nodes");
  if (nodes == root.end()) {
    r.error("nodes", "is required: a list of the PostgreSQL servers (at least two)");
  } else if (!nodes->is_array()) {
    r.error("nodes", "must be a list");
  } else {
    for (std::size_t i = 0; i < nodes->size(); ++i)
      readNode(r, (*nodes)[i], i, config, environment);
    if (nodes->size() < 2)
      r.error("nodes", "needs at least two nodes (a primary and a replica), got " +
                           std::to_string(nodes->size()));
    std::set<std::string> names;
    std::set<std::pair<std::string, int>> addresses;
    // Names that differ only in case, or only where the slot name has an _ ('a.b', 'a-b',
    // 'a_b'), would share one replication slot and confuse anyone reading URLs and logs.
    std::map<std::string, std::string> slots;
    for (std::size_t i = 0; i < config.nodes.size(); ++i) {
      const auto& node = config.nodes[i];
      const std::string key = "nodes[" + std::to_string(i) + "]";
      if (!node.name.empty() && !names.insert(node.name).second) {
        r.error(key + ".name", "duplicate node name '" + node.name + "'");
      } else if (!node.name.empty()) {
        const auto [at, fresh] = slots.emplace(replicationSlotName(node.name), node.name);
        if (!fresh)
          r.error(key + ".name", "'" + node.name + "' and '" + at->second +
                                     "' differ only in case or in . - _, and would share the "
                                     "replication slot " +
                                     at->first + ": rename one");
      }
      if (!node.host.empty() && !addresses.insert({node.host, node.port}).second)
        r.error(key, "duplicate address " + node.host + ":" + std::to_string(node.port));
    }
  }

  if (const json* probe = r.section(root, "probe")) {
    r.rejectUnknown(*probe, "probe", kProbeKeys);
    r.readMillis(*probe, "probe", "interval_ms", config.probe.interval);
    r.readMillis(*probe, "probe", "connect_timeout_ms", config.probe.connect_timeout);
    r.readMillis(*probe, "probe", "query_timeout_ms", config.probe.query_timeout);
    r.readBool(*probe, "probe", "heartbeat", config.probe.heartbeat);
    r.readString(*probe, "probe", "heartbeat_table", config.probe.heartbeat_table);
    r.readBool(*probe, "probe", "icmp", config.probe.icmp);
    if (auto it = probe->find("primary_lease_ms"); it != probe->end()) {
      if (!it->is_number_integer() || it->get<long long>() < 0 ||
          it->get<long long>() > 3600LL * 1000)
        r.error("probe.primary_lease_ms",
                "must be an integer number of milliseconds, 0 (no lease) to 3600000, got " +
                    it->dump());
      else
        lease_setting = Millis{it->get<long long>()};
    }
    static const std::regex kTable("[a-z_][a-z0-9_]{0,62}\\.[a-z_][a-z0-9_]{0,62}");
    if (!std::regex_match(config.probe.heartbeat_table, kTable))
      r.error("probe.heartbeat_table", "must be schema.table in lower case letters, digits and _");
  }
  if (const json* failover = r.section(root, "failover")) {
    auto& f = config.failover;
    r.rejectUnknown(*failover, "failover", kFailoverKeys);
    r.readMillis(*failover, "failover", "confirmed_down_timeout_ms", f.confirmed_down_timeout);
    r.readMillis(*failover, "failover", "unresponsive_timeout_ms", f.unresponsive_timeout);
    r.readMillis(*failover, "failover", "host_lost_timeout_ms", f.host_lost_timeout);
    if (f.host_lost_timeout > f.unresponsive_timeout)
      r.error("failover.host_lost_timeout_ms",
              "is " + std::to_string(f.host_lost_timeout.count()) +
                  " ms; a lost host is stronger evidence than silence: at most "
                  "failover.unresponsive_timeout_ms (" +
                  std::to_string(f.unresponsive_timeout.count()) + " ms)");
    r.readMillis(*failover, "failover", "starting_up_grace_ms", f.starting_up_grace);
    r.readMillis(*failover, "failover", "replica_silence_ms", f.replica_silence);
    r.readBytes(*failover, "failover", "max_lag_bytes", f.max_lag_bytes);
    r.readMillis(*failover, "failover", "promote_timeout_ms", f.promote_timeout);
    r.readInt(*failover, "failover", "promote_attempts", f.promote_attempts, 1, 100);
    r.readBool(*failover, "failover", "rejoin", f.rejoin);
    r.readMillis(*failover, "failover", "rejoin_grace_ms", f.rejoin_grace);
    r.readMillis(*failover, "failover", "rejoin_retry_interval_ms", f.rejoin_retry_interval);
    r.readMillis(*failover, "failover", "rejoin_timeout_ms", f.rejoin_timeout);
    r.readString(*failover, "failover", "rewind", f.rewind);
    if (f.rewind != "auto" && f.rewind != "always" && f.rewind != "never")
      r.error("failover.rewind",
              "must be \"auto\", \"always\" or \"never\" (got \"" + f.rewind + "\")");
    r.readMillis(*failover, "failover", "switchover_timeout_ms", f.switchover_timeout);
    r.readBool(*failover, "failover", "failback", f.failback);
    r.readString(*failover, "failover", "preferred_node", f.preferred_node);
    r.readMillis(*failover, "failover", "failback_delay_ms", f.failback_delay);
    r.readString(*failover, "failover", "fencing_hook", f.fencing_hook);
    r.readMillis(*failover, "failover", "fencing_hook_timeout_ms", f.fencing_hook_timeout);
    if (f.promote_timeout < Millis{1000})
      r.error("failover.promote_timeout_ms",
              "must be at least 1000 (pg_promote waits whole seconds)");
  }
  {
    // The guard fences a node whose lease ran out before pgfailover may promote the other one:
    // the lease must end at least 500 ms before the shortest failover timeout, and outlast two
    // heartbeats so that one late tick does not fence a healthy primary.
    const auto& f = config.failover;
    const Millis latest =
        std::min({f.confirmed_down_timeout, f.unresponsive_timeout, f.host_lost_timeout}) -
        Millis{500};
    auto& lease = config.probe.primary_lease;
    lease = lease_setting.value_or(latest);
    if (!config.probe.heartbeat) {
      if (lease_setting && *lease_setting > Millis{0})
        r.error("probe.primary_lease_ms", "needs probe.heartbeat: the heartbeat renews the lease");
      lease = Millis{0};
    } else if (lease > Millis{0}) {
      const std::string key = lease_setting ? "probe.primary_lease_ms"
                                            : "probe.primary_lease_ms (by default min("
                                              "failover timeouts) - 500 ms)";
      if (lease > latest)
        r.error(key, "is " + std::to_string(lease.count()) + " ms; it must end before " +
                         "pgfailover may promote: at most " + std::to_string(latest.count()) +
                         " ms, 500 ms below failover.confirmed_down_timeout_ms, "
                         "unresponsive_timeout_ms and host_lost_timeout_ms");
      else if (lease < 2 * config.probe.interval)
        r.error(key, "is " + std::to_string(lease.count()) +
                         " ms; it must cover two heartbeats (2 x probe.interval_ms = " +
                         std::to_string((2 * config.probe.interval).count()) +
                         " ms); set it to 0 to run without a lease");
    }
  }
  if (!config.failover.preferred_node.empty()) {
    bool known = false;
    for (const auto& n : config.nodes) known = known || n.name == config.failover.preferred_node;
    if (!known)
      r.error("failover.preferred_node",
              "names no configured node: '" + config.failover.preferred_node + "'");
  }
  if (const json* replication = r.section(root, "replication")) {
    auto& rep = config.replication;
    r.rejectUnknown(*replication, "replication", kReplicationKeys);
    r.readString(*replication, "replication", "user", rep.user);
    r.readString(*replication, "replication", "passfile", rep.passfile);
    r.readString(*replication, "replication", "sslmode", rep.sslmode);
    r.readString(*replication, "replication", "sslrootcert", rep.sslrootcert);
    if (!kSslModes.count(rep.sslmode)) r.error("replication.sslmode", kSslModeList);
    r.readBool(*replication, "replication", "slots", rep.slots);
    r.readMillis(*replication, "replication", "slot_drop_after_ms", rep.slot_drop_after);
  }
  if (const json* sync = r.section(root, "synchronous")) {
    r.rejectUnknown(*sync, "synchronous", kSynchronousKeys);
    std::string mode = "off";
    r.readString(*sync, "synchronous", "mode", mode);
    if (mode == "on")
      config.synchronous.mode = SyncMode::kOn;
    else if (mode == "strict")
      config.synchronous.mode = SyncMode::kStrict;
    else if (mode != "off")
      r.error("synchronous.mode", "must be \"off\", \"on\" or \"strict\"");
    r.readMillis(*sync, "synchronous", "standalone_after_ms", config.synchronous.standalone_after);
  }
  bool any_exec = false;
  for (const auto& n : config.nodes) any_exec = any_exec || n.exec.kind != HostExecKind::kNone;
  if (any_exec && config.replication.passfile.empty())
    r.error("replication.passfile",
            "is required when a node has ssh or local set (rejoin writes it into "
            "primary_conninfo)");
  if (const json* admin = r.section(root, "admin")) {
    r.rejectUnknown(*admin, "admin", kAdminKeys);
    r.readString(*admin, "admin", "token_file", config.admin.token_file);
    if (!config.admin.token_file.empty()) {
      std::string problem = unsafeSecretFileMode(config.admin.token_file);
      std::optional<std::string> token;
      if (problem.empty()) token = readTokenFile(config.admin.token_file, problem);
      if (token) {
        if (token->size() < 16)
          r.error("admin.token_file", "the token must be at least 16 characters");
        else
          config.admin.token = Secret(*token);
      } else {
        r.error("admin.token_file", problem);
      }
    }
  }
  r.readString(root, "", "state_file", config.state_file);
  if (const json* http = r.section(root, "http")) {
    r.rejectUnknown(*http, "http", kHttpKeys);
    r.readString(*http, "http", "listen_address", config.http.listen_address);
    r.readInt(*http, "http", "port", config.http.port, 1, 65535);
    if (config.http.listen_address.empty()) r.error("http.listen_address", "must not be empty");
    r.readMillis(*http, "http", "request_timeout_ms", config.http.request_timeout);
    r.readMillis(*http, "http", "idle_timeout_ms", config.http.idle_timeout);
    r.readInt(*http, "http", "max_connections", config.http.max_connections, 8, 65536);
    r.readInt(*http, "http", "max_connections_per_address", config.http.max_connections_per_address,
              1, 65536);
    if (config.http.max_connections_per_address > config.http.max_connections)
      r.error("http.max_connections_per_address", "must not exceed http.max_connections");
    if (const json* tls = r.section(*http, "tls")) {
      r.rejectUnknown(*tls, "http.tls", kHttpTlsKeys);
      HttpTlsConfig& t = config.http.tls;
      // All empty is plain HTTP (the chart's default); a certificate needs its key and back.
      r.readString(*tls, "http.tls", "certificate", t.certificate);
      r.readString(*tls, "http.tls", "key", t.key);
      r.readString(*tls, "http.tls", "client_ca", t.client_ca);
      if (t.certificate.empty() && !t.key.empty())
        r.error("http.tls.certificate", "is required with http.tls.key");
      if (!t.certificate.empty() && t.key.empty())
        r.error("http.tls.key", "is required with http.tls.certificate");
      if (t.certificate.empty() && !t.client_ca.empty())
        r.error("http.tls.client_ca", "needs http.tls.certificate and http.tls.key");
      if (!t.certificate.empty()) checkTlsFile(r, "http.tls.certificate", t.certificate, false);
      if (!t.key.empty()) checkTlsFile(r, "http.tls.key", t.key, true);
      if (!t.client_ca.empty()) checkTlsFile(r, "http.tls.client_ca", t.client_ca, false);
    }
  }
  if (const json* log = r.section(root, "log")) {
    r.rejectUnknown(*log, "log", kLogKeys);
    std::string format = "text";
    r.readString(*log, "log", "format", format);
    if (format == "json")
      config.log.format = LogFormat::kJson;
    else if (format != "text")
      r.error("log.format", "must be \"text\" or \"json\"");
    r.readString(*log, "log", "level", config.log.level);
    static const std::set<std::string> kLevels = {"debug", "info", "warn", "error"};
    if (!kLevels.count(config.log.level))
      r.error("log.level", "must be one of debug, info, warn, error");
  }
  readEtcd(r, root, config);
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

LoadResult loadConfigFile(const std::string& path) {
  // A FIFO or a device would block the read (or never end); a configuration is a small file.
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    LoadResult refused;
    if (!S_ISREG(info.st_mode))
      refused.errors.push_back("configuration file " + path +
                               " is not a regular file (a FIFO, a device or a folder)");
    else if (info.st_size > kMaxConfigFileBytes)
      refused.errors.push_back("configuration file " + path + " is " +
                               std::to_string(info.st_size) + " bytes; at most " +
                               std::to_string(kMaxConfigFileBytes) + " are read");
    if (!refused.errors.empty()) return refused;
  }
  std::ifstream file(path);
  if (!file) {
    LoadResult result;
    result.errors.push_back("cannot read configuration file " + path);
    return result;
  }
  std::stringstream text;
  text << file.rdbuf();
  return parseConfig(text.str(), [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  });
}

std::string describeConfig(const Config& config) {
  json nodes = json::array();
  for (const auto& n : config.nodes) {
    json node = {{"name", n.name},     {"host", n.host}, {"port", n.port},
                 {"dbname", n.dbname}, {"user", n.user}, {"sslmode", n.sslmode}};
    if (!n.sslrootcert.empty()) node["sslrootcert"] = n.sslrootcert;
    if (!n.sslcert.empty()) node["sslcert"] = n.sslcert;
    if (!n.sslkey.empty()) node["sslkey"] = n.sslkey;
    if (!n.credentials.password_file.empty()) node["password_file"] = n.credentials.password_file;
    if (!n.credentials.password_env.empty()) node["password_env"] = n.credentials.password_env;
    node["password"] = n.password.empty() ? "(from PGPASSFILE or ~/.pgpass)" : Secret::kRedacted;
    if (!n.data_dir.empty()) node["data_dir"] = n.data_dir;
    node["bin_dir"] = n.bin_dir;
    if (!n.start_command.empty()) node["start_command"] = n.start_command;
    if (!n.replication_host.empty()) node["replication_host"] = n.replication_host;
    if (n.replication_port != 0) node["replication_port"] = n.replication_port;
    if (n.exec.kind == HostExecKind::kSsh)
      node["ssh"] = {{"host", n.exec.ssh.host},
                     {"port", n.exec.ssh.port},
                     {"user", n.exec.ssh.user},
                     {"private_key_file", n.exec.ssh.private_key_file},
                     {"known_hosts_file", n.exec.ssh.known_hosts_file},
                     {"connect_timeout_ms", n.exec.ssh.connect_timeout.count()}};
    else if (n.exec.kind == HostExecKind::kLocal)
      node["local"] = {{"run_as", n.exec.run_as}};
    nodes.push_back(node);
  }
  const auto& p = config.probe;
  const auto& f = config.failover;
  json out = {
      {"cluster_name", config.cluster_name},
      {"nodes", nodes},
      {"probe",
       {{"interval_ms", p.interval.count()},
        {"connect_timeout_ms", p.connect_timeout.count()},
        {"query_timeout_ms", p.query_timeout.count()},
        {"heartbeat", p.heartbeat},
        {"heartbeat_table", p.heartbeat_table},
        {"icmp", p.icmp},
        {"primary_lease_ms", p.primary_lease.count()}}},
      {"failover",
       {{"confirmed_down_timeout_ms", f.confirmed_down_timeout.count()},
        {"unresponsive_timeout_ms", f.unresponsive_timeout.count()},
        {"host_lost_timeout_ms", f.host_lost_timeout.count()},
        {"starting_up_grace_ms", f.starting_up_grace.count()},
        {"replica_silence_ms", f.replica_silence.count()},
        {"max_lag_bytes", f.max_lag_bytes},
        {"promote_timeout_ms", f.promote_timeout.count()},
        {"promote_attempts", f.promote_attempts},
        {"rejoin", f.rejoin},
        {"rejoin_grace_ms", f.rejoin_grace.count()},
        {"rejoin_retry_interval_ms", f.rejoin_retry_interval.count()},
        {"rejoin_timeout_ms", f.rejoin_timeout.count()},
        {"rewind", f.rewind},
        {"switchover_timeout_ms", f.switchover_timeout.count()},
        {"failback", f.failback},
        {"preferred_node", f.preferred_node},
        {"failback_delay_ms", f.failback_delay.count()},
        {"fencing_hook", f.fencing_hook},
        {"fencing_hook_timeout_ms", f.fencing_hook_timeout.count()}}},
      {"replication",
       {{"user", config.replication.user},
        {"passfile", config.replication.passfile},
        {"sslmode", config.replication.sslmode},
        {"sslrootcert", config.replication.sslrootcert},
        {"slots", config.replication.slots},
        {"slot_drop_after_ms", config.replication.slot_drop_after.count()}}},
      {"synchronous",
       {{"mode", config.synchronous.mode == SyncMode::kOn
                     ? "on"
                     : (config.synchronous.mode == SyncMode::kStrict ? "strict" : "off")},
        {"standalone_after_ms", config.synchronous.standalone_after.count()}}},
      {"admin",
       {{"token_file", config.admin.token_file},
        {"token",
         config.admin.token.empty() ? "(none: admin endpoints disabled)" : Secret::kRedacted}}},
      {"state_file", config.state_file},
      {"http",
       {{"listen_address", config.http.listen_address},
        {"port", config.http.port},
        {"request_timeout_ms", config.http.request_timeout.count()},
        {"idle_timeout_ms", config.http.idle_timeout.count()},
        {"max_connections", config.http.max_connections},
        {"max_connections_per_address", config.http.max_connections_per_address},
        {"tls",
         {{"certificate", config.http.tls.certificate},
          {"key", config.http.tls.key},
          {"client_ca", config.http.tls.client_ca}}}}},
      {"log",
       {{"format", config.log.format == LogFormat::kJson ? "json" : "text"},
        {"level", config.log.level}}},
  };
  if (config.etcd.enabled) {
    const auto& e = config.etcd;
    out["etcd"] = {{"name", e.name},
                   {"endpoints", e.endpoints},
                   {"prefix", e.prefix},
                   {"api_url", e.api_url.empty() ? "(from the host's address)" : e.api_url},
                   {"lease_ttl_ms", e.lease_ttl.count()},
                   {"request_timeout_ms", e.request_timeout.count()},
                   {"tls",
                    {{"ca_file", e.tls.ca_file},
                     {"cert_file", e.tls.cert_file},
                     {"key_file", e.tls.key_file}}},
                   {"user", e.user},
                   {"password_file", e.password_file},
                   {"password", e.password.empty() ? "(none)" : Secret::kRedacted}};
  }
  return out.dump(2);
}

bool verifiesServer(const std::string& sslmode) {
  return sslmode == "verify-ca" || sslmode == "verify-full";
}

std::vector<std::string> tlsWarnings(const Config& config) {
  std::vector<std::string> warnings;
  for (std::size_t i = 0; i < config.nodes.size(); ++i) {
    const auto& node = config.nodes[i];
    if (node.password.empty() || verifiesServer(node.sslmode)) continue;
    warnings.push_back("nodes[" + std::to_string(i) + "] '" + node.name +
                       "': its password goes to whatever answers at " + node.host + ":" +
                       std::to_string(node.port) + " (sslmode " + node.sslmode +
                       " does not verify the server); set sslmode verify-full and sslrootcert");
  }
  bool rejoins = false;
  for (const auto& node : config.nodes) rejoins = rejoins || node.exec.kind != HostExecKind::kNone;
  if (rejoins && config.failover.rejoin && !config.replication.passfile.empty() &&
      !verifiesServer(config.replication.sslmode))
    warnings.push_back(
        "replication: a node pgfailover rejoins sends the replication password to "
        "whatever answers at the primary's address (replication.sslmode " +
        config.replication.sslmode +
        " does not verify the server); set replication.sslmode verify-full and "
        "replication.sslrootcert");
  return warnings;
}

std::string replicationSlotName(const std::string& node_name) {
  std::string name = "pgfailover_";
  for (char c : node_name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    name += (std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '_';
  }
  return name.substr(0, 63);
}

std::vector<std::string> knownKeys() {
  std::vector<std::string> keys;
  for (const auto& k : kTopKeys) keys.push_back(k);
  for (const auto& k : kNodeKeys) keys.push_back("nodes[]." + k);
  for (const auto& k : kProbeKeys) keys.push_back("probe." + k);
  for (const auto& k : kFailoverKeys) keys.push_back("failover." + k);
  for (const auto& k : kHttpKeys)
    if (k != "tls") keys.push_back("http." + k);
  for (const auto& k : kHttpTlsKeys) keys.push_back("http.tls." + k);
  for (const auto& k : kLogKeys) keys.push_back("log." + k);
  for (const auto& k : kSshKeys) keys.push_back("nodes[].ssh." + k);
  for (const auto& k : kLocalKeys) keys.push_back("nodes[].local." + k);
  for (const auto& k : kReplicationKeys) keys.push_back("replication." + k);
  for (const auto& k : kAdminKeys) keys.push_back("admin." + k);
  for (const auto& k : kSynchronousKeys) keys.push_back("synchronous." + k);
  for (const auto& k : kEtcdKeys) keys.push_back("etcd." + k);
  for (const auto& k : kEtcdTlsKeys) keys.push_back("etcd.tls." + k);
  return keys;
}

}  // namespace pgfailover::config
