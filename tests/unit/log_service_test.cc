// The logger under systemd: journal priorities instead of timestamps, and a level SIGHUP changes.
#include <gtest/gtest.h>

#include <sstream>

#include "common/log.h"

namespace pgfailover {
namespace {

TEST(LogService, JournalLinesCarryTheSyslogPriorityAndNoTimestamp) {
  std::ostringstream out;
  Logger log(out, false, LogLevel::kInfo);
  log.setJournal(true);
  log.warn("probe_failed", "node 'pg1' refused", {{"node", "pg1"}});
  log.error("state_save_failed", "disk full");
  log.info("started", "watching 2 nodes");
  EXPECT_EQ(out.str(),
            "<4>warn probe_failed: node 'pg1' refused node=pg1\n"
            "<3>error state_save_failed: disk full\n"
            "<6>info started: watching 2 nodes\n");
}

// A request path from the network (percent-decoded), a libpq error or a rejoin's step log can
// hold line breaks: none may start a line of its own, least of all a forged journal priority.
TEST(LogService, ControlCharactersCannotForgeALine) {
  std::ostringstream out;
  Logger log(out, false, LogLevel::kInfo);
  log.setJournal(true);
  log.info("http_access", "GET /x\n<3>error forged: line\r\x1b[2J",
           {{"path", "/a\nb\tc\x7f"}, {"steps", "stop: ok\nstart: ok"}});
  EXPECT_EQ(out.str(),
            "<6>info http_access: GET /x\\n<3>error forged: line\\r\\x1b[2J "
            "path=/a\\nb\\tc\\x7f steps=stop: ok\\nstart: ok\n");
  EXPECT_EQ(oneLine("plain 'text' \\ stays"), "plain 'text' \\ stays");
}

TEST(LogService, TextLinesOutsideTheJournalStartWithATimestamp) {
  std::ostringstream out;
  Logger log(out, false, LogLevel::kInfo);
  log.info("started", "x");
  EXPECT_EQ(out.str().find("<"), std::string::npos);
  EXPECT_EQ(out.str().substr(4, 1), "-");  // 2026-12-06T...
}

TEST(LogService, SetLevelTakesEffectForTheNextLine) {
  std::ostringstream out;
  Logger log(out, false, LogLevel::kInfo);
  log.setJournal(true);
  log.debug("tick", "hidden");
  log.setLevel(LogLevel::kDebug);
  log.debug("tick", "shown");
  log.setLevel(LogLevel::kError);
  log.warn("veto", "hidden too");
  EXPECT_EQ(out.str(), "<7>debug tick: shown\n");
}

}  // namespace
}  // namespace pgfailover
