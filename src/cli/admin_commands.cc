#include "cli/admin_commands.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <ostream>
#include <sstream>
#include <thread>

#include "cli/api_client.h"
#include "cli/json_fields.h"
#include "cli/status_command.h"
#include "cli/table.h"
#include "common/secret.h"
#include "common/secret_file.h"

namespace pgfailover::cli {

namespace {

using Json = nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kDefaultWaitSeconds = 60;
constexpr std::size_t kMaxReasonWidth = 100;
constexpr const char* kHistoryPath = "/history";

enum class Kind { kSwitchover, kFailover };

const char* kSwitchoverUsage =
    "usage: pgfailover switchover [--url URL] [--to NODE] [--token-file FILE] [--dry-run]\n"
    "                             [--wait SECONDS]\n"
    "  --url URL          the pgfailover HTTP API (default http://127.0.0.1:8008)\n"
    "  --to NODE          the replica to promote (default: the best streaming replica)\n"
    "  --token-file FILE  a file holding the admin token (default: $PGFAILOVER_TOKEN)\n"
    "  --dry-run          check and print what would happen; change nothing\n"
    "  --wait SECONDS     follow GET /history until the outcome (default 60; 0: do not wait)\n"
    "Exit status: 0 succeeded, 1 refused, failed, timed out or unreachable, 2 bad usage.\n";

const char* kFailoverUsage =
    "usage: pgfailover failover [--url URL] [--to NODE] [--force] [--token-file FILE]\n"
    "                           [--dry-run] [--wait SECONDS]\n"
    "  --url URL          the pgfailover HTTP API (default http://127.0.0.1:8008)\n"
    "  --to NODE          the replica to promote (default: the most advanced reachable replica)\n"
    "  --force            fail over even though the primary looks healthy (it is fenced first;\n"
    "                     writes it took that the replica has not received are lost)\n"
    "  --token-file FILE  a file holding the admin token (default: $PGFAILOVER_TOKEN)\n"
    "  --dry-run          check and print what would happen; change nothing\n"
    "  --wait SECONDS     follow GET /history until the outcome (default 60; 0: do not wait)\n"
    "Exit status: 0 succeeded, 1 refused, failed, timed out or unreachable, 2 bad usage.\n";

const char* kHistoryUsage =
    "usage: pgfailover history [--url URL] [--limit N] [--json]\n"
    "  --url URL   the pgfailover HTTP API (default http://127.0.0.1:8008)\n"
    "  --limit N   only the newest N events\n"
    "  --json      print the raw /history document instead of a table\n";

const char* commandName(Kind kind) {
  return kind == Kind::kSwitchover ? "switchover" : "failover";
}

std::string took(const Json& event) {
  const auto millis = number(event, "duration_ms");
  if (!millis || *millis <= 0) return {};
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", *millis / 1000.0);
  return buffer;
}

// One argument, as "--name VALUE" or "--name=VALUE".
class ArgReader {
 public:
  ArgReader(const std::vector<std::string>& args, std::ostream& err, std::string prefix,
            const char* usage)
      : args_(args), err_(err), prefix_(std::move(prefix)), usage_(usage) {}

  bool next() {
    if (++index_ >= args_.size()) return false;
    const std::string& arg = args_[index_];
    const auto equals = arg.find('=');
    inline_value_ = arg.rfind("--", 0) == 0 && equals != std::string::npos;
    name_ = inline_value_ ? arg.substr(0, equals) : arg;
    value_ = inline_value_ ? arg.substr(equals + 1) : std::string();
    return true;
  }
  const std::string& name() const { return name_; }
  bool hasInlineValue() const { return inline_value_; }

  // The option's value: after '=', or the next argument. False (and a message) when missing.
  bool value(std::string& out) {
    if (!inline_value_) {
      if (index_ + 1 >= args_.size()) return usage(name_ + " needs a value");
      value_ = args_[++index_];
    }
    if (value_.empty()) return usage(name_ + " needs a non-empty value");
    out = value_;
    return true;
  }

