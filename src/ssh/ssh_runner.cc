#include "ssh/ssh_runner.h"

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "ssh/shell.h"

namespace pgfailover::ssh {
namespace {

using Clock = std::chrono::steady_clock;

struct SessionDeleter {
  void operator()(ssh_session session) const noexcept {
    // Sends SSH_MSG_DISCONNECT without waiting for anything, then closes the socket.
    ssh_disconnect(session);
    ssh_free(session);
  }
};
struct ChannelDeleter {
  void operator()(ssh_channel channel) const noexcept { ssh_channel_free(channel); }
};
struct KeyDeleter {
  void operator()(ssh_key key) const noexcept { ssh_key_free(key); }
};
struct HashDeleter {
  void operator()(unsigned char* hash) const noexcept { ssh_clean_pubkey_hash(&hash); }
};
struct CharDeleter {
  void operator()(char* text) const noexcept { ssh_string_free_char(text); }
};
using SessionPtr = std::unique_ptr<ssh_session_struct, SessionDeleter>;
using ChannelPtr = std::unique_ptr<ssh_channel_struct, ChannelDeleter>;
using KeyPtr = std::unique_ptr<ssh_key_struct, KeyDeleter>;
using HashPtr = std::unique_ptr<unsigned char, HashDeleter>;
using CharPtr = std::unique_ptr<char, CharDeleter>;

// Waits between two steps of a non-blocking libssh call: while the handshake runs, short
// slices, since libssh may be waiting for the socket to become writable (TCP connect) and we
// poll for readability only; while a command runs, longer ones.
constexpr Millis kHandshakeSlice{20};
constexpr Millis kCommandSlice{200};

Millis millisLeft(SteadyTime until) {
  auto left = std::chrono::ceil<Millis>(until - Clock::now());
  return std::max(left, Millis{0});
}

// Blocks until the session's socket has something for libssh (or can take what libssh has
// queued), for at most `slice` and never past `until`.
void waitForSocket(ssh_session session, SteadyTime until, Millis slice) {
  int wait_ms = static_cast<int>(std::min(slice, millisLeft(until)).count());
  if (wait_ms <= 0) return;
  int flags = ssh_get_poll_flags(session);
  if ((flags & SSH_READ_PENDING) != 0) return;
  socket_t fd = ssh_get_fd(session);
  if (fd == SSH_INVALID_SOCKET) {
    // No socket yet (name resolution inside ssh_connect): nothing to wait on but time.
    poll(nullptr, 0, std::min(wait_ms, 5));
    return;
  }
  pollfd pfd{};
  pfd.fd = fd;
  pfd.events = static_cast<short>(POLLIN | ((flags & SSH_WRITE_PENDING) != 0 ? POLLOUT : 0));
  poll(&pfd, 1, wait_ms);
}

// "ssh postgres@10.0.0.2:22", the start of every message about this target.
std::string describeTarget(const SshTarget& target) {
  std::string user = target.user.empty() ? "" : target.user + "@";
  return "ssh " + user + target.host + ":" + std::to_string(target.port);
}

std::string lastError(ssh_session session) {
  const char* message = ssh_get_error(session);
  if (message == nullptr || *message == '\0') return "unknown libssh error";
  return message;
}

// libssh would let OpenSSL prompt on the terminal for an encrypted key's passphrase; this
// callback answers every prompt with a refusal instead, so loading such a key simply fails.
int refusePassphrase(const char*, char*, std::size_t, int, int, void*) {
  return -1;
}

// "[host]:port", the name the host's key has in known_hosts (plain "host" on port 22).
std::string knownHostsName(const SshTarget& target) {
  if (target.port == 22) return target.host;
  return "[" + target.host + "]:" + std::to_string(target.port);
}

std::string keyscanHint(const SshTarget& target) {
  std::string scan = "ssh-keyscan ";
  if (target.port != 22) scan += "-p " + std::to_string(target.port) + " ";
  return scan + target.host + " >> " + shellQuote(target.known_hosts_file);
}

// "ssh-ed25519 SHA256:..." for the key the server presented, or "" if it cannot be read.
std::string serverKeyDescription(ssh_session session) {
  ssh_key raw = nullptr;
  if (ssh_get_server_publickey(session, &raw) != SSH_OK) return "";
  KeyPtr key(raw);
  unsigned char* raw_hash = nullptr;
  std::size_t length = 0;
  if (ssh_get_publickey_hash(key.get(), SSH_PUBLICKEY_HASH_SHA256, &raw_hash, &length) != 0)
    return "";
  HashPtr hash(raw_hash);
  CharPtr fingerprint(ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash.get(), length));
  const char* type = ssh_key_type_to_char(ssh_key_type(key.get()));
  std::string text = type != nullptr ? type : "unknown-type";
  if (fingerprint) text += std::string(" ") + fingerprint.get();
  return text;
}

Status checkReadable(const std::string& path, const std::string& what, const std::string& prefix,
                     const std::string& fix) {
  if (path.empty()) {
    return {StatusCode::kFailedPrecondition, prefix + "no " + what + " configured; " + fix};
  }
  if (access(path.c_str(), R_OK) != 0) {
    int error = errno;
    return {StatusCode::kFailedPrecondition, prefix + "cannot read " + what + " '" + path +
                                                 "': " + std::strerror(error) + "; " + fix};
  }
  return Status::ok();
}

// How the command ended, as libssh's channel callbacks report it while we pump the session.
struct ChannelEnd {
  bool have_exit_status = false;
  int exit_status = -1;
  std::string exit_signal;
  bool closed_by_remote = false;
};

// A session channel with our callbacks registered on it. libssh keeps a channel freed before
// the server closed it until the server's close arrives, and would then call the callbacks:
// the destructor unregisters them first, so they never outlive this object.
class CommandChannel {
 public:
  explicit CommandChannel(ssh_channel channel) : channel_(channel) {
    ssh_callbacks_init(&callbacks_);
    callbacks_.userdata = &end_;
    callbacks_.channel_exit_status_function = onExitStatus;
    callbacks_.channel_exit_signal_function = onExitSignal;
    callbacks_.channel_close_function = onClose;
    registered_ = ssh_set_channel_callbacks(channel_.get(), &callbacks_) == SSH_OK;
  }
  ~CommandChannel() {
    if (registered_) ssh_remove_channel_callbacks(channel_.get(), &callbacks_);
  }
  CommandChannel(const CommandChannel&) = delete;
  CommandChannel& operator=(const CommandChannel&) = delete;

