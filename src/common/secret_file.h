// Secrets pgfailover reads from files: the admin token (read alike by the daemon and by the
// CLI, so a token that one accepts the other accepts too) and the check that a secret file is
// not open to other users, as ssh refuses a private key others can read.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgfailover {

// The largest token file read (a token is a few dozen characters).
inline constexpr std::size_t kMaxTokenFileBytes = 4096;

// The token in `raw`, the whole content of a token file or variable: surrounding whitespace
// (spaces, tabs, a final CRLF or LF) is removed; what is left must be one word of visible
// characters. nullopt with `problem` set ("is empty", "holds whitespace or control characters
// inside the token") otherwise; the problem never quotes the token.
std::optional<std::string> parseToken(std::string_view raw, std::string& problem);

// Reads and parses the token file at `path`; a file that is not a regular file or is larger
// than kMaxTokenFileBytes is refused. `problem` starts with the path ("/etc/t is empty") and
// never quotes the token.
std::optional<std::string> readTokenFile(const std::string& path, std::string& problem);

// Why the secret file at `path` is open to others than its owner, or "" when it is not (or
// cannot be looked at: reading it reports that). Group or other permissions are refused, except
// group read on a file owned by root: Kubernetes mounts Secrets that way (root:fsGroup, 0440),
// and only root or the file's group can read it then.
std::string unsafeSecretFileMode(const std::string& path);

}  // namespace pgfailover