  bool usage(const std::string& problem) {
    err_ << prefix_ << problem << "\n" << usage_;
    return false;
  }
  // Names an unknown argument without its value: "--tokn=SECRET" must not echo SECRET.
  bool unknown() { return usage("unknown argument '" + name_ + (inline_value_ ? "=...'" : "'")); }

 private:
  const std::vector<std::string>& args_;
  std::ostream& err_;
  std::string prefix_;
  const char* usage_;
  std::size_t index_ = static_cast<std::size_t>(-1);
  std::string name_;
  std::string value_;
  bool inline_value_ = false;
};

std::optional<int> parseWholeNumber(const std::string& text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

struct AdminArgs {
  std::string url = kDefaultStatusUrl;
  std::optional<std::string> to;
  std::string token_file;
  bool dry_run = false;
  bool force = false;
  int wait_seconds = kDefaultWaitSeconds;
  bool help = false;
};

bool parseAdminArgs(Kind kind, const std::vector<std::string>& args, AdminArgs& parsed,
                    std::ostream& err) {
  const char* usage = kind == Kind::kSwitchover ? kSwitchoverUsage : kFailoverUsage;
  ArgReader reader(args, err, std::string("pgfailover ") + commandName(kind) + ": ", usage);
  while (reader.next()) {
    const std::string& name = reader.name();
    std::string value;
    const bool flag = !reader.hasInlineValue();
    if (name == "--url") {
      if (!reader.value(parsed.url)) return false;
    } else if (name == "--to") {
      if (!reader.value(value)) return false;
      parsed.to = value;
    } else if (name == "--token-file") {
      if (!reader.value(parsed.token_file)) return false;
    } else if (name == "--wait") {
      if (!reader.value(value)) return false;
      const auto seconds = parseWholeNumber(value);
      if (!seconds)
        return reader.usage("--wait takes a whole number of seconds (0: do not wait), not '" +
                            value + "'");
      parsed.wait_seconds = *seconds;
    } else if (name == "--dry-run" && flag) {
      parsed.dry_run = true;
    } else if (name == "--force" && flag && kind == Kind::kFailover) {
      parsed.force = true;
    } else if ((name == "--help" || name == "-h") && flag) {
      parsed.help = true;
    } else if (name == "--token") {
      return reader.usage(
          "the token is never taken from the command line (it would show in ps and in shell "
          "history); use --token-file FILE or the environment variable PGFAILOVER_TOKEN");
    } else {
      return reader.unknown();
    }
  }
  return true;
}

// The admin token from --token-file or $PGFAILOVER_TOKEN, read by the daemon's own rules
// (common/secret_file.h). The messages name where the token was looked for, never what it is.
std::optional<Secret> loadToken(const AdminArgs& args, const AdminCommandOptions& options,
                                const std::string& prefix, std::ostream& err) {
  std::string problem;
  std::optional<std::string> token;
  if (!args.token_file.empty()) {
    token = readTokenFile(args.token_file, problem);
    if (!token) {
      err << prefix << "the token file " << problem << "\n";
      return std::nullopt;
    }
  } else if (auto value = options.environment ? options.environment(kTokenEnvironmentVariable)
                                              : std::nullopt) {
    token = parseToken(*value, problem);
    if (!token) {
      err << prefix << "$" << kTokenEnvironmentVariable << " " << problem << "\n";
      return std::nullopt;
    }
  } else {
    err << prefix << "no admin token: pass --token-file FILE or set " << kTokenEnvironmentVariable
        << "\n";
    return std::nullopt;
  }
  return Secret(std::move(*token));
}

// GET /history as a list of events; nullopt with `error` set when that fails.
std::optional<std::vector<Json>> fetchHistory(const ApiClient& client, const std::string& path,
                                              std::string& error) {
  const ApiResponse answer = client.get(path);
  if (!answer.answered()) {
    error = "cannot reach " + client.urlOf(path) + ": " + answer.error;
    return std::nullopt;
  }
  if (answer.status != 200) {
    error = client.urlOf(path) + " answered HTTP " + std::to_string(answer.status) + ": " +
            truncated(answer.body, 200);
    return std::nullopt;
  }
  Json events = Json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  if (events.is_discarded() || !events.is_array()) {
    error = client.urlOf(path) + " did not answer with a JSON array";
    return std::nullopt;
  }
  return std::vector<Json>(events.begin(), events.end());
}

// The events recorded after `baseline` (the history read before the request was sent): those
// after the baseline's newest event, or, when that one has been rotated out of the bounded
// history, those stamped later than it.
std::vector<Json> newEvents(const std::vector<Json>& baseline, const std::vector<Json>& current) {
  if (baseline.empty()) return current;
  const Json& newest = baseline.back();
  for (std::size_t j = current.size(); j-- > 0;)
    if (current[j] == newest)
      return {current.begin() + static_cast<std::ptrdiff_t>(j) + 1, current.end()};
  const double newest_ms = number(newest, "at_ms").value_or(0);
  std::vector<Json> later;
  for (const auto& event : current)
    if (number(event, "at_ms").value_or(0) > newest_ms) later.push_back(event);
  return later;
}

std::string describeEvent(const Json& event) {
  std::string line = text(event, "at") + " " + text(event, "kind") + " " + text(event, "result");
  const std::string from = text(event, "from");
  const std::string to = text(event, "to");
  if (!from.empty() || !to.empty())
    line += " (" + from + " -> " + to + ")";
  else if (const std::string node = text(event, "node"); !node.empty())
    line += " on " + node;
  if (const std::string reason = text(event, "reason"); !reason.empty()) line += ": " + reason;
  if (const std::string duration = took(event); !duration.empty()) line += ", took " + duration;
  return line;
}

// Whether `event` is about this request: its switchover or failover towards `to`, or the
// decision refusing a request of this kind.
bool concerns(Kind kind, const std::string& to, std::optional<double> request_id,
              const Json& event) {
  // A pgfailover that tags its events with the request's id answers exactly.
  if (const auto tagged = number(event, "request_id"); tagged && request_id)
    return *tagged == *request_id;
  const std::string event_kind = text(event, "kind");
  if (event_kind == "request")
    return text(event, "reason").rfind(std::string(commandName(kind)) + " refused", 0) == 0;
  if (event_kind != "switchover" && event_kind != "failover") return false;
  if (kind == Kind::kFailover && event_kind != "failover") return false;
  return text(event, "node") == to || text(event, "to") == to;
}

// The outcome an event records: true succeeded, false failed or refused, nullopt still running.
std::optional<bool> outcome(const Json& event) {
  const std::string result = text(event, "result");
  if (result == "succeeded") return true;
  if (result == "failed" || result == "refused") return false;
  return std::nullopt;
}

int follow(Kind kind, const ApiClient& client, const std::vector<Json>& baseline,
           const std::string& to, std::optional<double> request_id, int wait_seconds,
           const AdminCommandOptions& options, const std::string& prefix, std::ostream& out,
           std::ostream& err) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  std::size_t seen = 0;
  std::string last_error;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(options.poll_interval, deadline - now));
    auto history = fetchHistory(client, kHistoryPath, last_error);
    if (!history) continue;  // the API may blink; keep trying until the deadline
    last_error.clear();
    const std::vector<Json> fresh = newEvents(baseline, *history);
    for (std::size_t i = seen; i < fresh.size(); ++i) {
      const Json& event = fresh[i];
      if (!concerns(kind, to, request_id, event)) continue;
      out << "  " << describeEvent(event) << "\n";
      const auto result = outcome(event);
      if (!result) continue;
      if (*result) {
        out << commandName(kind) << " succeeded: '" << to << "' is the primary\n";
        return kExitOk;
      }
      err << prefix << text(event, "result") << ": " << text(event, "reason") << "\n";
      return kExitFailure;
    }
    seen = std::max(seen, fresh.size());
  }
  err << prefix << "no outcome within " << wait_seconds << " s";
  if (!last_error.empty()) err << " (" << last_error << ")";
  err << "; it may still be running: see pgfailover history\n";
  return kExitFailure;
}