  ssh_channel get() const { return channel_.get(); }
  const ChannelEnd& end() const { return end_; }
  bool closed() const {
    return end_.closed_by_remote || ssh_channel_is_closed(channel_.get()) != 0;
  }

 private:
  static void onExitStatus(ssh_session, ssh_channel, int exit_status, void* userdata) {
    auto* end = static_cast<ChannelEnd*>(userdata);
    end->have_exit_status = true;
    end->exit_status = exit_status;
  }
  static void onExitSignal(ssh_session, ssh_channel, const char* signal, int, const char*,
                           const char*, void* userdata) {
    auto* end = static_cast<ChannelEnd*>(userdata);
    end->exit_signal = signal != nullptr && *signal != '\0' ? signal : "UNKNOWN";
  }
  static void onClose(ssh_session, ssh_channel, void* userdata) {
    static_cast<ChannelEnd*>(userdata)->closed_by_remote = true;
  }

  ChannelEnd end_;
  ssh_channel_callbacks_struct callbacks_{};
  bool registered_ = false;
  ChannelPtr channel_;  // declared last: freed first, after the callbacks are unregistered
};

}  // namespace

// One connected, verified and authenticated libssh session.
class SshRunner::Session {
 public:
  explicit Session(SessionPtr session) : session_(std::move(session)) {}
  ssh_session get() const { return session_.get(); }
  bool alive() const { return ssh_is_connected(session_.get()) != 0; }

 private:
  SessionPtr session_;
};

