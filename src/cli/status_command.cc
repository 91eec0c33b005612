#include "cli/status_command.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <ostream>
#include <sstream>

#include "cli/api_client.h"
#include "cli/json_fields.h"
#include "cli/table.h"

namespace pgfailover::cli {

namespace {

using Json = nlohmann::json;

constexpr std::size_t kMaxErrorWidth = 60;
constexpr const char* kStatusPath = "/status";

const Json& member(const Json& object, const char* key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string fixed(std::optional<double> value, const char* format = "%.1f") {
  if (!value) return {};
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, format, *value);
  return buffer;
}

std::string secondsFromMillis(std::optional<double> millis) {
  return millis ? fixed(*millis / 1000.0) + " s" : "?";
}

// What the node is doing, in the words `patronictl list` uses where they fit.
std::string nodeState(const Json& node) {
  // A running rejoin explains everything else about the node (stopped, unreachable...).
  if (const Json& rejoin = member(node, "rejoin"); boolean(rejoin, "running") == true)
    return "rejoining (" + text(rejoin, "step") + ")";
  const std::string failure = text(node, "failure");
  if (!member(node, "last_probe").is_object()) return "not probed";
  if (boolean(node, "reachable") != true)
    return failure == "starting_up" ? "starting up" : "unreachable (" + failure + ")";
  if (failure == "cannot_commit") return "cannot commit";
  if (boolean(node, "in_recovery") == true) {
    const std::string receiver = text(member(node, "wal_receiver"), "status");
    return receiver.empty() ? "recovering, no WAL receiver" : receiver;
  }
  return boolean(node, "read_only") == true ? "running, read-only" : "running";
}

// With etcd (docs/coordination.md): every instance by name, which one is asked and which acts,
// e.g. "Instances: pgf-a (this one), pgf-b (acting, term 41), pgf-c". Empty without etcd.
std::string instancesLine(const Json& status) {
  const Json& view = member(status, "coordination");
  if (boolean(view, "enabled") != true) return {};
  const std::string here = text(status, "instance");
  const std::string acting = text(view, "acting");
  std::vector<std::string> names;
  if (const Json& listed = member(view, "instances"); listed.is_array())
    for (const auto& name : listed)
      if (name.is_string()) names.push_back(name.get<std::string>());
  for (const std::string& name : {here, acting})
    if (!name.empty() && std::find(names.begin(), names.end(), name) == names.end())
      names.push_back(name);
  std::string line = "Instances:";
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::vector<std::string> notes;
    if (names[i] == here) notes.push_back("this one");
    if (names[i] == acting) {
      std::string note = "acting";
      if (auto term = number(view, "term")) note += ", term " + fixed(term, "%.0f");
      notes.push_back(note);
    }
    line += (i == 0 ? " " : ", ") + names[i];
    for (std::size_t n = 0; n < notes.size(); ++n) line += (n == 0 ? " (" : ", ") + notes[n];
    if (!notes.empty()) line += ")";
  }
  if (acting.empty()) line += "; no instance acts";
  if (boolean(view, "etcd_reachable") == false) line += "; etcd unreachable from this one";
  return line + "\n";
}

constexpr const char* kUsage =
    "usage: pgfailover status [--url URL] [--json]\n"
    "  --url URL   the pgfailover HTTP API (default http://127.0.0.1:8008)\n"
    "  --json      print the raw /status document instead of a table\n";

}  // namespace

std::string renderStatusTable(const Json& status) {
  std::ostringstream out;
  out << "Cluster: " << text(status, "cluster_name") << " (state: " << text(status, "state");
  const std::string primary = text(status, "primary");
  out << ", primary: " << (primary.empty() ? "none" : primary);
  if (auto tick = number(status, "tick")) out << ", tick " << fixed(tick, "%.0f");
  out << ")\n";
  out << instancesLine(status);
  if (const std::string reason = text(status, "reason"); !reason.empty())
    out << "Reason: " << reason << "\n";
  if (const Json& timeout = member(status, "timeout"); timeout.is_object()) {
    out << "Timeout: " << text(timeout, "kind") << ", "
        << secondsFromMillis(number(timeout, "elapsed_ms")) << " of "
        << secondsFromMillis(number(timeout, "total_ms")) << " elapsed, "
        << secondsFromMillis(number(timeout, "remaining_ms")) << " left\n";
  }
  if (const std::string veto = text(status, "veto"); !veto.empty())
    out << "Failover vetoed: " << veto << "\n";
  if (boolean(status, "split_brain") == true)
    out << "SPLIT BRAIN: more than one node accepts writes\n";
  if (const Json& last = member(status, "last_failover"); last.is_object()) {
    out << "Last failover: " << text(last, "from") << " -> " << text(last, "to");
    if (const std::string at = text(last, "completed_at"); !at.empty()) out << " at " << at;
    out << " (" << secondsFromMillis(number(last, "duration_ms")) << ")\n";
  }

  Table table({"Member", "Host", "Role", "State", "TL", "Lag (MB)", "Lag (s)", "Error"},
              {false, false, false, false, true, true, true, false});
  const Json& nodes = member(status, "nodes");
  if (nodes.is_array()) {
    for (const auto& node : nodes) {
      std::string host = text(node, "host");
      if (auto port = number(node, "port")) host += ":" + fixed(port, "%.0f");
      std::optional<double> lag_mb;
      if (auto bytes = number(node, "lag_bytes")) lag_mb = *bytes / (1024.0 * 1024.0);
      table.add({text(node, "name"), host, text(node, "role"), nodeState(node),
                 fixed(number(node, "timeline"), "%.0f"), fixed(lag_mb),
                 fixed(number(node, "lag_seconds")),
                 truncated(text(node, "error"), kMaxErrorWidth)});
    }
  }
  out << table.render();
  return out.str();
}

int runStatusCommand(const std::string& url, bool json, std::ostream& out, std::ostream& err) {
  ApiClient client(url);
  if (!client.valid()) {
    err << "pgfailover status: '" << url << "' is not a valid URL\n";
    return 1;
  }
  const std::string target = client.urlOf(kStatusPath);
  const ApiResponse result = client.get(kStatusPath);
  if (!result.answered()) {
    err << "pgfailover status: cannot reach " << target << ": " << result.error << "\n";
    return 1;
  }
  if (result.status != 200) {
    err << "pgfailover status: " << target << " answered HTTP " << result.status << ": "
        << truncated(result.body, 200) << "\n";
    return 1;
  }
  const Json status = Json::parse(result.body, nullptr, /*allow_exceptions=*/false);
  if (status.is_discarded() || !status.is_object()) {
    err << "pgfailover status: " << target << " did not answer with a JSON object\n";
    return 1;
  }
  if (json) {
    out << status.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    out << renderStatusTable(status);
  }
  return 0;
}

int statusCommandMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string url = kDefaultStatusUrl;
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--url") {
      if (i + 1 >= args.size()) {
        err << "pgfailover status: --url needs a value\n" << kUsage;
        return 2;
      }
      url = args[++i];
    } else if (arg.rfind("--url=", 0) == 0) {
      url = arg.substr(6);
    } else if (arg == "--help" || arg == "-h") {
      out << kUsage;
      return 0;
    } else {
      err << "pgfailover status: unknown argument '" << arg << "'\n" << kUsage;
      return 2;
    }
  }
  return runStatusCommand(url, json, out, err);
}

}  // namespace pgfailover::cli