bool isRedirect(int status) {
  return status == 307 || status == 308;
}

// The client for the acting instance that a 307 from another instance names, or nullopt after
// saying why it is not followed. The admin token goes along only over the scheme the operator
// chose: an https URL was chosen so that the token never crosses the network in the clear, and
// a redirect (whose target comes from etcd) must not undo that; an http URL redirected to https
// is not followed either, so where the token may go is always what --url says.
std::optional<ApiClient> actingClient(const ApiClient& client, const std::string& path,
                                      const ApiResponse& answer, const std::string& prefix,
                                      std::ostream& out, std::ostream& err) {
  const Json reply = Json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  const std::string& location = answer.location;
  const std::string from = client.urlOf(path);
  if (location.empty()) {
    err << prefix << from << " answered HTTP " << answer.status << " without a Location\n";
    return std::nullopt;
  }
  const std::string scheme = location.substr(0, location.find("://"));
  if (scheme.size() == location.size() || scheme != client.scheme()) {
    err << prefix << from << " does not act and redirected to " << location << ", which is not "
        << client.scheme()
        << "://: the admin token is only sent over the scheme of --url; rerun with --url "
           "pointing at the acting instance\n";
    return std::nullopt;
  }
  // The acting instance's API is the Location without the path this command sent.
  if (location.size() <= path.size() ||
      location.compare(location.size() - path.size(), path.size(), path) != 0) {
    err << prefix << from << " redirected to " << location << ", not to a " << path
        << " endpoint\n";
    return std::nullopt;
  }
  ApiClient acting(location.substr(0, location.size() - path.size()));
  if (!acting.valid()) {
    err << prefix << from << " redirected to " << location << ", which is not a valid URL\n";
    return std::nullopt;
  }
  const std::string instance = text(reply, "instance");
  const std::string name = text(reply, "acting");
  out << (instance.empty() ? from : "instance '" + instance + "'") << " does not act; sent to "
      << (name.empty() ? std::string("the acting instance") : "the acting instance '" + name + "'")
      << " at " << location << "\n";
  return acting;
}

