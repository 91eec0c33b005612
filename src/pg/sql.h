// Small pure helpers for building SQL text and reading libpq's text-format values: identifier
// quoting for the configurable heartbeat table, and parsers for booleans, integers, numbers and
// WAL file names. They deliberately do not quote literals: every value that is not a validated
// identifier travels as a query parameter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/observation.h"

namespace pgfailover::pg {

// A schema-qualified table name, validated and folded to lower case as PostgreSQL folds
// unquoted identifiers, so "PgFailover.Heartbeat" names the same table in psql and here.
struct QualifiedName {
  std::string schema;
  std::string table;
  // "\"schema\".\"table\"", safe to splice into SQL text.
  std::string quoted() const;
};

// Accepts exactly "schema.table", each part a plain identifier: a letter or underscore, then
// letters, digits or underscores, at most 63 bytes. Anything else (quotes, spaces, a missing
// schema, three parts) is rejected rather than guessed at. The config module may call this to
// validate probe.heartbeat_table at load time.
std::optional<QualifiedName> parseTableName(std::string_view text);

// Double-quotes an identifier, doubling embedded quotes.
std::string quoteIdentifier(std::string_view identifier);
// A SQL string literal ('it''s'), for statements that take no parameters (ALTER SYSTEM).
// standard_conforming_strings is on in every supported PostgreSQL, so backslashes are literal.
std::string quoteLiteral(std::string_view text);

// libpq text format: booleans are "t"/"f" (also accepts "on"/"off" as current_setting returns).
std::optional<bool> parseBool(std::string_view text);
std::optional<std::int64_t> parseInt64(std::string_view text);
std::optional<double> parseDouble(std::string_view text);

// PostgreSQL's own rule for replication slot names: 1 to 63 lower-case letters, digits and
// underscores.
bool isValidSlotName(std::string_view name);

// The probe's aggregated pg_replication_slots column: "name active restart_lsn" entries joined
// by commas ("pg2 true 0/3000148,pg3 false -"), empty for no slots. Slot names cannot contain
// the separators. Returns nullopt when malformed.
std::optional<std::vector<core::ReplicationSlot>> parseSlotList(std::string_view text);

// A WAL file name ("000000020000000000000003") starts with its timeline in 8 hex digits.
std::optional<std::uint32_t> timelineFromWalFileName(std::string_view wal_file_name);

}  // namespace pgfailover::pg
