#include "runtime/service_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdint>

namespace pgfailover::runtime {

namespace {

// A status line goes into one datagram; keep it to one line.
std::string oneLine(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

void send(const std::string& message) {
  // 0: keep $NOTIFY_SOCKET, every later notification needs it. A failure is not worth a log
  // line per tick: systemd itself reports a missing READY or WATCHDOG.
  sd_notify(0, message.c_str());
}

}  // namespace

void ServiceNotifier::ready(const std::string& status) {
  send("READY=1\nSTATUS=" + oneLine(status));
}

void ServiceNotifier::watchdog() {
  send("WATCHDOG=1");
}

void ServiceNotifier::reloading() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000u +
                    static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) +
       "\nSTATUS=reloading the configuration");
}

void ServiceNotifier::reloaded(const std::string& status) {
  send("READY=1\nSTATUS=" + oneLine(status));
}

void ServiceNotifier::stopping() {
  send("STOPPING=1\nSTATUS=stopping");
}

void ServiceNotifier::status(const std::string& status) {
  send("STATUS=" + oneLine(status));
}

long long ServiceNotifier::watchdogUsec() {
  std::uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? static_cast<long long>(usec) : 0;
}

}  // namespace pgfailover::runtime