int runAdminCommand(Kind kind, const std::vector<std::string>& args, std::ostream& out,
                    std::ostream& err, const AdminCommandOptions& options) {
  const std::string command = commandName(kind);
  const std::string prefix = "pgfailover " + command + ": ";
  AdminArgs parsed;
  if (!parseAdminArgs(kind, args, parsed, err)) return kExitUsage;
  if (parsed.help) {
    out << (kind == Kind::kSwitchover ? kSwitchoverUsage : kFailoverUsage);
    return kExitOk;
  }
  const auto token = loadToken(parsed, options, prefix, err);
  if (!token) return kExitUsage;
  ApiClient client(parsed.url);
  if (!client.valid()) {
    err << prefix << "'" << parsed.url << "' is not a valid URL\n";
    return kExitUsage;
  }

  // The history before the request, so the wait recognises the events that follow it.
  const bool waiting = !parsed.dry_run && parsed.wait_seconds > 0;
  std::vector<Json> baseline;
  // From the instance that will carry the request out (re-read after a redirect).
  auto readBaseline = [&]() {
    if (!waiting) return true;
    std::string error;
    auto history = fetchHistory(client, kHistoryPath, error);
    if (!history) {
      err << prefix << error << "\n";
      return false;
    }
    baseline = std::move(*history);
    return true;
  };
  if (!readBaseline()) return kExitFailure;

  Json body = Json::object();
  if (parsed.to) body["target"] = *parsed.to;
  if (parsed.force) body["force"] = true;
  if (parsed.dry_run) body["dry_run"] = true;
  const std::string path = "/" + command;
  ApiResponse answer = client.post(path, body.dump(), *token);
  if (!answer.answered()) {
    err << prefix << "cannot reach " << client.urlOf(path) << ": " << answer.error << "\n";
    return kExitFailure;
  }
  if (isRedirect(answer.status)) {
    // Another instance acts (docs/coordination.md): send the request there, once.
    auto acting = actingClient(client, path, answer, prefix, out, err);
    if (!acting) return kExitFailure;
    client = std::move(*acting);
    if (!readBaseline()) return kExitFailure;
    answer = client.post(path, body.dump(), *token);
    if (!answer.answered()) {
      err << prefix << "cannot reach " << client.urlOf(path) << ": " << answer.error << "\n";
      return kExitFailure;
    }
    if (isRedirect(answer.status)) {
      err << prefix << client.urlOf(path) << " does not act either and redirected to "
          << (answer.location.empty() ? std::string("nowhere") : answer.location)
          << ": the acting instance is changing; retry in a few seconds\n";
      return kExitFailure;
    }
  }
  const Json reply = Json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  const std::string from = text(reply, "from");
  const std::string to = text(reply, "to");
  if (parsed.dry_run && answer.status == 200) {
    out << "dry run: a " << command << " from '" << from << "' to '" << to
        << "' would be accepted; nothing was submitted\n";
    return kExitOk;
  }
  if (answer.status != 202) {
    std::string why = text(reply, "reason");
    if (why.empty()) why = text(reply, "message");
    if (why.empty()) why = truncated(answer.body, 200);
    const std::string error = text(reply, "error");
    err << prefix << "HTTP " << answer.status << (error.empty() ? "" : " " + error) << ": " << why
        << "\n";
    return answer.status == 400 ? kExitUsage : kExitFailure;
  }
  const auto id = number(reply, "id");
  out << command << " accepted";
  if (id) out << " (request " << static_cast<std::uint64_t>(*id) << ")";
  out << ": '" << from << "' -> '" << to << "'\n";
  if (!waiting) {
    out << "not waiting for the outcome; follow it with: pgfailover history\n";
    return kExitOk;
  }
  out << "waiting up to " << parsed.wait_seconds << " s for the outcome...\n";
  return follow(kind, client, baseline, to, id, parsed.wait_seconds, options, prefix, out, err);
}

}  // namespace