namespace {

struct ConnectOutcome {
  SessionPtr session;
  Status status;
};

// Connects, verifies the host key and authenticates, all before `until`. `deadline_is_callers`
// tells whether `until` is the caller's deadline (kDeadlineExceeded) or only connect_timeout
// (kUnavailable: the host did not answer in time).
ConnectOutcome connectSession(const SshTarget& target, SteadyTime until, bool deadline_is_callers) {
  const std::string prefix = describeTarget(target) + ": ";
  const auto started = Clock::now();
  auto timedOut = [&](const char* stage) -> ConnectOutcome {
    std::string message = prefix + "timed out " + stage + " after " +
                          std::to_string(elapsed(started, Clock::now()).count()) + " ms";
    if (deadline_is_callers) return {nullptr, {StatusCode::kDeadlineExceeded, message}};
    return {nullptr, {StatusCode::kUnavailable, message + " (connect timeout)"}};
  };

  // Local checks first: a setup mistake is reported without touching the network.
  Status readable = checkReadable(
      target.known_hosts_file, "known_hosts file", prefix,
      "pgfailover only connects to hosts whose key it already knows; create it with: " +
          keyscanHint(target) + " (and compare the fingerprint with the host's own)");
  if (!readable.isOk()) return {nullptr, readable};
  readable = checkReadable(target.private_key_file, "private key file", prefix,
                           "create a key pair with: ssh-keygen -t ed25519 -N '' -f FILE and "
                           "add FILE.pub to ~" +
                               target.user + "/.ssh/authorized_keys on " + target.host);
  if (!readable.isOk()) return {nullptr, readable};
  ssh_key raw_key = nullptr;
  if (ssh_pki_import_privkey_file(target.private_key_file.c_str(), nullptr, refusePassphrase,
                                  nullptr, &raw_key) != SSH_OK) {
    return {nullptr,
            {StatusCode::kFailedPrecondition,
             prefix + "cannot load private key file '" + target.private_key_file +
                 "': not a private key, or protected by a passphrase (pgfailover runs "
                 "unattended and needs a key without one)"}};
  }
  KeyPtr key(raw_key);

  SessionPtr session(ssh_new());
  if (!session) return {nullptr, {StatusCode::kInternal, prefix + "ssh_new failed"}};
  ssh_session s = session.get();
  const unsigned int port = static_cast<unsigned int>(target.port);
  const int no = 0;
  const int yes = 1;
  // Only what is configured here counts: no ~/.ssh/config (it could turn host key checking
  // off), and the "global" known_hosts is the configured file too, so /etc/ssh/ssh_known_hosts
  // cannot vouch for a host.
  if (ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_HOST, target.host.c_str()) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_PORT, &port) != SSH_OK ||
      (!target.user.empty() &&
       ssh_options_set(s, SSH_OPTIONS_USER, target.user.c_str()) != SSH_OK) ||
      ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, target.known_hosts_file.c_str()) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, target.known_hosts_file.c_str()) !=
          SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_STRICTHOSTKEYCHECK, &yes) != SSH_OK) {
    return {nullptr, {StatusCode::kInvalidArgument, prefix + "invalid option: " + lastError(s)}};
  }
  // Non-blocking: each libssh call does what it can and returns SSH_AGAIN; we wait in poll(2)
  // with the time left, so a silent host cannot hold us past `until`.
  ssh_set_blocking(s, 0);

  for (;;) {
    int rc = ssh_connect(s);
    if (rc == SSH_OK) break;
    if (rc != SSH_AGAIN) {
      return {nullptr, {StatusCode::kUnavailable, prefix + "unable to connect: " + lastError(s)}};
    }
    if (Clock::now() >= until) return timedOut("connecting");
    waitForSocket(s, until, kHandshakeSlice);
  }

  const std::string where = knownHostsName(target);
  const std::string file = "'" + target.known_hosts_file + "'";
  const std::string key_text = serverKeyDescription(s);
  switch (ssh_session_is_known_server(s)) {
    case SSH_KNOWN_HOSTS_OK:
      break;
    case SSH_KNOWN_HOSTS_CHANGED:
      return {nullptr,
              {StatusCode::kFailedPrecondition,
               prefix + "host key verification failed: the host key of " + where + " (" + key_text +
                   ") does not match the one in known_hosts file " + file +
                   ". The host may have been reinstalled, or someone may be intercepting the "
                   "connection; refusing to connect. Once the new key is confirmed out of band, "
                   "replace the entry: ssh-keygen -R '" +
                   where + "' -f " + file + " && " + keyscanHint(target)}};
    case SSH_KNOWN_HOSTS_OTHER:
      return {nullptr,
              {StatusCode::kFailedPrecondition,
               prefix + "host key verification failed: known_hosts file " + file +
                   " holds a key of another type for " + where + ", and the host presented " +
                   key_text +
                   "; refusing to connect. Once the key is confirmed out of band, "
                   "add it: " +
                   keyscanHint(target)}};
    case SSH_KNOWN_HOSTS_UNKNOWN:
      return {nullptr,
              {StatusCode::kFailedPrecondition,
               prefix + "host key verification failed: " + where + " is not in known_hosts file " +
                   file + " (the host presented " + key_text +
                   "); pgfailover never trusts a host key on first use. After checking the "
                   "fingerprint on the host, add it: " +
                   keyscanHint(target)}};
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      return {nullptr,
              {StatusCode::kFailedPrecondition,
               prefix + "host key verification failed: known_hosts file " + file +
                   " not found; create it with: " + keyscanHint(target)}};
    case SSH_KNOWN_HOSTS_ERROR:
    default:
      return {nullptr,
              {StatusCode::kFailedPrecondition,
               prefix + "host key verification failed: cannot check the host key against " + file +
                   ": " + lastError(s)}};
  }

  for (;;) {
    int rc = ssh_userauth_publickey(s, nullptr, key.get());
    if (rc == SSH_AUTH_SUCCESS) break;
    if (rc == SSH_AUTH_DENIED || rc == SSH_AUTH_PARTIAL) {
      return {nullptr,
              {StatusCode::kUnauthenticated,
               prefix + "the host refused private key '" + target.private_key_file +
                   "' for user '" + target.user + "'" +
                   (rc == SSH_AUTH_PARTIAL ? " (it asks for a further method, which pgfailover "
                                             "does not offer)"
                                           : "") +
                   "; add the public key to ~" + target.user + "/.ssh/authorized_keys on " +
                   target.host}};
    }
    if (rc != SSH_AUTH_AGAIN) {
      return {nullptr,
              {StatusCode::kUnavailable, prefix + "authentication failed: " + lastError(s)}};
    }
    if (Clock::now() >= until) return timedOut("authenticating");
    waitForSocket(s, until, kHandshakeSlice);
  }
  return {std::move(session), Status::ok()};
}

}  // namespace

