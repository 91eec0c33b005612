#include "ssh/shell.h"

#include <array>
#include <cctype>

namespace pgfailover::ssh {
namespace {

bool isBareWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
}

bool isKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

bool isBlank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool isQuote(char c) {
  return c == '\'' || c == '"';
}

bool endsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Does the key just before `equals` name a secret?
bool secretKeyBefore(std::string_view text, std::size_t equals) {
  std::size_t begin = equals;
  while (begin > 0 && isKeyChar(text[begin - 1])) --begin;
  if (begin == equals) return false;
  std::string key;
  for (std::size_t i = begin; i < equals; ++i)
    key += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  static constexpr std::array<std::string_view, 4> kSecretSuffixes = {"password", "passwd",
                                                                      "secret", "token"};
  for (std::string_view suffix : kSecretSuffixes)
    if (endsWith(key, suffix)) return true;
  return false;
}

// Where the kept text resumes after the secret value that starts at `begin`: after the value,
// minus any trailing quotes that close an enclosing shell word.
std::size_t secretValueEnd(std::string_view text, std::size_t begin) {
  const std::size_t n = text.size();
  if (begin < n && (isQuote(text[begin]) || text[begin] == '\\')) {
    // A quoted value may hold blanks. It ends at the first blank that follows a quote (how
    // conninfo quoting inside a shell-quoted word, '\''a b'\'', ends) or that the shell would
    // see outside any quotes ("a b"; next). Hiding too much beats showing a piece.
    char open = 0;
    for (std::size_t j = begin; j < n; ++j) {
      char c = text[j];
      if (isBlank(c) && (open == 0 || isQuote(text[j - 1]))) return j;
      if (open == '\'') {
        if (c == '\'') open = 0;
      } else if (c == '\\') {
        ++j;
      } else if (open == '"') {
        if (c == '"') open = 0;
      } else if (isQuote(c)) {
        open = c;
      }
    }
    return n;
  }
  std::size_t j = begin;
  while (j < n && !isBlank(text[j])) ++j;
  // An unquoted conninfo value cannot hold a bare quote (it would be written \'), so quotes at
  // its end close the shell word around it: keep them so the line still reads as it was.
  std::size_t keep = j;
  while (keep > begin && isQuote(text[keep - 1])) --keep;
  if (keep < j && keep > begin && text[keep - 1] == '\\') keep = j;
  return keep;
}

}  // namespace

std::string shellQuote(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  quoted += '\'';
  return quoted;
}

std::string shellJoin(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& word : argv) {
    if (!line.empty()) line += ' ';
    bool bare = !word.empty();
    for (char c : word) bare = bare && isBareWordChar(c);
    line += bare ? word : shellQuote(word);
  }
  return line;
}

std::string redactForLog(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    char c = text[i];
    if (c == '=' && secretKeyBefore(text, i)) {
      out += '=';
      std::size_t resume = secretValueEnd(text, i + 1);
      // An empty value ("password= host=x") has nothing to hide; say nothing about it.
      if (resume > i + 1) out += kRedacted;
      i = resume;
      continue;
    }
    if (c == ':' && text.substr(i, 3) == "://") {
      out += "://";
      i += 3;
      // userinfo is everything up to '@' before the host; a password in it must be
      // percent-encoded if it holds '@', '/' or ':', so the first ':' ends the user name.
      std::size_t j = i;
      while (j < n && text[j] != '@' && text[j] != '/' && text[j] != '?' && text[j] != '#' &&
             !isBlank(text[j]) && !isQuote(text[j]))
        ++j;
      if (j < n && text[j] == '@') {
        std::size_t colon = text.find(':', i);
        if (colon != std::string_view::npos && colon < j) {
          out.append(text.substr(i, colon + 1 - i));
          out += kRedacted;
          i = j;
        }
      }
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

}  // namespace pgfailover::ssh
