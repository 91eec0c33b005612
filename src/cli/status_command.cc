#include "cli/status_command.h"

#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <ostream>
#include <sstream>

namespace pgfailover::cli {

namespace {

using Json = nlohmann::json;

constexpr std::size_t kMaxErrorWidth = 60;

std::string text(const Json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

std::optional<double> number(const Json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::optional<bool> boolean(const Json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

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

std::string truncated(std::string value, std::size_t width) {
  std::replace(value.begin(), value.end(), '\n', ' ');
  if (value.size() <= width) return value;
  return value.substr(0, width - 3) + "...";
}

class Table {
 public:
  Table(std::vector<std::string> headers, std::vector<bool> right_aligned)
      : headers_(std::move(headers)), right_(std::move(right_aligned)) {}

  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  std::string render() const {
    std::vector<std::size_t> widths(headers_.size());
    for (std::size_t i = 0; i < headers_.size(); ++i) widths[i] = headers_[i].size();
    for (const auto& row : rows_)
      for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    std::string rule = "+";
    for (auto width : widths) rule += std::string(width + 2, '-') + "+";
    rule += "\n";
    std::string out = rule + line(headers_, widths, false) + rule;
    for (const auto& row : rows_) out += line(row, widths, true);
    return out + rule;
  }

 private:
  std::string line(const std::vector<std::string>& cells, const std::vector<std::size_t>& widths,
                   bool align) const {
    std::string out = "|";
    for (std::size_t i = 0; i < widths.size(); ++i) {
      const std::string& cell = i < cells.size() ? cells[i] : std::string();
      const std::string pad(widths[i] - cell.size(), ' ');
      out += " " + (align && right_[i] ? pad + cell : cell + pad) + " |";
    }
    return out + "\n";
  }

  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// Splits "http://host:port/prefix" into the part httplib's client takes and a path prefix, so
// pgfailover behind a reverse proxy path still works.
std::pair<std::string, std::string> splitUrl(std::string url) {
  if (url.find("://") == std::string::npos) url = "http://" + url;
  const std::size_t authority = url.find("://") + 3;
  const std::size_t slash = url.find('/', authority);
  if (slash == std::string::npos) return {url, ""};
  std::string prefix = url.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return {url.substr(0, slash), prefix};
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
  const auto [base, prefix] = splitUrl(url);
  const std::string target = base + prefix + "/status";
  httplib::Client client(base);
  if (!client.is_valid()) {
    err << "pgfailover status: '" << url << "' is not a valid URL\n";
    return 1;
  }
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  client.set_write_timeout(5, 0);
  const httplib::Result result = client.Get(prefix + "/status");
  if (!result) {
    err << "pgfailover status: cannot reach " << target << ": "
        << httplib::to_string(result.error()) << "\n";
    return 1;
  }
  if (result->status != 200) {
    err << "pgfailover status: " << target << " answered HTTP " << result->status << ": "
        << truncated(result->body, 200) << "\n";
    return 1;
  }
  const Json status = Json::parse(result->body, nullptr, /*allow_exceptions=*/false);
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
