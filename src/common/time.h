// Time types shared by every module. The decision core never reads a clock: the runtime reads
// one clock pair per tick and passes it in, so tests drive time by hand.
#pragma once

#include <chrono>
#include <cstdint>

namespace pgfailover {

using Millis = std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// "Now" as the decision sees it: a monotonic instant for measuring durations, and the wall-clock
// instant of the same moment for reports.
struct Now {
  SteadyTime steady;
  WallTime wall;
};

inline double seconds(Millis d) {
  return static_cast<double>(d.count()) / 1000.0;
}

inline Millis elapsed(SteadyTime since, SteadyTime until) {
  return std::chrono::duration_cast<Millis>(until - since);
}

inline double unixSeconds(WallTime t) {
  return static_cast<double>(
             std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count()) /
         1000.0;
}

}  // namespace pgfailover
