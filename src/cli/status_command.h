// `pgfailover status [--url URL] [--json]`: asks a running pgfailover for GET /status and prints
// the cluster as a table in the manner of `patronictl list`, or the raw document with --json.
// Only the HTTP API is used, so the command works from any host that can reach the API and
// needs neither the configuration file nor database credentials.
//
// Deliberately not here: any change to the cluster (`pgfailover switchover` and `failover` live
// in admin_commands.h) and any direct connection to PostgreSQL.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pgfailover::cli {

inline constexpr const char* kDefaultStatusUrl = "http://127.0.0.1:8008";

// Fetches URL/status (connect and read deadlines of a few seconds) and prints it. Returns the
// process exit code: 0 on success, 1 when the API cannot be reached or answers nonsense (the
// reason goes to `err`).
int runStatusCommand(const std::string& url, bool json, std::ostream& out, std::ostream& err);

// The whole command from its arguments (everything after "status"): parses --url URL,
// --url=URL, --json and --help, then calls runStatusCommand. Exit code 2 for a usage error.
int statusCommandMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The table for a /status document. Tolerates missing fields (an older server) by leaving
// cells empty; throws nothing.
std::string renderStatusTable(const nlohmann::json& status);

}  // namespace pgfailover::cli
