#include "pg/sql.h"

#include <cctype>
#include <charconv>

#include "common/lsn.h"

namespace pgfailover::pg {

namespace {

// NAMEDATALEN - 1: PostgreSQL truncates longer identifiers, which would silently name another
// table than the one configured.
constexpr std::size_t kMaxIdentifierBytes = 63;

std::optional<std::string> plainIdentifier(std::string_view text) {
  if (text.empty() || text.size() > kMaxIdentifierBytes) return std::nullopt;
  auto first = static_cast<unsigned char>(text.front());
  if (!std::isalpha(first) && first != '_') return std::nullopt;
  std::string folded;
  folded.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (!std::isalnum(u) && u != '_') return std::nullopt;
    folded.push_back(static_cast<char>(std::tolower(u)));
  }
  return folded;
}

}  // namespace

std::string QualifiedName::quoted() const {
  return quoteIdentifier(schema) + "." + quoteIdentifier(table);
}

std::optional<QualifiedName> parseTableName(std::string_view text) {
  std::size_t dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto schema = plainIdentifier(text.substr(0, dot));
  auto table = plainIdentifier(text.substr(dot + 1));
  if (!schema || !table) return std::nullopt;
  return QualifiedName{*schema, *table};
}

std::string quoteIdentifier(std::string_view identifier) {
  std::string out = "\"";
  for (char c : identifier) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::optional<bool> parseBool(std::string_view text) {
  if (text == "t" || text == "on" || text == "true") return true;
  if (text == "f" || text == "off" || text == "false") return false;
  return std::nullopt;
}

std::optional<std::int64_t> parseInt64(std::string_view text) {
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> parseDouble(std::string_view text) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

bool isValidSlotName(std::string_view name) {
  if (name.empty() || name.size() > kMaxIdentifierBytes) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::optional<std::vector<core::ReplicationSlot>> parseSlotList(std::string_view text) {
  std::vector<core::ReplicationSlot> slots;
  if (text.empty()) return slots;
  for (bool more = true; more;) {
    std::size_t comma = text.find(',');
    more = comma != std::string_view::npos;
    std::string_view entry = text.substr(0, comma);
    text = more ? text.substr(comma + 1) : std::string_view{};
    std::size_t first = entry.find(' ');
    std::size_t second = first == std::string_view::npos ? first : entry.find(' ', first + 1);
    if (second == std::string_view::npos) return std::nullopt;
    core::ReplicationSlot slot;
    slot.name = std::string(entry.substr(0, first));
    auto active = parseBool(entry.substr(first + 1, second - first - 1));
    std::string_view restart = entry.substr(second + 1);
    if (!isValidSlotName(slot.name) || !active) return std::nullopt;
    slot.active = *active;
    if (restart != "-") {
      slot.restart_lsn = parseLsn(restart);
      if (!slot.restart_lsn) return std::nullopt;
    }
    slots.push_back(std::move(slot));
  }
  return slots;
}

std::optional<std::uint32_t> timelineFromWalFileName(std::string_view wal_file_name) {
  if (wal_file_name.size() != 24) return std::nullopt;
  for (char c : wal_file_name) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  std::uint32_t timeline = 0;
  std::from_chars(wal_file_name.data(), wal_file_name.data() + 8, timeline, 16);
  return timeline;
}

std::string quoteLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

}  // namespace pgfailover::pg
