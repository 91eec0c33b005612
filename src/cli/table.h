// Plain-text tables for the command-line views (`pgfailover status`, `pgfailover history`), in
// the manner of `patronictl list`: a rule, the headers, a rule, the rows, a rule.
//
// Deliberately not here: colours, terminal widths, or wrapping; long cells are shortened by the
// caller (truncated()).
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace pgfailover::cli {

// `value` on one line and at most `width` characters, ending in "..." when shortened.
inline std::string truncated(std::string value, std::size_t width) {
  std::replace(value.begin(), value.end(), '\n', ' ');
  if (value.size() <= width) return value;
  return value.substr(0, width - 3) + "...";
}

class Table {
 public:
  Table(std::vector<std::string> headers, std::vector<bool> right_aligned)
      : headers_(std::move(headers)), right_(std::move(right_aligned)) {}

  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  std::string render() const {
    std::vector<std::size_t> widths(headers_.size());
    for (std::size_t i = 0; i < headers_.size(); ++i) widths[i] = headers_[i].size();
    for (const auto& row : rows_)
      for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i)
        widths[i] = std::max(widths[i], row[i].size());
    std::string rule = "+";
    for (auto width : widths) rule += std::string(width + 2, '-') + "+";
    rule += "\n";
    std::string out = rule + line(headers_, widths, false) + rule;
    for (const auto& row : rows_) out += line(row, widths, true);
    return out + rule;
  }

 private:
  std::string line(const std::vector<std::string>& cells, const std::vector<std::size_t>& widths,
                   bool align) const {
    std::string out = "|";
    for (std::size_t i = 0; i < widths.size(); ++i) {
      const std::string& cell = i < cells.size() ? cells[i] : std::string();
      const std::string pad(widths[i] - cell.size(), ' ');
      const bool right = align && i < right_.size() && right_[i];
      out += " " + (right ? pad + cell : cell + pad) + " |";
    }
    return out + "\n";
  }

  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace pgfailover::cli
