#include "config/config.h"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "common/lsn.h"

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
    long value = it->get<long>();
    if (value < min || value > max)
      return error(join(prefix, key), "must be between " + std::to_string(min) + " and " +
                                          std::to_string(max) + ", got " + std::to_string(value));
    out = static_cast<int>(value);
  }

  // Durations are integers in milliseconds, strictly positive.
  void readMillis(const json& object, const std::string& prefix, const std::string& key,
                  Millis& out) {
    auto it = object.find(key);
    if (it == object.end()) return;
    if (!it->is_number_integer())
      return error(join(prefix, key), "must be an integer number of milliseconds");
    long long value = it->get<long long>();
    if (value <= 0)
      return error(join(prefix, key),
                   "must be a positive duration in milliseconds, got " + std::to_string(value));
    if (value > 24LL * 3600 * 1000) return error(join(prefix, key), "must be at most 1 day");
    out = Millis{value};
  }

  void readBytes(const json& object, const std::string& prefix, const std::string& key,
                 std::uint64_t& out) {
    auto it = object.find(key);
    if (it == object.end()) return;
    if (it->is_number_integer()) {
      if (it->get<long long>() < 0) return error(join(prefix, key), "must not be negative");
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

const std::set<std::string> kTopKeys = {"cluster_name", "nodes", "probe",
                                        "failover",     "http",  "log"};
const std::set<std::string> kNodeKeys = {"name", "host",          "port",         "dbname",
                                         "user", "password_file", "password_env", "sslmode"};
const std::set<std::string> kProbeKeys = {"interval_ms", "connect_timeout_ms", "query_timeout_ms",
                                          "heartbeat", "heartbeat_table"};
const std::set<std::string> kFailoverKeys = {
    "confirmed_down_timeout_ms", "unresponsive_timeout_ms", "starting_up_grace_ms",
    "replica_silence_ms",        "max_lag_bytes",           "promote_timeout_ms",
    "promote_attempts"};
const std::set<std::string> kHttpKeys = {"listen_address", "port"};
const std::set<std::string> kLogKeys = {"format", "level"};

std::optional<std::string> readPasswordFile(const std::string& path, std::string& problem) {
  std::ifstream file(path);
  if (!file) {
    problem = "cannot read password file " + path;
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
  r.readString(value, prefix, "password_file", node.credentials.password_file);
  r.readString(value, prefix, "password_env", node.credentials.password_env);

  static const std::regex kNamePattern("[A-Za-z0-9_.-]{1,63}");
  if (!node.name.empty() && !std::regex_match(node.name, kNamePattern))
    r.error(prefix + ".name", "must be 1-63 characters of A-Z a-z 0-9 _ . - (it appears in URLs)");
  static const std::set<std::string> kSslModes = {"disable", "allow",     "prefer",
                                                  "require", "verify-ca", "verify-full"};
  if (!kSslModes.count(node.sslmode))
    r.error(prefix + ".sslmode",
            "must be one of disable, allow, prefer, require, verify-ca, "
            "verify-full");
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

}  // namespace

LoadResult parseConfig(
    const std::string& json_text,
    const std::function<std::optional<std::string>(const std::string&)>& environment) {
  LoadResult result;
  json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
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
    for (std::size_t i = 0; i < config.nodes.size(); ++i) {
      const auto& node = config.nodes[i];
      const std::string key = "nodes[" + std::to_string(i) + "]";
      if (!node.name.empty() && !names.insert(node.name).second)
        r.error(key + ".name", "duplicate node name '" + node.name + "'");
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
    static const std::regex kTable("[a-z_][a-z0-9_]{0,62}\\.[a-z_][a-z0-9_]{0,62}");
    if (!std::regex_match(config.probe.heartbeat_table, kTable))
      r.error("probe.heartbeat_table", "must be schema.table in lower case letters, digits and _");
  }
  if (const json* failover = r.section(root, "failover")) {
    auto& f = config.failover;
    r.rejectUnknown(*failover, "failover", kFailoverKeys);
    r.readMillis(*failover, "failover", "confirmed_down_timeout_ms", f.confirmed_down_timeout);
    r.readMillis(*failover, "failover", "unresponsive_timeout_ms", f.unresponsive_timeout);
    r.readMillis(*failover, "failover", "starting_up_grace_ms", f.starting_up_grace);
    r.readMillis(*failover, "failover", "replica_silence_ms", f.replica_silence);
    r.readBytes(*failover, "failover", "max_lag_bytes", f.max_lag_bytes);
    r.readMillis(*failover, "failover", "promote_timeout_ms", f.promote_timeout);
    r.readInt(*failover, "failover", "promote_attempts", f.promote_attempts, 1, 100);
    if (f.promote_timeout < Millis{1000})
      r.error("failover.promote_timeout_ms",
              "must be at least 1000 (pg_promote waits whole seconds)");
  }
  if (const json* http = r.section(root, "http")) {
    r.rejectUnknown(*http, "http", kHttpKeys);
    r.readString(*http, "http", "listen_address", config.http.listen_address);
    r.readInt(*http, "http", "port", config.http.port, 0, 65535);
    if (config.http.listen_address.empty()) r.error("http.listen_address", "must not be empty");
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
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

LoadResult loadConfigFile(const std::string& path) {
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
    if (!n.credentials.password_file.empty()) node["password_file"] = n.credentials.password_file;
    if (!n.credentials.password_env.empty()) node["password_env"] = n.credentials.password_env;
    node["password"] = n.password.empty() ? "(from PGPASSFILE or ~/.pgpass)" : Secret::kRedacted;
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
        {"heartbeat_table", p.heartbeat_table}}},
      {"failover",
       {{"confirmed_down_timeout_ms", f.confirmed_down_timeout.count()},
        {"unresponsive_timeout_ms", f.unresponsive_timeout.count()},
        {"starting_up_grace_ms", f.starting_up_grace.count()},
        {"replica_silence_ms", f.replica_silence.count()},
        {"max_lag_bytes", f.max_lag_bytes},
        {"promote_timeout_ms", f.promote_timeout.count()},
        {"promote_attempts", f.promote_attempts}}},
      {"http", {{"listen_address", config.http.listen_address}, {"port", config.http.port}}},
      {"log",
       {{"format", config.log.format == LogFormat::kJson ? "json" : "text"},
        {"level", config.log.level}}},
  };
  return out.dump(2);
}

std::vector<std::string> knownKeys() {
  std::vector<std::string> keys;
  for (const auto& k : kTopKeys) keys.push_back(k);
  for (const auto& k : kNodeKeys) keys.push_back("nodes[]." + k);
  for (const auto& k : kProbeKeys) keys.push_back("probe." + k);
  for (const auto& k : kFailoverKeys) keys.push_back("failover." + k);
  for (const auto& k : kHttpKeys) keys.push_back("http." + k);
  for (const auto& k : kLogKeys) keys.push_back("log." + k);
  return keys;
}

}  // namespace pgfailover::config