std::optional<std::string> processEnvironment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

int switchoverCommandMain(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err, const AdminCommandOptions& options) {
  return runAdminCommand(Kind::kSwitchover, args, out, err, options);
}

int failoverCommandMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                        const AdminCommandOptions& options) {
  return runAdminCommand(Kind::kFailover, args, out, err, options);
}

std::string renderHistoryTable(const Json& history) {
  if (!history.is_array() || history.empty()) return "No events recorded.\n";
  Table table({"Time", "Event", "Result", "Node", "From", "To", "Took", "Reason"},
              {false, false, false, false, false, false, true, false});
  for (const auto& event : history)
    table.add({text(event, "at"), text(event, "kind"), text(event, "result"), text(event, "node"),
               text(event, "from"), text(event, "to"), took(event),
               truncated(text(event, "reason"), kMaxReasonWidth)});
  return table.render();
}

int historyCommandMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string url = kDefaultStatusUrl;
  std::string limit;
  bool json = false;
  ArgReader reader(args, err, "pgfailover history: ", kHistoryUsage);
  while (reader.next()) {
    const std::string& name = reader.name();
    const bool flag = !reader.hasInlineValue();
    if (name == "--url") {
      if (!reader.value(url)) return kExitUsage;
    } else if (name == "--limit") {
      if (!reader.value(limit)) return kExitUsage;
      const auto value = parseWholeNumber(limit);
      if (!value || *value == 0) {
        reader.usage("--limit takes a positive whole number, not '" + limit + "'");
        return kExitUsage;
      }
    } else if (name == "--json" && flag) {
      json = true;
    } else if ((name == "--help" || name == "-h") && flag) {
      out << kHistoryUsage;
      return kExitOk;
    } else {
      reader.unknown();
      return kExitUsage;
    }
  }
  const ApiClient client(url);
  if (!client.valid()) {
    err << "pgfailover history: '" << url << "' is not a valid URL\n";
    return kExitUsage;
  }
  std::string error;
  const std::string path =
      limit.empty() ? kHistoryPath : std::string(kHistoryPath) + "?limit=" + limit;
  const auto events = fetchHistory(client, path, error);
  if (!events) {
    err << "pgfailover history: " << error << "\n";
    return kExitFailure;
  }
  const Json history(*events);
  if (json)
    out << history.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  else
    out << renderHistoryTable(history);
  return kExitOk;
}

}  // namespace pgfailover::cli
