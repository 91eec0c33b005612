// A plain TCP client socket for tests that must misbehave on purpose (send a header one byte at
// a time, stay idle, stream a body that is never announced): connects from a chosen loopback
// source address, sends and receives with deadlines, and tells whether the server closed it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace pgfailover::testing {

class RawSocket {
 public:
  // Connects to 127.0.0.1:port from `source` (any 127.x.y.z: each is its own client address to
  // the server). ok() is false when the connection failed.
  RawSocket(int port, const std::string& source = "127.0.0.1");
  ~RawSocket();
  RawSocket(RawSocket&& other) noexcept;
  RawSocket& operator=(RawSocket&& other) noexcept;
  RawSocket(const RawSocket&) = delete;

  bool ok() const { return fd_ >= 0; }
  // Sends all of `data`; false when the server closed or reset the connection.
  bool send(const std::string& data);
  // Whatever arrives until the server closes, `expect` bytes are in, or `timeout` passes.
  std::string receive(std::chrono::milliseconds timeout, std::size_t expect = 1 << 20);
  // True when the server closed the connection within `timeout` (EOF or reset).
  bool closedWithin(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
};

// A loopback port that listens and never answers: a connection to it waits in the backlog,
// where connected() finds it (a test that something never connects).
class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;

  bool ok() const { return fd_ >= 0 && port_ != 0; }
  int port() const { return port_; }
  // Takes one waiting connection, if any, and closes it.
  bool connected() const;

 private:
  int fd_ = -1;
  int port_ = 0;
};

// "VmRSS" / "VmHWM" of /proc/PID/status, in kB; -1 when unreadable.
long procStatusKb(int pid, const std::string& field);

}  // namespace pgfailover::testing
