// Tells the service manager how the daemon is doing (sd_notify(3)): READY=1 once the HTTP API
// listens and the first tick ran, WATCHDOG=1 after every tick (so a wedged tick loop gets the
// daemon restarted), RELOADING=1 / READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM, and a
// STATUS= line for `systemctl status`. Without $NOTIFY_SOCKET (not under systemd, or
// Type=simple) every call does nothing.
#pragma once

#include <string>

namespace pgfailover::runtime {

class ServiceNotifier {
 public:
  void ready(const std::string& status);
  void watchdog();
  // systemd 253+ wants the monotonic time of the reload's start with RELOADING=1; 252 ignores it.
  void reloading();
  void reloaded(const std::string& status);
  void stopping();
  void status(const std::string& status);
  // The watchdog interval systemd asks for (WatchdogSec=), 0 when none.
  static long long watchdogUsec();
};

}  // namespace pgfailover::runtime
