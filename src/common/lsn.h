// PostgreSQL write-ahead log positions ("0/3000148") as 64-bit numbers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgfailover {

using Lsn = std::uint64_t;

// Parses "X/Y" (both hex). Returns nullopt for anything else, including the empty string.
std::optional<Lsn> parseLsn(std::string_view text);
std::string formatLsn(Lsn lsn);

// Parses a byte size: a plain number of bytes, or a number with a unit (kB, MB, GB, TB, B;
// PostgreSQL's 1024-based meaning). Returns nullopt when malformed or negative.
std::optional<std::uint64_t> parseByteSize(std::string_view text);

}  // namespace pgfailover
