#include "lifecycle/rejoin.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "common/lsn.h"
#include "lifecycle/divergence.h"
#include "ssh/shell.h"

namespace pgfailover::lifecycle {

namespace {

using ssh::shellQuote;

// A libpq conninfo value, quoted when it needs to be: libpq ends a bare value at any
// whitespace (a tab or a newline as much as a space) and reads a backslash in it as an escape,
// so such a value, a quote or an empty one goes inside '...' with ' and \ escaped.
std::string conninfoValue(const std::string& value) {
  bool plain = !value.empty();
  for (char c : value)
    if (std::isspace(static_cast<unsigned char>(c)) || c == '\'' || c == '\\') plain = false;
  if (plain) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// A postgresql.conf string literal. Inside '...' the server reads a backslash as an escape
// (\n, \t, octal \ooo...) and a doubled quote as one quote, and a line ends the setting: every
// backslash is doubled and every control character written as an escape, so the value stays on
// one line and reads back byte for byte.
std::string confString(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '\'':
        out += "''";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (byte < 0x20 || byte == 0x7f) {
          char octal[8];
          std::snprintf(octal, sizeof octal, "\\%03o", byte);
          out += octal;
        } else {
          out += c;
        }
    }
  }
  return out + "'";
}

std::string seconds(std::chrono::steady_clock::duration elapsed) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", std::chrono::duration<double>(elapsed).count());
  return text;
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

std::uint32_t standbyTimeline(const std::string& preflight) {
  auto number = [](const std::string& text, int base) -> std::uint32_t {
    if (text.empty()) return 0;
    char* end = nullptr;
    const unsigned long value = std::strtoul(text.c_str(), &end, base);
    return end != nullptr && *end == '\0' && value <= 0xFFFFFFFFul
               ? static_cast<std::uint32_t>(value)
               : 0;
  };
  std::uint32_t newest = number(controlDataValue(preflight, "Latest checkpoint's TimeLineID"), 10);
  newest = std::max(newest,
                    number(controlDataValue(preflight, "Min recovery ending loc's timeline"), 10));
  const std::string history = controlDataValue(preflight, kNewestHistoryKey);
  if (history.size() == 16) newest = std::max(newest, number(history.substr(0, 8), 16));
  return newest;
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
  if (!plan.sslmode.empty()) conninfo += " sslmode=" + conninfoValue(plan.sslmode);
  if (!plan.sslrootcert.empty()) conninfo += " sslrootcert=" + conninfoValue(plan.sslrootcert);
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
  const auto started = std::chrono::steady_clock::now();
  auto result = runner_.run(command, deadline);
  step.ok = result.succeeded();
  step.exit_code = result.exit_code;
  step.stdout_text = result.stdout_text;
  step.summary = name + ": " + (step.ok ? "ok" : ssh::redactForLog(result.summary()));
  // Each step's duration in the log: where a slow rejoin spends its time, for operators.
  log_ += step.summary + " (" + seconds(std::chrono::steady_clock::now() - started) + ")\n";
  return step;
}

Status Rejoiner::stopServer(const RejoinPlan& plan, bool keep_wal_end) {
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
  // A clean stop of a primary ends with a shutdown checkpoint: a WAL record of its own after
  // the new timeline's fork, which would make an old primary that wrote nothing since look
  // diverged and cost it a pg_rewind. An immediate stop leaves its WAL where it ended (every
  // commit is flushed); the start as a standby, or pg_rewind, does the crash recovery.
  if (!keep_wal_end) {
    auto fast = exec("stop (fast)",
                     pgCtl(plan) + " stop -D " + shellQuote(plan.data_dir) + " -m fast -w -t 30",
                     Millis{40000});
    if (fast.ok) return Status::ok();
  }
  auto immediate =
      exec("stop (immediate)",
           pgCtl(plan) + " stop -D " + shellQuote(plan.data_dir) + " -m immediate -w -t 30",
           Millis{40000});
  if (immediate.ok) return Status::ok();
  return {StatusCode::kUnavailable, "cannot stop the server: " + immediate.summary};
}

Status Rejoiner::followPrimary(const RejoinPlan& plan, const std::string& dir) {
  const std::string auto_conf = shellQuote(dir + "/postgresql.auto.conf");
  const std::string command =
      "set -e; touch " + shellQuote(dir + "/standby.signal") + "; touch " + auto_conf +
      "; sed -i -e '/^primary_conninfo[[:space:]]*=/d' -e '/^primary_slot_name[[:space:]]*=/d' "
      "-e '/^default_transaction_read_only[[:space:]]*=/d' " +
      auto_conf + "; printf '%s' " + shellQuote(standbySettings(plan)) + " >> " + auto_conf;
  auto step = exec("follow primary", command, Millis{15000});
  if (!step.ok)
    return {StatusCode::kUnavailable, "cannot write the standby settings: " + step.summary};
  return Status::ok();
}

Status Rejoiner::startAndVerify(const RejoinPlan& plan, SteadyTime deadline, Millis verify_budget) {
  const std::string start = plan.start_command.empty()
                                ? pgCtl(plan) + " start -D " + shellQuote(plan.data_dir) +
                                      " -w -t 60 -l " + shellQuote(plan.data_dir + "/pg_ctl.log")
                                : expand(plan.start_command, plan);
  auto started = exec("start", start, std::min(Millis{90000}, remaining(deadline)));
  if (!started.ok) return {StatusCode::kUnavailable, "cannot start the server: " + started.summary};
  progress_("verify streaming");
  const auto verify_started = std::chrono::steady_clock::now();
  const bool streaming = verify_streaming_(std::min(verify_budget, remaining(deadline)));
  log_ += std::string("verify streaming: ") + (streaming ? "ok" : "not streaming") + " (" +
          seconds(std::chrono::steady_clock::now() - verify_started) + ")\n";
  if (!streaming)
    return {StatusCode::kDeadlineExceeded, "the node started but does not stream from " +
                                               plan.primary_host + ":" +
                                               std::to_string(plan.primary_port)};
  return Status::ok();
}

bool Rejoiner::divergedFromPrimary(const RejoinPlan& plan, const std::string& control_data) {
  DivergenceInput input;
  input.primary_timeline = plan.primary_timeline;
  const std::string timeline_text =
      controlDataValue(control_data, "Latest checkpoint's TimeLineID");
  const auto checkpoint = parseLsn(controlDataValue(control_data, "Latest checkpoint location"));
  char* end = nullptr;
  const unsigned long timeline = std::strtoul(timeline_text.c_str(), &end, 10);
  if (timeline_text.empty() || *end != '\0' || timeline == 0 || timeline > 0xFFFFFFFFul ||
      !checkpoint) {
    divergence_ = "the control data names no checkpoint";
    log_ += "divergence: " + divergence_ + "; rewinding\n";
    return true;
  }
  input.node_timeline = static_cast<std::uint32_t>(timeline);
  input.checkpoint = *checkpoint;
  const std::string newest = controlDataValue(control_data, kNewestHistoryKey);
  if (newest.size() == 16)
    input.newest_node_history =
        static_cast<std::uint32_t>(std::strtoul(newest.substr(0, 8).c_str(), nullptr, 16));
  if (input.node_timeline >= plan.primary_timeline) {
    divergence_ = "the node is not behind the primary's timeline";
    log_ += "divergence: " + divergence_ + "; rewinding\n";
    return true;
  }

  char history_name[32];
  std::snprintf(history_name, sizeof history_name, "%08X.history", input.node_timeline);
  const std::string wal = plan.data_dir + "/pg_wal";
  // pg_waldump exits non-zero at the end of the WAL by design; its message is the answer.
  auto dump = exec("find where the node's WAL ends",
                   shellQuote(plan.bin_dir + "/pg_waldump") + " --quiet --path=" + shellQuote(wal) +
                       " --timeline=" + std::to_string(input.node_timeline) +
                       " --start=" + formatLsn(input.checkpoint) + " 2>&1; true",
                   Millis{60000});
  input.waldump_output = dump.stdout_text;
  if (input.node_timeline > 1) {
    auto own = exec("read the node's timeline history",
                    "cat " + shellQuote(wal + "/" + history_name), Millis{15000});
    input.node_history = own.stdout_text;
  }
  // Over a replication connection, as the node will stream: it needs nothing but the
  // replication privilege pg_hba already grants for streaming.
  auto history =
      exec("read the primary's timeline history",
           shellQuote(plan.bin_dir + "/psql") + " -XAtq -d " +
               shellQuote(replicationConninfo(plan, true) + " replication=true") + " -c " +
               shellQuote("TIMELINE_HISTORY " + std::to_string(plan.primary_timeline)),
           Millis{15000});
  if (history.ok) {
    // "0000000N.history|<content>": the file name, then the file.
    const auto bar = history.stdout_text.find('|');
    if (bar != std::string::npos) input.primary_history = history.stdout_text.substr(bar + 1);
  }
  const DivergenceVerdict verdict = judgeDivergence(input);
  divergence_ = verdict.reason;
  log_ += "divergence: " + verdict.reason + "\n";
  return verdict.diverged;
}

namespace {

std::string megabytes(std::uint64_t bytes) {
  return std::to_string((bytes + 512 * 1024) / (1024 * 1024)) + " MB";
}

}  // namespace

CopyChoice chooseCopy(RewindPolicy policy, const std::optional<SourceSizes>& sizes,
                      const std::string& why_unknown) {
  if (policy == RewindPolicy::kNever)
    return {true, "failover.rewind is \"never\": a fresh copy instead of pg_rewind"};
  if (policy == RewindPolicy::kAlways) return {false, "failover.rewind is \"always\""};
  if (!sizes)
    return {false, "the primary's sizes are unknown (" +
                       (why_unknown.empty() ? std::string("not read") : why_unknown) +
                       "): pg_rewind"};
  const std::string figures = "the primary's pg_wal holds " + megabytes(sizes->pg_wal_bytes) +
                              ", its databases " + megabytes(sizes->data_bytes);
  // pg_rewind copies at least all of pg_wal; a fresh copy, the databases (and the little WAL
  // written meanwhile). Equal is a rewind: it keeps the node's files that did not change.
  if (sizes->pg_wal_bytes > sizes->data_bytes)
    return {true, figures + ": a fresh copy moves less than pg_rewind, which copies all of pg_wal"};
  return {false, figures + ": pg_rewind (it copies all of pg_wal and the changed blocks)"};
}

Rejoiner::Step Rejoiner::measureDisk(const std::string& prepare, const std::string& dir,
                                     const std::string& beside, long long& used_kb,
                                     long long& free_kb) {
  Step space =
      exec("check free disk",
           (prepare.empty() ? std::string() : "set -e; " + prepare + "; ") + "parent=$(dirname " +
               beside + "); old=0; if [ -d " + dir + " ]; then old=$(du -sk " + dir +
               " | cut -f1); fi; free=$(df -Pk \"$parent\" | awk 'NR==2 {print $4}'); "
               "echo \"$old $free\"",
           Millis{120000});
  if (space.ok && std::sscanf(space.stdout_text.c_str(), "%lld %lld", &used_kb, &free_kb) != 2) {
    space.ok = false;
    space.summary = "unexpected output: " + space.stdout_text;
  }
  return space;
}

std::string Rejoiner::cloneInsteadOfRewind(const RejoinPlan& plan) {
  std::optional<SourceSizes> sizes;
  std::string why_unknown;
  if (plan.rewind == RewindPolicy::kAuto) {
    if (source_sizes_) {
      progress_("read the primary's sizes");
      sizes = source_sizes_(why_unknown);
    } else {
      why_unknown = "no connection to read them";
    }
  }
  const CopyChoice choice = chooseCopy(plan.rewind, sizes, why_unknown);
  copy_reason_ = choice.reason;
  log_ += "copy: " + choice.reason + "\n";
  if (!choice.clone || plan.rewind == RewindPolicy::kNever)
    return choice.clone ? choice.reason : "";
  // Chosen for speed only: where both copies do not fit side by side, pg_rewind, which needs
  // no second copy, is the way.
  const std::string data = shellQuote(plan.data_dir);
  long long old_kb = 0, free_kb = 0;
  if (!measureDisk("", data, data, old_kb, free_kb).ok) {
    copy_reason_ += "; cannot measure the free disk, so pg_rewind after all";
    log_ += "copy: cannot measure the free disk, pg_rewind after all\n";
    return "";
  }
  const long long copy_kb =
      std::max(old_kb, static_cast<long long>(sizes ? sizes->data_bytes / 1024 : 0));
  const long long need_kb = copy_kb + static_cast<long long>(plan.reserve_disk_bytes / 1024);
  if (free_kb < need_kb) {
    const std::string no_room = "a fresh copy needs about " + std::to_string(need_kb / 1024) +
                                " MB beside the old data, the disk has " +
                                std::to_string(free_kb / 1024) + " MB free: pg_rewind after all";
    copy_reason_ += "; " + no_room;
    log_ += "copy: " + no_room + "\n";
    return "";
  }
  return choice.reason;
}

std::string rejoinWorkDir(const std::string& data_dir) {
  return data_dir + ".pgfailover-rejoin";
}

std::string rejoinCloneDir(const std::string& data_dir) {
  return data_dir + ".pgfailover-clone";
}

RejoinResult Rejoiner::run(const RejoinPlan& plan, Millis budget) {
  log_.clear();
  divergence_.clear();
  copy_reason_.clear();
  const SteadyTime deadline = std::chrono::steady_clock::now() + budget;
  RejoinResult result;
  result.method = "rewind";
  auto fail = [&](Status status) {
    result.status = std::move(status);
    result.detail = log_;
    return result;
  };
  auto succeed = [&](const std::string& method, std::string why) {
    result.method = method;
    result.status = Status::ok();
    result.detail = log_;
    result.why = std::move(why);
    return result;
  };
  // A rejoin that copied: what the node's WAL showed, then why this copy.
  auto copied = [&](const std::string& why_copy) {
    return divergence_.empty() ? why_copy : divergence_ + "; " + why_copy;
  };
  const std::string data = shellQuote(plan.data_dir);
  const std::string work = shellQuote(rejoinWorkDir(plan.data_dir));
  const std::string clone = shellQuote(rejoinCloneDir(plan.data_dir));

  // While pgfailover works on a node's files, they are not at data_dir: pg_rewind and
  // pg_basebackup run on <data_dir>.pgfailover-rejoin / .pgfailover-clone. Nothing can start a
  // server there by mistake (pg_ctl, systemd, a container restart: "no such directory"), and the
  // node scripts refuse to start while the rejoin folder exists. A rejoin cut short (pgfailover
  // killed, the host rebooted) leaves the folder; the next rejoin puts it back first.
  auto found =
      exec("look at the data directory",
           "if [ ! -e " + data + " ] && [ -d " + work + " ]; then mv " + work + " " + data +
               " && touch " + data + "/standby.signal && echo restored; fi; rm -rf " + clone +
               "; if [ -f " + data +
               "/PG_VERSION ]; then echo present; "
               "elif [ -e " +
               data + " ] && [ -n \"$(ls -A " + data +
               " 2>/dev/null)\" ]; then echo foreign; else echo absent; fi",
           Millis{60000});
  if (!found.ok)
    return fail({StatusCode::kUnavailable, "cannot inspect the data directory: " + found.summary});
  if (found.stdout_text.find("restored") != std::string::npos)
    log_ += "put back the data directory of an earlier rejoin that did not finish\n";
  if (found.stdout_text.find("foreign") != std::string::npos)
    return fail({StatusCode::kFailedPrecondition,
                 plan.data_dir + " is not empty but holds no PostgreSQL data directory "
                                 "(no PG_VERSION): pgfailover does not overwrite it"});
  const bool present = found.stdout_text.find("present") != std::string::npos;

  std::string rewind_problem;
  bool clone_chosen = false;  // pg_rewind could work, but a fresh copy is cheaper or asked for
  if (!present) {
    rewind_problem = plan.data_dir + " holds no data directory";
  } else {
    if (Status stopped = stopServer(plan, /*keep_wal_end=*/true); !stopped.isOk())
      return fail(stopped);
    // With the newest timeline history file the node holds: a standby fetches the history of
    // every timeline it follows into pg_wal before it replays any of it.
    auto control = exec("pre-flight",
                        shellQuote(plan.bin_dir + "/pg_controldata") + " " + data + " && printf '" +
                            kNewestHistoryKey + ": %s\\n' \"$(ls " + data +
                            "/pg_wal 2>/dev/null | grep -E '^[0-9A-F]{8}[.]history$' | sort | "
                            "tail -n 1)\"",
                        Millis{15000});
    const std::string state = controlDataValue(control.stdout_text, "Database cluster state");
    const std::uint32_t timeline = standbyTimeline(control.stdout_text);
    // A standby on the primary's own timeline cannot have diverged from it: it only ever had
    // WAL the primary wrote. Starting it as it is beats rewinding it, whose crash recovery
    // (single-user, as a primary) would write WAL of its own and then force a fresh copy.
    const bool was_standby = state == "in archive recovery" || state == "shut down in recovery";
    if (control.ok && was_standby && plan.primary_timeline > 0 &&
        timeline == plan.primary_timeline) {
      if (Status s = followPrimary(plan, plan.data_dir); !s.isOk()) return fail(s);
      if (startAndVerify(plan, deadline, Millis{30000}).isOk())
        return succeed("restart", "a standby on the primary's timeline " +
                                      std::to_string(plan.primary_timeline) + ": nothing to copy");
      log_ += "a plain restart did not stream; rewinding\n";
      if (Status stopped = stopServer(plan); !stopped.isOk()) return fail(stopped);
    } else if (control.ok && plan.primary_timeline > 0 && timeline < plan.primary_timeline &&
               !divergedFromPrimary(plan, control.stdout_text)) {
      // An old primary (crashed, stopped or fenced) whose WAL is a prefix of the new primary's
      // history replays it as a standby and follows the new timeline: no pg_rewind.
      if (Status s = followPrimary(plan, plan.data_dir); !s.isOk()) return fail(s);
      if (startAndVerify(plan, deadline, Millis{30000}).isOk())
        return succeed("follow", divergence_);
      log_ += "following the new timeline did not stream; rewinding\n";
      if (Status stopped = stopServer(plan); !stopped.isOk()) return fail(stopped);
    }
    if (!control.ok) {
      rewind_problem = "pg_controldata failed (" + control.summary + ")";
    } else if (!canRewind(control.stdout_text)) {
      // pg_rewind needs wal_log_hints or data checksums on the target.
      rewind_problem = "neither wal_log_hints nor data checksums are on";
    } else if (std::string chosen = cloneInsteadOfRewind(plan); !chosen.empty()) {
      rewind_problem = chosen;
      clone_chosen = true;
    } else if (auto out = exec("take the data directory out of service", "mv " + data + " " + work,
                               Millis{30000});
               !out.ok) {
      // A data directory that is itself a mount point cannot be renamed: say so plainly.
      return fail({StatusCode::kFailedPrecondition,
                   "cannot move " + plan.data_dir + " to " + rejoinWorkDir(plan.data_dir) +
                       " for the rejoin (is the data directory a mount point? keep it one "
                       "level below the mount): " +
                       out.summary});
    } else {
      if (before_rewind_) {
        progress_("checkpoint the source");
        const auto started = std::chrono::steady_clock::now();
        const std::string error = before_rewind_();
        log_ += "checkpoint the source: " + (error.empty() ? std::string("ok") : error) + " (" +
                seconds(std::chrono::steady_clock::now() - started) + ")\n";
      }
      // A crashed node is recovered by pg_rewind itself in single-user mode, which refuses to
      // run with standby.signal present; the signal is written again right after.
      auto rewind =
          exec("pg_rewind",
               "rm -f " + shellQuote(rejoinWorkDir(plan.data_dir) + "/standby.signal") + " " +
                   shellQuote(rejoinWorkDir(plan.data_dir) + "/recovery.signal") + " && " +
                   shellQuote(plan.bin_dir + "/pg_rewind") + " --target-pgdata=" + work +
                   " --source-server=" + shellQuote(replicationConninfo(plan, false)),
               remaining(deadline));
      if (Status s = followPrimary(plan, rejoinWorkDir(plan.data_dir)); !s.isOk()) {
        exec("return the data directory", "mv " + work + " " + data, Millis{30000});
        return fail(s);
      }
      if (!rewind.ok) {
        rewind_problem = rewind.summary;
      } else if (auto back = exec("return the data directory to service", "mv " + work + " " + data,
                                  Millis{30000});
                 !back.ok) {
        return fail({StatusCode::kUnavailable,
                     "cannot move " + rejoinWorkDir(plan.data_dir) + " back: " + back.summary});
      } else if (Status s = startAndVerify(plan, deadline, Millis{60000}); s.isOk()) {
        return succeed("rewind", copied(copy_reason_.empty() ? "pg_rewind" : copy_reason_));
      } else {
        rewind_problem = s.message();
      }
    }
  }
  if (stop_) return fail({StatusCode::kUnavailable, "stopped: pgfailover is shutting down"});

  // Fallback: a fresh copy, made beside the old data, which stays until the new copy streams.
  result.method = "clone";
  log_ += clone_chosen ? std::string("a fresh copy with pg_basebackup\n")
                       : "falling back to pg_basebackup: " + rewind_problem + "\n";
  if (Status stopped = stopServer(plan); !stopped.isOk()) return fail(stopped);
  // Both copies live side by side for a while: refuse early rather than fill the disk. The
  // new copy is about as large as the old one (the primary's data, plus WAL).
  long long old_kb = 0, free_kb = 0;
  const Step space = measureDisk("if [ -e " + data + " ]; then mv " + data + " " + work + "; fi",
                                 work, data, old_kb, free_kb);
  if (!space.ok) {
    exec("return the data directory",
         "if [ -d " + work + " ]; then mv " + work + " " + data + "; fi", Millis{30000});
    return fail({StatusCode::kUnavailable, "cannot measure the free disk: " + space.summary});
  }
  const long long need_kb = old_kb + static_cast<long long>(plan.reserve_disk_bytes / 1024);
  auto restore = [&] {
    exec("return the data directory",
         "if [ -d " + work + " ]; then touch " + work + "/standby.signal; mv " + work + " " + data +
             "; fi",
         Millis{60000});
  };
  if (free_kb < need_kb) {
    restore();
    return fail({StatusCode::kFailedPrecondition,
                 "not enough free disk for a fresh copy beside the old data: needs about " +
                     std::to_string(need_kb / 1024) + " MB next to " + plan.data_dir + ", has " +
                     std::to_string(free_kb / 1024) + " MB; the data directory is unchanged" +
                     (rewind_problem.empty() ? "" : " (rewind: " + rewind_problem + ")")});
  }
  auto cloned = exec("pg_basebackup",
                     shellQuote(plan.bin_dir + "/pg_basebackup") + " -D " + clone +
                         " -X stream -c fast -d " + shellQuote(replicationConninfo(plan, true)),
                     remaining(deadline));
  if (!cloned.ok) {
    // The old data goes back, with its standby.signal, so nothing is lost.
    exec("remove the partial copy", "rm -rf " + clone, Millis{120000});
    restore();
    return fail({StatusCode::kUnavailable,
                 "pg_basebackup failed: " + cloned.summary + " (rewind: " + rewind_problem + ")"});
  }
  if (Status s = followPrimary(plan, rejoinCloneDir(plan.data_dir)); !s.isOk()) {
    exec("remove the partial copy", "rm -rf " + clone, Millis{120000});
    restore();
    return fail(s);
  }
  const std::string aside = plan.data_dir + ".pgfailover-old-" + timestamp();
  auto swapped = exec("put the fresh copy in place",
                      "set -e; if [ -d " + work + " ]; then mv " + work + " " + shellQuote(aside) +
                          "; fi; mv " + clone + " " + data,
                      Millis{30000});
  if (!swapped.ok)
    return fail(
        {StatusCode::kUnavailable, "cannot put the fresh copy in place: " + swapped.summary});
  if (Status s = startAndVerify(plan, deadline, Millis{60000}); !s.isOk()) {
    return fail({s.code(), s.message() + "; the previous data directory is kept at " + aside});
  }
  exec("remove old data", "rm -rf " + shellQuote(aside), Millis{120000});
  return succeed("clone",
                 clone_chosen ? copied(rewind_problem) : copied("no pg_rewind: " + rewind_problem));
}

}  // namespace pgfailover::lifecycle
