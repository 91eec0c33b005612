#include "common/lsn.h"

#include <cctype>
#include <charconv>
#include <cstdio>

namespace pgfailover {

namespace {
std::optional<std::uint32_t> parseHex32(std::string_view text) {
  if (text.empty() || text.size() > 8) return std::nullopt;
  std::uint32_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}
}  // namespace

std::optional<Lsn> parseLsn(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto high = parseHex32(text.substr(0, slash));
  auto low = parseHex32(text.substr(slash + 1));
  if (!high || !low) return std::nullopt;
  return (static_cast<Lsn>(*high) << 32) | *low;
}

std::string formatLsn(Lsn lsn) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%X/%X", static_cast<unsigned>(lsn >> 32),
                static_cast<unsigned>(lsn & 0xffffffffu));
  return buffer;
}

std::optional<std::uint64_t> parseByteSize(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 18) return std::nullopt;
  std::uint64_t number = 0;
  std::from_chars(text.data(), text.data() + digits, number);
  std::string_view unit = text.substr(digits);
  std::uint64_t multiplier = 0;
  if (unit.empty() || unit == "B")
    multiplier = 1;
  else if (unit == "kB" || unit == "KB")
    multiplier = 1024ull;
  else if (unit == "MB")
    multiplier = 1024ull * 1024;
  else if (unit == "GB")
    multiplier = 1024ull * 1024 * 1024;
  else if (unit == "TB")
    multiplier = 1024ull * 1024 * 1024 * 1024;
  else
    return std::nullopt;
  if (number > UINT64_MAX / multiplier) return std::nullopt;
  return number * multiplier;
}

}  // namespace pgfailover
