#include "lifecycle/fence_at_rest.h"

#include "ssh/shell.h"

namespace pgfailover::lifecycle {

namespace {
constexpr const char* kKilledMarker = "killed postmaster";
constexpr const char* kNoDataMarker = "no data directory";
constexpr const char* kFencedMarker = "standby.signal written";
}  // namespace

std::string fenceAtRestCommand(const std::string& data_dir) {
  return "d=" + ssh::shellQuote(data_dir) + "; if [ ! -f \"$d/PG_VERSION\" ]; then echo '" +
         kNoDataMarker +
         "'; exit 0; fi; "
         "pid=$(head -n 1 \"$d/postmaster.pid\" 2>/dev/null || true); "
         "case $pid in *[!0-9]*) pid= ;; esac; "
         "if [ -n \"$pid\" ] && [ ! -f \"$d/standby.signal\" ] && [ -d /proc/\"$pid\" ] && "
         "! grep -qs '^State:[[:space:]]*Z' /proc/\"$pid\"/status && "
         "[ \"$(readlink /proc/\"$pid\"/cwd)\" = \"$(cd \"$d\" && pwd -P)\" ]; then "
         "kids=$(cat /proc/\"$pid\"/task/*/children 2>/dev/null || true); "
         "kill -KILL \"$pid\" $kids 2>/dev/null; echo \"" +
         kKilledMarker +
         " $pid\"; fi; "
         "touch \"$d/standby.signal\" && echo '" +
         kFencedMarker + "'";
}

FenceAtRestResult fenceAtRest(ssh::CommandRunner& runner, const std::string& data_dir,
                              Millis deadline) {
  FenceAtRestResult out;
  auto result = runner.run(fenceAtRestCommand(data_dir), deadline);
  out.killed_postmaster = result.stdout_text.find(kKilledMarker) != std::string::npos;
  out.no_data_directory = result.stdout_text.find(kNoDataMarker) != std::string::npos;
  if (result.succeeded() &&
      (out.no_data_directory || result.stdout_text.find(kFencedMarker) != std::string::npos)) {
    out.status = Status::ok();
    out.detail = out.no_data_directory ? "no data directory at " + data_dir
                                       : (out.killed_postmaster ? "killed the still-running "
                                                                  "postmaster and wrote "
                                                                : "wrote ") +
                                             data_dir + "/standby.signal";
    return out;
  }
  out.status = result.status.isOk()
                   ? Status(StatusCode::kInternal,
                            "fencing at rest failed: " + ssh::redactForLog(result.summary()))
                   : result.status;
  out.detail = out.status.message();
  return out;
}

}  // namespace pgfailover::lifecycle