SshRunner::SshRunner(SshTarget target) : target_(std::move(target)) {}

SshRunner::~SshRunner() = default;

std::string SshRunner::describe() const {
  return describeTarget(target_);
}

void SshRunner::disconnect() {
  std::lock_guard lock(mutex_);
  session_.reset();
}

CommandResult SshRunner::run(const std::string& command, Millis deadline) {
  const auto start = Clock::now();
  const auto until = start + deadline;
  const std::string prefix = describe() + ": ";
  CommandResult result;
  auto finish = [&](Status status) {
    result.status = std::move(status);
    result.took = elapsed(start, Clock::now());
    return result;
  };
  auto deadlinePassed = [&](const std::string& while_doing) {
    return finish(
        {StatusCode::kDeadlineExceeded,
         prefix + "deadline of " + std::to_string(deadline.count()) + " ms passed " + while_doing});
  };

  std::unique_lock lock(mutex_, std::defer_lock);
  if (!lock.try_lock_until(until)) {
    return deadlinePassed("waiting for the previous command on this host to finish");
  }

  // Opens a channel on the current session, connecting first when there is none. A reused
  // session may have died since its last command (sshd restarted, host rebooted): when its
  // channel cannot be opened within connect_timeout it is dropped and one fresh session is
  // tried, which is safe because nothing ran yet.
  std::unique_ptr<CommandChannel> channel;
  for (int attempt = 0; !channel; ++attempt) {
    if (session_ && !session_->alive()) session_.reset();
    bool fresh = false;
    if (!session_) {
      auto connect_until = std::min(until, Clock::now() + target_.connect_timeout);
      ConnectOutcome outcome = connectSession(target_, connect_until, connect_until == until);
      if (!outcome.status.isOk()) return finish(outcome.status);
      session_ = std::make_unique<Session>(std::move(outcome.session));
      connect_count_.fetch_add(1);
      fresh = true;
    }
    ssh_session s = session_->get();
    ssh_channel raw = ssh_channel_new(s);
    if (raw == nullptr) {
      session_.reset();
      return finish({StatusCode::kInternal, prefix + "ssh_channel_new failed"});
    }
    auto candidate = std::make_unique<CommandChannel>(raw);
    auto open_until = std::min(until, Clock::now() + target_.connect_timeout);
    int rc = SSH_AGAIN;
    while ((rc = ssh_channel_open_session(candidate->get())) == SSH_AGAIN &&
           Clock::now() < open_until) {
      waitForSocket(s, open_until, kHandshakeSlice);
    }
    if (rc == SSH_OK) {
      channel = std::move(candidate);
      break;
    }
    std::string why = rc == SSH_AGAIN ? "no answer" : lastError(s);
    candidate.reset();
    session_.reset();
    if (Clock::now() >= until) return deadlinePassed("opening a channel");
    if (fresh || attempt > 0) {
      return finish({StatusCode::kUnavailable, prefix + "unable to open a channel: " + why});
    }
  }
  ssh_session s = session_->get();
  // Drops the channel and then the session, in that order (a session frees its channels).
  auto abandon = [&]() {
    channel.reset();
    session_.reset();
  };

  // From here on the command may be running: whatever happens, it is not retried.
  int rc = SSH_AGAIN;
  while ((rc = ssh_channel_request_exec(channel->get(), command.c_str())) == SSH_AGAIN &&
         Clock::now() < until) {
    waitForSocket(s, until, kHandshakeSlice);
  }
  if (rc != SSH_OK) {
    std::string why = rc == SSH_AGAIN ? "" : lastError(s);
    abandon();
    if (rc == SSH_AGAIN) return deadlinePassed("starting the command");
    return finish(
        {StatusCode::kUnavailable, prefix + "the host did not start the command (" + why + ")"});
  }

  OutputCapture out;
  OutputCapture err;
  bool eof[2] = {false, false};
  char buffer[16384];
  auto collect = [&]() {
    result.stdout_text = out.text();
    result.stderr_text = err.text();
    result.output_truncated = out.truncated() || err.truncated();
  };

  for (;;) {
    bool progressed = false;
    for (int is_stderr = 0; is_stderr < 2; ++is_stderr) {
      while (!eof[is_stderr]) {
        int n = ssh_channel_read_nonblocking(channel->get(), buffer, sizeof buffer, is_stderr);
        if (n > 0) {
          (is_stderr != 0 ? err : out).append(buffer, static_cast<std::size_t>(n));
          progressed = true;
          continue;
        }
        if (n == SSH_EOF || (n == 0 && channel->closed())) {
          eof[is_stderr] = true;
          progressed = true;
        } else if (n != 0) {
          collect();
          std::string why = lastError(s);
          abandon();
          return finish({StatusCode::kUnavailable,
                         prefix +
                             "connection lost while the command ran (it may have run in "
                             "part): " +
                             why});
        }
        break;
      }
    }
    if (eof[0] && eof[1]) {
      // Pumps the session once (non-blocking) so exit-status and close messages are read.
      ssh_channel_get_exit_status(channel->get());
      const ChannelEnd& end = channel->end();
      if (end.have_exit_status || !end.exit_signal.empty() || channel->closed()) break;
      if (ssh_is_connected(s) == 0) break;
    }
    if (Clock::now() >= until) {
      collect();
      // Ask sshd to SIGKILL the command (OpenSSH signals its process group), then give up on
      // the channel and the session: the next run() starts from a clean connection.
      ssh_channel_request_send_signal(channel->get(), "KILL");
      ssh_channel_close(channel->get());
      abandon();
      return deadlinePassed("while the command ran; it was sent SIGKILL");
    }
    if (!progressed) waitForSocket(s, until, kCommandSlice);
  }

  collect();
  const ChannelEnd end = channel->end();
  // Closing is left to the channel's destructor (ssh_channel_free sends the close).
  channel.reset();
  if (end.have_exit_status) {
    result.exit_code = end.exit_status;
  } else if (!end.exit_signal.empty()) {
    result.signal = end.exit_signal;
  } else {
    session_.reset();
    return finish({StatusCode::kUnavailable,
                   prefix + "the channel closed before the command reported how it ended"});
  }
  return finish(Status::ok());
}

}  // namespace pgfailover::ssh
