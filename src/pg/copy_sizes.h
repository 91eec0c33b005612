// What the two ways of giving a diverged node the primary's data back would copy, read on the
// primary: PostgreSQL 15's pg_rewind copies every file of its pg_wal whole, pg_basebackup its
// databases (lifecycle/rejoin.h weighs the two).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/time.h"
#include "pg/connection.h"

namespace pgfailover::pg {

struct CopySizes {
  std::uint64_t pg_wal_bytes = 0;  // sum(size) of pg_ls_waldir()
  std::uint64_t data_bytes = 0;    // sum of pg_database_size() over every database
};

// pg_ls_waldir() needs pg_monitor or a superuser; pg_database_size() of every database,
// pg_read_all_stats or CONNECT on each (pg_monitor holds both). Empty, with `error` set (the
// server's message, not redacted), when the statement failed.
std::optional<CopySizes> readCopySizes(Connection& connection, SteadyTime deadline,
                                       std::string& error);

}  // namespace pgfailover::pg
