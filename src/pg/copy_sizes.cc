#include "pg/copy_sizes.h"

#include <charconv>
#include <string_view>
#include <system_error>

namespace pgfailover::pg {

std::optional<CopySizes> readCopySizes(Connection& connection, SteadyTime deadline,
                                       std::string& error) {
  auto read = connection.exec(
      "SELECT (SELECT coalesce(sum(size), 0) FROM pg_catalog.pg_ls_waldir())::text,"
      " (SELECT coalesce(sum(pg_catalog.pg_database_size(oid)), 0)"
      " FROM pg_catalog.pg_database)::text",
      deadline);
  if (!read.ok()) {
    error = read.error->message;
    return std::nullopt;
  }
  CopySizes sizes;
  auto number = [&](int column, std::uint64_t& out) {
    const std::string_view text = read.result.value(0, column);
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size();
  };
  if (read.result.rows() != 1 || !number(0, sizes.pg_wal_bytes) || !number(1, sizes.data_bytes)) {
    error = "unexpected answer to the size query";
    return std::nullopt;
  }
  return sizes;
}

}  // namespace pgfailover::pg
