#include "lifecycle/rejoin.h"

#include <chrono>
#include <ctime>

#include "ssh/shell.h"

namespace pgfailover::lifecycle {

namespace {

using ssh::shellQuote;

// A libpq conninfo value, quoted when it needs to be.
std::string conninfoValue(const std::string& value) {
  bool plain = !value.empty();
  for (char c : value)
    if (c == ' ' || c == '\'' || c == '\\') plain = false;
  if (plain) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// A postgresql.conf string literal.
std::string confString(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string pgCtl(const RejoinPlan& plan) {
  return shellQuote(plan.bin_dir + "/pg_ctl");
}

std::string timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y%m%dT%H%M%SZ", &utc);
  return buffer;
}

std::string expand(std::string text, const RejoinPlan& plan) {
  auto replace = [&text](const std::string& key, const std::string& value) {
    for (std::size_t at = text.find(key); at != std::string::npos;
         at = text.find(key, at + value.size()))
      text.replace(at, key.size(), value);
  };
  replace("{data_dir}", shellQuote(plan.data_dir));
  replace("{bin_dir}", shellQuote(plan.bin_dir));
  replace("{node}", shellQuote(plan.node));
  return text;
}

}  // namespace

std::string controlDataValue(const std::string& output, const std::string& key) {
  std::size_t at = 0;
  while (at < output.size()) {
    std::size_t end = output.find('\n', at);
    if (end == std::string::npos) end = output.size();
    const std::string line = output.substr(at, end - at);
    if (line.rfind(key + ":", 0) == 0) {
      std::string value = line.substr(key.size() + 1);
      const auto first = value.find_first_not_of(" \t");
      const auto last = value.find_last_not_of(" \t\r");
      return first == std::string::npos ? "" : value.substr(first, last - first + 1);
    }
    at = end + 1;
  }
  return "";
}

bool canRewind(const std::string& control_data) {
  const std::string checksums = controlDataValue(control_data, "Data page checksum version");
  return controlDataValue(control_data, "wal_log_hints setting") == "on" ||
         (!checksums.empty() && checksums != "0");
}

std::string replicationConninfo(const RejoinPlan& plan, bool for_streaming) {
  std::string conninfo =
      "host=" + conninfoValue(plan.primary_host) + " port=" + std::to_string(plan.primary_port) +
      " user=" + conninfoValue(plan.replication_user) + " passfile=" + conninfoValue(plan.passfile);
  if (for_streaming)
    conninfo += " application_name=" + conninfoValue(plan.node);
  else
    conninfo += " dbname=postgres";
  return conninfo;
}

std::string standbySettings(const RejoinPlan& plan) {
  std::string lines = "primary_conninfo = " + confString(replicationConninfo(plan, true)) + "\n";
  if (!plan.slot_name.empty()) lines += "primary_slot_name = " + confString(plan.slot_name) + "\n";
  return lines;
}

Millis Rejoiner::remaining(SteadyTime deadline) const {
  auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
  return left > Millis{0} ? left : Millis{0};
}

Rejoiner::Step Rejoiner::exec(const std::string& name, const std::string& command,
                              Millis deadline) {
  progress_(name);
  Step step;
  if (stop_) {
    step.summary = name + ": stopped (pgfailover is shutting down)";
    log_ += step.summary + "\n";
    return step;
  }
  auto result = runner_.run(command, deadline);
  step.ok = result.succeeded();
  step.exit_code = result.exit_code;
  step.stdout_text = result.stdout_text;
  step.summary = name + ": " + (step.ok ? "ok" : ssh::redactForLog(result.summary()));
  log_ += step.summary + "\n";
  return step;
}

Status Rejoiner::stopServer(const RejoinPlan& plan) {
  // A postmaster killed with -9 whose parent never reaps it (a container whose PID 1 is not an
  // init) lingers as a zombie: pg_ctl counts it as running and PostgreSQL refuses to start over
  // its lock file. A zombie runs nothing, so its lock file is stale.
  const std::string pid_file = shellQuote(plan.data_dir + "/postmaster.pid");
  exec("clear stale lock",
       "pid=$(head -n 1 " + pid_file +
           " 2>/dev/null || true); "
           "if [ -n \"$pid\" ] && grep -qs '^State:[[:space:]]*Z' /proc/\"$pid\"/status; then "
           "rm -f " +
           pid_file + "; fi; true",
       Millis{15000});
  // pg_ctl status: 0 running, 3 not running, 4 no data directory.
  auto status =
      exec("status", pgCtl(plan) + " status -D " + shellQuote(plan.data_dir), Millis{15000});
  if (status.exit_code == 3 || status.exit_code == 4) return Status::ok();
  if (!status.ok && status.exit_code != 0)
    return {StatusCode::kUnavailable, "cannot check the server: " + status.summary};
  auto fast = exec("stop (fast)",
                   pgCtl(plan) + " stop -D " + shellQuote(plan.data_dir) + " -m fast -w -t 30",
                   Millis{40000});
  if (fast.ok) return Status::ok();
  auto immediate =
      exec("stop (immediate)",
           pgCtl(plan) + " stop -D " + shellQuote(plan.data_dir) + " -m immediate -w -t 30",
           Millis{40000});
  if (immediate.ok) return Status::ok();
  return {StatusCode::kUnavailable, "cannot stop the server: " + immediate.summary};
}

Status Rejoiner::followPrimary(const RejoinPlan& plan) {
  const std::string auto_conf = shellQuote(plan.data_dir + "/postgresql.auto.conf");
  const std::string command =
      "set -e; touch " + shellQuote(plan.data_dir + "/standby.signal") + "; touch " + auto_conf +
      "; sed -i -e '/^primary_conninfo[[:space:]]*=/d' -e '/^primary_slot_name[[:space:]]*=/d' "
      "-e '/^default_transaction_read_only[[:space:]]*=/d' " +
      auto_conf + "; printf '%s' " + shellQuote(standbySettings(plan)) + " >> " + auto_conf;
  auto step = exec("follow primary", command, Millis{15000});
  if (!step.ok)
    return {StatusCode::kUnavailable, "cannot write the standby settings: " + step.summary};
  return Status::ok();
}

Status Rejoiner::startAndVerify(const RejoinPlan& plan, SteadyTime deadline) {
  const std::string start = plan.start_command.empty()
                                ? pgCtl(plan) + " start -D " + shellQuote(plan.data_dir) +
                                      " -w -t 60 -l " + shellQuote(plan.data_dir + "/pg_ctl.log")
                                : expand(plan.start_command, plan);
  auto started = exec("start", start, std::min(Millis{90000}, remaining(deadline)));
  if (!started.ok) return {StatusCode::kUnavailable, "cannot start the server: " + started.summary};
  progress_("verify streaming");
  const bool streaming = verify_streaming_(std::min(Millis{60000}, remaining(deadline)));
  log_ += std::string("verify streaming: ") + (streaming ? "ok" : "not streaming") + "\n";
  if (!streaming)
    return {StatusCode::kDeadlineExceeded, "the node started but does not stream from " +
                                               plan.primary_host + ":" +
                                               std::to_string(plan.primary_port)};
  return Status::ok();
}

RejoinResult Rejoiner::run(const RejoinPlan& plan, Millis budget) {
  log_.clear();
  const SteadyTime deadline = std::chrono::steady_clock::now() + budget;
  RejoinResult result;
  result.method = "rewind";

  if (Status stopped = stopServer(plan); !stopped.isOk()) {
    result.status = stopped;
    result.detail = log_;
    return result;
  }

  // pg_rewind needs wal_log_hints or data checksums on the target.
  auto control = exec(
      "pre-flight", shellQuote(plan.bin_dir + "/pg_controldata") + " " + shellQuote(plan.data_dir),
      Millis{15000});
  const bool rewindable = control.ok && canRewind(control.stdout_text);
  std::string rewind_problem;
  if (!control.ok) {
    rewind_problem = "pg_controldata failed (" + control.summary + ")";
  } else if (!rewindable) {
    rewind_problem = "neither wal_log_hints nor data checksums are on";
  } else {
    // A crashed node is recovered by pg_rewind itself in single-user mode, which refuses to run
    // with standby.signal present; the node is stopped, and the signal is written again below.
    auto rewind = exec("pg_rewind",
                       "rm -f " + shellQuote(plan.data_dir + "/standby.signal") + " " +
                           shellQuote(plan.data_dir + "/recovery.signal") + " && " +
                           shellQuote(plan.bin_dir + "/pg_rewind") +
                           " --target-pgdata=" + shellQuote(plan.data_dir) +
                           " --source-server=" + shellQuote(replicationConninfo(plan, false)),
                       remaining(deadline));
    if (!rewind.ok) {
      rewind_problem = rewind.summary;
    } else if (Status s = followPrimary(plan); !s.isOk()) {
      result.status = s;
      result.detail = log_;
      return result;
    } else if (Status s = startAndVerify(plan, deadline); s.isOk()) {
      result.status = Status::ok();
      result.detail = log_;
      return result;
    } else {
      rewind_problem = s.message();
    }
  }
  if (stop_) {
    result.status = {StatusCode::kUnavailable, "stopped: pgfailover is shutting down"};
    result.detail = log_;
    return result;
  }

  // Fallback: a fresh copy. The old directory stays aside until the new one streams.
  result.method = "clone";
  log_ += "falling back to pg_basebackup: " + rewind_problem + "\n";
  if (Status stopped = stopServer(plan); !stopped.isOk()) {
    result.status = stopped;
    result.detail = log_;
    return result;
  }
  const std::string aside = plan.data_dir + ".pgfailover-old-" + timestamp();
  auto moved = exec("set old data aside",
                    "set -e; touch " + shellQuote(plan.data_dir + "/standby.signal") + "; mv " +
                        shellQuote(plan.data_dir) + " " + shellQuote(aside),
                    Millis{30000});
  if (!moved.ok) {
    result.status = {StatusCode::kUnavailable,
                     "cannot move the old data directory aside: " + moved.summary};
    result.detail = log_;
    return result;
  }
  auto cloned =
      exec("pg_basebackup",
           shellQuote(plan.bin_dir + "/pg_basebackup") + " -D " + shellQuote(plan.data_dir) +
               " -X stream -c fast -d " + shellQuote(replicationConninfo(plan, true)),
           remaining(deadline));
  if (!cloned.ok) {
    // Put the old directory back so nothing is lost; it keeps its standby.signal.
    exec("restore old data",
         "rm -rf " + shellQuote(plan.data_dir) + " && mv " + shellQuote(aside) + " " +
             shellQuote(plan.data_dir),
         Millis{60000});
    result.status = {StatusCode::kUnavailable, "pg_basebackup failed: " + cloned.summary +
                                                   " (rewind: " + rewind_problem + ")"};
    result.detail = log_;
    return result;
  }
  if (Status s = followPrimary(plan); !s.isOk()) {
    result.status = s;
    result.detail = log_;
    return result;
  }
  if (Status s = startAndVerify(plan, deadline); !s.isOk()) {
    result.status = {s.code(), s.message() + "; the previous data directory is kept at " + aside};
    result.detail = log_;
    return result;
  }
  exec("remove old data", "rm -rf " + shellQuote(aside), Millis{120000});
  result.status = Status::ok();
  result.detail = log_;
  return result;
}

}  // namespace pgfailover::lifecycle
