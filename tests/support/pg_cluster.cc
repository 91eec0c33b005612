#include "support/pg_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "support/process.h"

namespace pgfailover::testing {

using namespace std::chrono_literals;

namespace {

std::string nodeScriptsDir() {
  return std::string(PGFAILOVER_SOURCE_DIR) + "/scripts/node";
}

// Whether 127.0.0.1:port can be bound right now.
bool portBindable(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

bool isBindFailure(const std::string& log_file, const std::string& output) {
  std::string text = readTextFile(log_file) + "\n" + output;
  return text.find("could not bind") != std::string::npos ||
         text.find("Address already in use") != std::string::npos;
}

}  // namespace

std::string pgBinary(const std::string& name) {
  const char* env = std::getenv("PG_BIN");
  std::string dir = env != nullptr && *env != '\0' ? env : "/usr/lib/postgresql/15/bin";
  std::string path = dir + "/" + name;
  return ::access(path.c_str(), X_OK) == 0 ? path : name;
}

bool waitUntil(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

int runCommand(const std::string& command, std::string* output) {
  // Scripts have deadlines of their own; this one only keeps a hung command from hanging a test.
  return runCommand(command, output, std::chrono::minutes(10));
}

int freePort() {
  // Below the kernel's ephemeral range (32768+), so a port handed out here cannot be taken by
  // an outgoing connection before the server binds it; never the same port twice per process.
  static std::mutex mutex;
  static std::set<int> handed_out;
  static std::mt19937 random{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mutex);
  std::uniform_int_distribution<int> pick(20000, 32000);
  for (int attempt = 0; attempt < 500; ++attempt) {
    int port = pick(random);
    if (handed_out.count(port) != 0 || !portBindable(port)) continue;
    handed_out.insert(port);
    return port;
  }
  ADD_FAILURE() << "freePort: no free TCP port found on 127.0.0.1 in 20000..32000";
  return 0;
}

// ---------------------------------------------------------------------------------------------
// PgCluster

PgCluster::PgCluster(int replicas) : PgCluster(PgClusterOptions{replicas, {}, true}) {}

PgCluster::PgCluster(const PgClusterOptions& options) {
  ok_ = setUp(options);
}

bool PgCluster::setUp(const PgClusterOptions& options) {
  const char* base_env = std::getenv("PGFAILOVER_TEST_TMPDIR");
  std::string base = base_env != nullptr && *base_env != '\0' ? base_env : "/tmp";
  std::string pattern = base + "/pgfailover-test-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    ADD_FAILURE() << "PgCluster: mkdtemp(" << pattern << ") failed: " << std::strerror(errno);
    return false;
  }
  dir_ = buffer.data();
  // The server's OS user ("postgres" when the tests run as root) must reach its node folders.
  chmod(dir_.c_str(), 0755);

  password_ = randomToken(24);
  password_file_ = dir_ + "/pgfailover.password";
  replication_password_file_ = dir_ + "/replication.password";
  passfile_ = dir_ + "/pgpass";
  if (!writeTextFile(password_file_, password_, 0600) ||
      !writeTextFile(replication_password_file_, randomToken(24), 0600) ||
      !writeTextFile(passfile_, "127.0.0.1:*:*:" + user_ + ":" + password_ + "\n", 0600)) {
    ADD_FAILURE() << "PgCluster: cannot write password files in " << dir_ << ": "
                  << std::strerror(errno);
    return false;
  }

  for (int i = 0; i <= options.replicas; ++i) {
    std::string name = "pg" + std::to_string(i + 1);
    int port = freePort();
    if (port == 0) return false;
    nodes_.push_back(PgNode{name, port, dir_ + "/" + name + "/data"});
  }

  std::vector<std::string> common = {"--repl-user",
                                     replication_user_,
                                     "--repl-password-file",
                                     replication_password_file_,
                                     "--timeout",
                                     "60"};
  if (options.fast) {
    common.push_back("--no-sync");
    common.insert(common.end(), {"--set", "fsync = off"});
  }
  for (const auto& setting : options.settings) common.insert(common.end(), {"--set", setting});

  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    std::vector<std::string> args = common;
    args.insert(args.end(), {"--port", std::to_string(nodes_[i].port)});
    std::string script;
    if (i == 0) {
      script = "init-primary.sh";
      args.insert(args.end(), {"--superuser", user_, "--superuser-password-file", password_file_});
    } else {
      script = "clone-replica.sh";
      args.insert(args.end(), {"--primary-host", "127.0.0.1", "--primary-port",
                               std::to_string(nodes_[0].port)});
    }
    std::string output;
    int code = runNodeScript(i, script, args, &output);
    // Another process may have taken the port between freePort() and the server's bind.
    for (int retry = 0; code != 0 && retry < 3 && isBindFailure(logFile(i), output); ++retry) {
      runNodeScript(i, "stop.sh", {"--mode", "immediate", "--timeout", "10"});
      std::error_code ec;
      std::filesystem::remove_all(nodeDir(i), ec);
      nodes_[i].port = freePort();
      args.insert(args.end(), {"--port", std::to_string(nodes_[i].port)});  // the last one wins
      code = runNodeScript(i, script, args, &output);
    }
    if (code != 0) {
      ADD_FAILURE() << "PgCluster: scripts/node/" << script << " for " << nodes_[i].name
                    << " (port " << nodes_[i].port << ") failed with exit status " << code << ":\n"
                    << output;
      return false;
    }
  }
  return true;
}

PgCluster::~PgCluster() {
  const bool failed = ::testing::Test::HasFailure();
  if (failed) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      std::fprintf(stderr, "--- %s (port %d): last lines of %s ---\n%s", nodes_[i].name.c_str(),
                   nodes_[i].port, logFile(i).c_str(), tailFile(logFile(i), 40).c_str());
    }
  }
  for (std::size_t i = nodes_.size(); i-- > 0;) shutDown(i);
  if (dir_.empty()) return;
  const char* keep = std::getenv("PGFAILOVER_KEEP_TEST_DIRS");
  if (failed && keep != nullptr && std::string(keep) == "1") {
    std::fprintf(stderr, "PgCluster: kept %s (PGFAILOVER_KEEP_TEST_DIRS=1)\n", dir_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  if (ec)
    std::fprintf(stderr, "PgCluster: cannot remove %s: %s\n", dir_.c_str(), ec.message().c_str());
}

void PgCluster::shutDown(std::size_t i) {
  const std::string& data = nodes_[i].data_dir;
  if (!std::filesystem::exists(data)) return;
  // A paused (SIGSTOP) server cannot shut down.
  for (int pid : processesOf(i)) kill(pid, SIGCONT);
  if (postmasterPid(i) != 0) {
    std::string output;
    if (runNodeScript(i, "stop.sh", {"--mode", "immediate", "--timeout", "10"}, &output) != 0)
      std::fprintf(stderr, "PgCluster: stopping %s failed:\n%s\n", nodes_[i].name.c_str(),
                   output.c_str());
  }
  if (!waitUntil([&] { return processesWorkingIn(data).empty(); }, 10s)) {
    for (int pid : processesWorkingIn(data)) kill(pid, SIGKILL);
    waitUntil([&] { return processesWorkingIn(data).empty(); }, 5s);
  }
}

std::string PgCluster::nodeDir(std::size_t i) const {
  return std::filesystem::path(nodes_.at(i).data_dir).parent_path().string();
}

std::string PgCluster::logFile(std::size_t i) const {
  return nodeDir(i) + "/postgresql.log";
}

std::string PgCluster::replicationPassfile(std::size_t i) const {
  return nodeDir(i) + "/replication.pgpass";
}

int PgCluster::runNodeScript(std::size_t i, const std::string& script,
                             const std::vector<std::string>& args, std::string* output) const {
  std::vector<std::string> argv = {
      "bash", nodeScriptsDir() + "/" + script, "--dir", nodeDir(i), "--name", nodes_.at(i).name};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions options;
  options.merge_stderr = true;
  options.timeout = 300s;
  ProcessResult result = runProcess(argv, options);
  if (output != nullptr) *output = result.out;
  return result.exit_code;
}

std::string PgCluster::dsn(std::size_t i) const {
  return "host=127.0.0.1 port=" + std::to_string(nodes_.at(i).port) +
         " dbname=postgres user=" + user_ + " password=" + password_ + " connect_timeout=5";
}

std::string PgCluster::sql(std::size_t i, const std::string& query, bool* ok) const {
  std::string conninfo = "host=127.0.0.1 port=" + std::to_string(nodes_.at(i).port) +
                         " dbname=postgres user=" + user_ + " connect_timeout=5";
  ProcessOptions options;
  options.env = {{"PGPASSFILE", passfile_}, {"PGAPPNAME", "pgfailover-tests"}};
  options.timeout = 30s;
  ProcessResult result = runProcess({pgBinary("psql"), "-X", "-A", "-t", "-q", "-v",
                                     "ON_ERROR_STOP=1", "-d", conninfo, "-c", query},
                                    options);
  if (ok != nullptr) *ok = result.ok();
  return result.ok() ? trim(result.out) : "";
}

int PgCluster::postmasterPid(std::size_t i) const {
  const std::string& data = nodes_.at(i).data_dir;
  std::string content = readTextFile(data + "/postmaster.pid");
  int pid = std::atoi(content.c_str());
  if (pid <= 0 || !processAlive(pid)) return 0;
  // The PID of a crashed postmaster may have been reused: the postmaster works in its data dir.
  char link[4096];
  std::string proc = "/proc/" + std::to_string(pid) + "/cwd";
  ssize_t n = readlink(proc.c_str(), link, sizeof link - 1);
  if (n > 0) {
    std::error_code ec;
    auto canonical = std::filesystem::weakly_canonical(data, ec).string();
    if (std::string(link, static_cast<std::size_t>(n)) != canonical) return 0;
  }
  return pid;
}

std::vector<int> PgCluster::processesOf(std::size_t i) const {
  std::vector<int> pids = processesWorkingIn(nodes_.at(i).data_dir);
  if (int pm = postmasterPid(i); pm != 0) {
    for (int child : childProcesses(pm))
      if (std::find(pids.begin(), pids.end(), child) == pids.end()) pids.push_back(child);
    if (std::find(pids.begin(), pids.end(), pm) == pids.end()) pids.push_back(pm);
  }
  return pids;
}

void PgCluster::kill9(std::size_t i) {
  const PgNode& node = nodes_.at(i);
  int pid = postmasterPid(i);
  if (pid == 0) {
    ADD_FAILURE() << "kill9: " << node.name << " (port " << node.port << ") is not running";
    return;
  }
  kill(pid, SIGKILL);
  if (!waitUntil([&] { return !processAlive(pid); }, 10s)) {
    ADD_FAILURE() << "kill9: postmaster " << pid << " of " << node.name
                  << " still alive 10 s after SIGKILL";
    return;
  }
  // The dead postmaster holds its lock file until its parent (PID 1) reaps it; start.sh waits
  // for that too, so this is only to hand back a settled node.
  waitUntil([&] { return !std::filesystem::exists("/proc/" + std::to_string(pid)); }, 10s);
  // Its backends notice the postmaster's death and exit on their own; until they have, the old
  // shared memory is in use and the node could not start again.
  if (!waitUntil([&] { return processesWorkingIn(node.data_dir).empty(); }, 10s)) {
    for (int left : processesWorkingIn(node.data_dir)) kill(left, SIGKILL);
    waitUntil([&] { return processesWorkingIn(node.data_dir).empty(); }, 5s);
  }
}

void PgCluster::stop(std::size_t i) {
  const PgNode& node = nodes_.at(i);
  int pid = postmasterPid(i);
  if (pid == 0) {
    ADD_FAILURE() << "stop: " << node.name << " (port " << node.port << ") is not running";
    return;
  }
  kill(pid, SIGSTOP);  // first, so that it forks no new children meanwhile
  for (int p : processesOf(i))
    if (p != pid) kill(p, SIGSTOP);
}

void PgCluster::resume(std::size_t i) {
  int pid = postmasterPid(i);
  for (int p : processesOf(i))
    if (p != pid) kill(p, SIGCONT);
  if (pid != 0) kill(pid, SIGCONT);
}

void PgCluster::start(std::size_t i) {
  std::string output;
  int code = runNodeScript(i, "start.sh", {"--timeout", "60"}, &output);
  if (code != 0) {
    ADD_FAILURE() << "start: scripts/node/start.sh for " << nodes_.at(i).name << " (port "
                  << nodes_.at(i).port << ") failed with exit status " << code << ":\n"
                  << output;
  }
}

bool PgCluster::isRunning(std::size_t i) const {
  return postmasterPid(i) != 0;
}

bool PgCluster::isStreaming(std::size_t i) const {
  bool ok = false;
  return sql(i, "SELECT status FROM pg_stat_wal_receiver", &ok) == "streaming" && ok;
}

// ---------------------------------------------------------------------------------------------
// TcpForwarder

namespace {

constexpr std::size_t kBufferLimit = 64 * 1024;

struct Direction {
  std::string buffer;
  bool eof = false;   // the reading side sent FIN
  bool shut = false;  // FIN passed on to the writing side
};

struct Connection {
  int client = -1;
  int server = -1;
  bool connecting = true;  // non-blocking connect to the target in progress
  Direction up;            // client -> server
  Direction down;          // server -> client
  bool dead = false;
};

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Moves bytes for one readable/writable socket; false when the connection must close.
bool pump(int from, int to, Direction& d, short from_events, short to_events) {
  if ((from_events & (POLLIN | POLLHUP | POLLERR)) != 0 && !d.eof &&
      d.buffer.size() < kBufferLimit) {
    char chunk[16384];
    ssize_t n = recv(from, chunk, std::min(sizeof chunk, kBufferLimit - d.buffer.size()), 0);
    if (n > 0)
      d.buffer.append(chunk, static_cast<std::size_t>(n));
    else if (n == 0)
      d.eof = true;
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return false;
  }
  if ((to_events & (POLLOUT | POLLERR | POLLHUP)) != 0 && !d.buffer.empty()) {
    ssize_t n = send(to, d.buffer.data(), d.buffer.size(), MSG_NOSIGNAL);
    if (n > 0)
      d.buffer.erase(0, static_cast<std::size_t>(n));
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return false;
  }
  if (d.eof && d.buffer.empty() && !d.shut) {
    shutdown(to, SHUT_WR);
    d.shut = true;
  }
  return true;
}

}  // namespace

struct TcpForwarder::Impl {
  int target_port = 0;
  int listen_fd = -1;
  int port = 0;
  int wake[2] = {-1, -1};
  std::atomic<bool> paused{false};
  std::atomic<bool> stopping{false};
  std::atomic<bool> close_all{false};
  std::atomic<int> connection_count{0};
  std::mutex mutex;
  std::condition_variable acknowledged;
  std::uint64_t requests = 0;  // bumped by pause/resume/closeAll
  std::uint64_t served = 0;    // the loop's answer
  std::vector<Connection> connections;
  std::thread thread;

  void poke() {
    char byte = 1;
    (void)!write(wake[1], &byte, 1);
  }

  // Waits until the loop has seen every request made so far.
  void request() {
    std::unique_lock<std::mutex> lock(mutex);
    std::uint64_t mine = ++requests;
    poke();
    acknowledged.wait_for(lock, 2s, [&] { return served >= mine; });
  }

  void acceptAll() {
    while (true) {
      int client = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client < 0) return;
      Connection c;
      c.client = client;
      c.server = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_port));
      if (c.server < 0 ||
          (connect(c.server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
           errno != EINPROGRESS)) {
        // The target refuses: so does the forwarder (the client sees the connection close).
        closeFd(c.server);
        closeFd(c.client);
        continue;
      }
      connections.push_back(std::move(c));
    }
  }

  void run() {
    while (!stopping.load()) {
      std::uint64_t seen;
      {
        std::lock_guard<std::mutex> lock(mutex);
        seen = requests;
      }
      if (close_all.exchange(false)) {
        for (auto& c : connections) {
          linger hard{1, 0};  // close with RST
          setsockopt(c.client, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
          setsockopt(c.server, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
          closeFd(c.client);
          closeFd(c.server);
        }
        connections.clear();
        connection_count.store(0);
      }
      const bool is_paused = paused.load();
      {
        std::lock_guard<std::mutex> lock(mutex);
        served = seen;
      }
      acknowledged.notify_all();

      std::vector<pollfd> fds;
      fds.push_back({wake[0], POLLIN, 0});
      if (!is_paused) fds.push_back({listen_fd, POLLIN, 0});
      const std::size_t first = fds.size();
      if (!is_paused) {
        for (auto& c : connections) {
          short client_events = 0, server_events = 0;
          if (c.connecting) {
            server_events = POLLOUT;
          } else {
            if (!c.up.eof && c.up.buffer.size() < kBufferLimit) client_events |= POLLIN;
            if (!c.down.buffer.empty()) client_events |= POLLOUT;
            if (!c.down.eof && c.down.buffer.size() < kBufferLimit) server_events |= POLLIN;
            if (!c.up.buffer.empty()) server_events |= POLLOUT;
          }
          fds.push_back({c.client, client_events, 0});
          fds.push_back({c.server, server_events, 0});
        }
      }
      int ready = poll(fds.data(), fds.size(), 1000);
      if (ready < 0 && errno != EINTR) break;
      if ((fds[0].revents & POLLIN) != 0) {
        char drain[64];
        while (read(wake[0], drain, sizeof drain) > 0) {
        }
      }
      if (is_paused || ready <= 0) continue;
      if ((fds[1].revents & POLLIN) != 0) acceptAll();
      for (std::size_t k = 0; first + 2 * k + 1 < fds.size() && k < connections.size(); ++k) {
        Connection& c = connections[k];
        short ce = fds[first + 2 * k].revents, se = fds[first + 2 * k + 1].revents;
        if (c.connecting) {
          if (se == 0) continue;
          int error = 0;
          socklen_t len = sizeof error;
          getsockopt(c.server, SOL_SOCKET, SO_ERROR, &error, &len);
          if (error != 0) {
            c.dead = true;
            continue;
          }
          c.connecting = false;
          continue;
        }
        if (((ce | se) & (POLLERR | POLLNVAL)) != 0) {
          c.dead = true;
          continue;
        }
        if (!pump(c.client, c.server, c.up, ce, se) || !pump(c.server, c.client, c.down, se, ce))
          c.dead = true;
        // A side that hung up both ways after its FIN was read can take nothing more.
        if (((ce & POLLHUP) != 0 && c.up.eof && c.up.buffer.empty()) ||
            ((se & POLLHUP) != 0 && c.down.eof && c.down.buffer.empty()))
          c.dead = true;
        if (c.up.shut && c.down.shut) c.dead = true;
      }
      for (auto& c : connections) {
        if (!c.dead) continue;
        closeFd(c.client);
        closeFd(c.server);
      }
      connections.erase(std::remove_if(connections.begin(), connections.end(),
                                       [](const Connection& c) { return c.dead; }),
                        connections.end());
      connection_count.store(static_cast<int>(connections.size()));
    }
    for (auto& c : connections) {
      closeFd(c.client);
      closeFd(c.server);
    }
    connections.clear();
    connection_count.store(0);
  }
};

TcpForwarder::TcpForwarder(int target_port) : impl_(std::make_unique<Impl>()) {
  impl_->target_port = target_port;
  if (pipe2(impl_->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    ADD_FAILURE() << "TcpForwarder: pipe2 failed: " << std::strerror(errno);
    return;
  }
  impl_->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (impl_->listen_fd < 0 ||
      bind(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(impl_->listen_fd, 128) != 0 ||
      getsockname(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "TcpForwarder: cannot listen on 127.0.0.1: " << std::strerror(errno);
    closeFd(impl_->listen_fd);
    return;
  }
  impl_->port = ntohs(addr.sin_port);
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

TcpForwarder::~TcpForwarder() {
  impl_->stopping.store(true);
  if (impl_->wake[1] >= 0) impl_->poke();
  if (impl_->thread.joinable()) impl_->thread.join();
  closeFd(impl_->listen_fd);
  closeFd(impl_->wake[0]);
  closeFd(impl_->wake[1]);
}

int TcpForwarder::listenPort() const {
  return impl_->port;
}

void TcpForwarder::pause() {
  impl_->paused.store(true);
  impl_->request();
}

void TcpForwarder::resume() {
  impl_->paused.store(false);
  impl_->request();
}

void TcpForwarder::closeAll() {
  impl_->close_all.store(true);
  impl_->request();
}

int TcpForwarder::connectionCount() const {
  return impl_->connection_count.load();
}

}  // namespace pgfailover::testing
