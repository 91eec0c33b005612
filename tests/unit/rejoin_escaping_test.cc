// What the rejoin writes into primary_conninfo, pg_rewind's and pg_basebackup's connection
// strings and postgresql.auto.conf, fed hostile values: quotes, backslashes, spaces, tabs,
// newlines. libpq's own parser (PQconninfoParse) must read back exactly the values given and
// no keyword that was not written; the settings must stay one line each. The server reading the
// file back is checked in tests/integration/rejoin_test.cc (postgres -C).
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <map>
#include <memory>
#include <string>

#include "lifecycle/rejoin.h"

namespace pgfailover::lifecycle {
namespace {

// Keyword -> value of every keyword the string sets; a parse error fails the test.
std::map<std::string, std::string> parseConninfo(const std::string& conninfo) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
      PQconninfoParse(conninfo.c_str(), &error), &PQconninfoFree);
  std::unique_ptr<char, decltype(&PQfreemem)> error_text(error, &PQfreemem);
  std::map<std::string, std::string> set;
  if (!options) {
    ADD_FAILURE() << "PQconninfoParse refused [" << conninfo
                  << "]: " << (error != nullptr ? error : "out of memory");
    return set;
  }
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o)
    if (o->val != nullptr) set[o->keyword] = o->val;
  return set;
}

RejoinPlan hostilePlan(const std::string& user, const std::string& passfile,
                       const std::string& host) {
  RejoinPlan plan;
  plan.node = "pg1";
  plan.primary_host = host;
  plan.primary_port = 5433;
  plan.replication_user = user;
  plan.passfile = passfile;
  return plan;
}

const char* kHostile[] = {
    "o'brien",
    "back\\slash",
    "two words",
    "tab\tsslmode=disable",
    "line\nsslmode=disable",
    "cr\rsslmode=disable",
    "trailing\\",
    "'",
    "\\'",
    "x' sslmode='disable",
    "x\\' sslmode=disable",
    "=",
    "vertical\vfeed\f",
    "",
};

TEST(RejoinEscaping, ConninfoReadsBackExactlyWithNoInjectedKeyword) {
  for (const char* value : kHostile) {
    SCOPED_TRACE(std::string("value [") + value + "]");
    for (bool streaming : {true, false}) {
      const auto plan = hostilePlan(value, std::string("/var/lib/pg pass/") + value, "db host");
      const std::string conninfo = replicationConninfo(plan, streaming);
      auto set = parseConninfo(conninfo);
      EXPECT_EQ(set["user"], value) << conninfo;
      EXPECT_EQ(set["passfile"], std::string("/var/lib/pg pass/") + value) << conninfo;
      EXPECT_EQ(set["host"], "db host") << conninfo;
      EXPECT_EQ(set["port"], "5433") << conninfo;
      EXPECT_EQ(set.count("sslmode"), 0u) << conninfo;
      EXPECT_EQ(set.size(), 5u) << conninfo;
      if (streaming)
        EXPECT_EQ(set["application_name"], "pg1") << conninfo;
      else
        EXPECT_EQ(set["dbname"], "postgres") << conninfo;
    }
  }
}

TEST(RejoinEscaping, HostWithSpacesOrQuotesStaysOneValue) {
  const auto plan = hostilePlan("replicator", "/pgpass", "a b' port=1 c\\");
  auto set = parseConninfo(replicationConninfo(plan, true));
  EXPECT_EQ(set["host"], "a b' port=1 c\\");
  EXPECT_EQ(set["port"], "5433");
}

// Every setting stays on one line, whatever the values hold, and each line is exactly
// `name = '...'` with nothing after the closing quote: no second setting can be injected.
TEST(RejoinEscaping, StandbySettingsAreOneLineEachWhateverTheValues) {
  for (const char* value : kHostile) {
    SCOPED_TRACE(std::string("value [") + value + "]");
    auto plan = hostilePlan(value, value, value);
    plan.slot_name = "pgfailover_pg1";
    const std::string text = standbySettings(plan);
    ASSERT_FALSE(text.empty());
    ASSERT_EQ(text.back(), '\n');
    std::size_t lines = 0;
    for (std::size_t at = 0; at < text.size();) {
      const std::size_t end = text.find('\n', at);
      const std::string line = text.substr(at, end - at);
      at = end + 1;
      ++lines;
      for (unsigned char c : line) EXPECT_GE(c, 0x20) << line;
      // Walk the literal as the server's lexer does: '' is a quote, \x an escape.
      const std::size_t open = line.find(" = '");
      ASSERT_NE(open, std::string::npos) << line;
      std::size_t i = open + 4;
      for (; i < line.size(); ++i) {
        if (line[i] == '\\') {
          ++i;
        } else if (line[i] == '\'') {
          if (i + 1 < line.size() && line[i + 1] == '\'')
            ++i;
          else
            break;
        }
      }
      EXPECT_EQ(i, line.size() - 1) << "the literal ends before the line does: " << line;
    }
    EXPECT_EQ(lines, 2u) << text;
    EXPECT_EQ(text.rfind("primary_conninfo = '", 0), 0u) << text;
    EXPECT_NE(text.find("\nprimary_slot_name = 'pgfailover_pg1'\n"), std::string::npos) << text;
  }
}

TEST(RejoinEscaping, BackslashesAndQuotesAreEscapedForTheServer) {
  const auto plan = hostilePlan("a\\b'c", "/p", "h");
  const std::string text = standbySettings(plan);
  // conninfo: user='a\\b\'c'; in the file every backslash doubles and every quote is ''.
  EXPECT_NE(text.find("user=''a\\\\\\\\b\\\\''c''"), std::string::npos) << text;
}

}  // namespace
}  // namespace pgfailover::lifecycle
