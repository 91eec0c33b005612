// `pgfailover switchover`, `pgfailover failover` and `pgfailover history`: the operator's side of
// the admin API. switchover and failover POST to a running pgfailover with the bearer token,
// print its answer, and by default follow GET /history until the outcome of their request is
// recorded (succeeded, failed or refused) or the wait ends; history prints the event log.
// Sent to an instance that does not act (several instances, docs/coordination.md), they follow
// its 307 once to the acting instance, over the same scheme only, and wait on that one.
//
// The token comes from --token-file FILE or the environment variable PGFAILOVER_TOKEN, never from
// the command line (it would show in `ps` and in shell history), and is never printed.
//
// Deliberately not here: any judgement of whether a switchover is safe (the server's pre-checks
// and the decision make it) and any direct connection to PostgreSQL.
#pragma once

#include <functional>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/time.h"

namespace pgfailover::cli {

inline constexpr const char* kTokenEnvironmentVariable = "PGFAILOVER_TOKEN";

// Looks up an environment variable; replaceable so tests need no real environment.
using Environment = std::function<std::optional<std::string>(const std::string&)>;
std::optional<std::string> processEnvironment(const std::string& name);

struct AdminCommandOptions {
  Environment environment = processEnvironment;
  // How often --wait polls GET /history.
  Millis poll_interval{500};
};

// Exit codes: 0 the request succeeded (or a dry run / --wait 0 was accepted), 1 it was refused,
// failed, or no outcome appeared within --wait, or the API cannot be reached, 2 usage errors
// (bad arguments, no token, an unknown --to node).
int switchoverCommandMain(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err, const AdminCommandOptions& options = {});
int failoverCommandMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                        const AdminCommandOptions& options = {});

// `pgfailover history [--url URL] [--limit N] [--json]`: 0 printed, 1 API problem, 2 usage.
int historyCommandMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The table for a GET /history document (a JSON array of events, oldest first). Tolerates
// missing fields; throws nothing.
std::string renderHistoryTable(const nlohmann::json& history);

}  // namespace pgfailover::cli
