// The pure half of src/pg: how libpq's and the server's words become a ProbeFailure, how
// messages are made one line and free of secrets, and the SQL text helpers.
#include <gtest/gtest.h>

#include <string>

#include "common/lsn.h"
#include "common/secret.h"
#include "pg/errors.h"
#include "pg/sql.h"

namespace pgfailover::pg {
namespace {

using core::ProbeFailure;

struct ClassificationCase {
  const char* story;
  const char* message;
  const char* sqlstate;
  bool deadline_expired;
  ProbeFailure expected;
};

// Messages as libpq 15 and PostgreSQL 15 write them.
const ClassificationCase kCases[] = {
    {"tcp port closed",
     "connection to server at \"127.0.0.1\", port 5433 failed: Connection refused\n\tIs the "
     "server running on that host and accepting TCP/IP connections?\n",
     "", false, ProbeFailure::kRefused},
    {"unix socket missing",
     "connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed: No such file or "
     "directory\n\tIs the server running locally and accepting connections on that socket?\n",
     "", false, ProbeFailure::kRefused},
    {"server closed an established connection",
     "server closed the connection unexpectedly\n\tThis probably means the server terminated "
     "abnormally\n\tbefore or while processing the request.\n",
     "", false, ProbeFailure::kRefused},
    {"connection reset", "could not receive data from server: Connection reset by peer\n", "",
     false, ProbeFailure::kRefused},
    {"broken pipe", "could not send data to server: Broken pipe\n", "", false,
     ProbeFailure::kRefused},
    {"postmaster died under an idle session",
     "terminating connection due to unexpected postmaster exit", "57P01", false,
     ProbeFailure::kRefused},
    {"fast shutdown ended our session", "terminating connection due to administrator command",
     "57P01", false, ProbeFailure::kRefused},
    {"our deadline while connecting", "timeout expired after 1000 ms while connecting", "", true,
     ProbeFailure::kTimeout},
    {"our deadline wins over any text",
     "connection to server at \"127.0.0.1\", port 5433 failed: Connection refused", "", true,
     ProbeFailure::kTimeout},
    {"libpq's own connect_timeout", "timeout expired\n", "", false, ProbeFailure::kTimeout},
    {"no route", "connection to server at \"10.0.0.9\", port 5432 failed: No route to host\n", "",
     false, ProbeFailure::kTimeout},
    {"network unreachable",
     "connection to server at \"10.0.0.9\", port 5432 failed: Network is unreachable\n", "", false,
     ProbeFailure::kTimeout},
    {"tcp timeout", "could not receive data from server: Connection timed out\n", "", false,
     ProbeFailure::kTimeout},
    {"name resolution",
     "could not translate host name \"pg9\" to address: Temporary failure in name resolution\n", "",
     false, ProbeFailure::kTimeout},
    {"statement_timeout on the server", "canceling statement due to statement timeout", "57014",
     false, ProbeFailure::kTimeout},
    {"starting up",
     "connection to server at \"127.0.0.1\", port 5433 failed: FATAL:  the database system is "
     "starting up\n",
     "", false, ProbeFailure::kStartingUp},
    {"shutting down", "FATAL:  the database system is shutting down\n", "", false,
     ProbeFailure::kStartingUp},
    {"crash recovery", "FATAL:  the database system is in recovery mode\n", "", false,
     ProbeFailure::kStartingUp},
    {"standby not yet consistent",
     "FATAL:  the database system is not yet accepting connections\nDETAIL:  Consistent "
     "recovery state has not been yet reached.\n",
     "", false, ProbeFailure::kStartingUp},
    {"57P03 in a language we do not match", "FATAL:  das Datenbanksystem startet", "57P03", false,
     ProbeFailure::kStartingUp},
    {"another backend crashed", "terminating connection because of crash of another server process",
     "57P02", false, ProbeFailure::kStartingUp},
    {"wrong password", "FATAL:  password authentication failed for user \"pgfailover\"", "28P01",
     false, ProbeFailure::kRejected},
    {"wrong password without a code",
     "connection to server at \"127.0.0.1\", port 5433 failed: FATAL:  password authentication "
     "failed for user \"pgfailover\"\n",
     "", false, ProbeFailure::kRejected},
    {"pg_hba refuses us", "FATAL:  no pg_hba.conf entry for host \"127.0.0.1\"", "", false,
     ProbeFailure::kRejected},
    {"too many clients", "FATAL:  sorry, too many clients already", "53300", false,
     ProbeFailure::kRejected},
    {"query error", "relation \"pgfailover.heartbeat\" does not exist", "42P01", false,
     ProbeFailure::kRejected},
    {"missing privilege", "permission denied for function pg_promote", "42501", false,
     ProbeFailure::kRejected},
    {"unrecognised answer", "something nobody has seen before", "", false, ProbeFailure::kRejected},
    {"localhost: ::1 refused but 127.0.0.1 is starting up",
     "connection to server at \"localhost\" (::1), port 5433 failed: Connection refused\n\tIs the "
     "server running on that host and accepting TCP/IP connections?\nconnection to server at "
     "\"localhost\" (127.0.0.1), port 5433 failed: FATAL:  the database system is starting up\n",
     "", false, ProbeFailure::kStartingUp},
    {"one address refused, the other silent",
     "connection to server at \"db\" (10.0.0.1), port 5432 failed: Connection refused\n"
     "connection to server at \"db\" (10.0.0.2), port 5432 failed: No route to host\n",
     "", false, ProbeFailure::kTimeout},
};

TEST(PgErrorTest, ClassifiesEveryKnownFailure) {
  for (const auto& c : kCases) {
    EXPECT_EQ(classifyFailure(c.message, c.sqlstate, c.deadline_expired), c.expected)
        << c.story << ": got "
        << core::toString(classifyFailure(c.message, c.sqlstate, c.deadline_expired));
  }
}

TEST(PgErrorTest, ClassifiesAPgError) {
  PgError error{"anything", "57P03", false, true};
  EXPECT_EQ(classifyFailure(error), ProbeFailure::kStartingUp);
  error.deadline_expired = true;
  EXPECT_EQ(classifyFailure(error), ProbeFailure::kTimeout);
}

TEST(PgErrorTest, ExtractsTheSqlStateOfAVerboseConnectionError) {
  const std::string verbose =
      "connection to server at \"127.0.0.1\", port 5433 failed: FATAL:  57P03: the database "
      "system is starting up\nLOCATION:  ProcessStartupPacket, postmaster.c:2395\n";
  EXPECT_EQ(extractSqlState(verbose), "57P03");
  EXPECT_EQ(stripVerboseDetail(verbose),
            "connection to server at \"127.0.0.1\", port 5433 failed: FATAL:  the database "
            "system is starting up\n");
  EXPECT_EQ(
      classifyFailure(stripVerboseDetail(verbose), extractSqlState(verbose).value_or(""), false),
      ProbeFailure::kStartingUp);
}

TEST(PgErrorTest, FindsNoSqlStateInLibpqsOwnMessages) {
  EXPECT_EQ(extractSqlState("connection to server at \"127.0.0.1\", port 1 failed: Connection "
                            "refused\n"),
            std::nullopt);
  EXPECT_EQ(extractSqlState("timeout expired"), std::nullopt);
  EXPECT_EQ(extractSqlState(""), std::nullopt);
  EXPECT_EQ(stripVerboseDetail("Connection refused\n"), "Connection refused\n");
}

TEST(PgErrorTest, MakesMessagesOneLine) {
  EXPECT_EQ(oneLine("server closed the connection unexpectedly\n\tThis probably means\r\n  the "
                    "server   terminated\n"),
            "server closed the connection unexpectedly This probably means the server "
            "terminated");
  EXPECT_EQ(oneLine("  \n\t "), "");
  EXPECT_EQ(oneLine("plain"), "plain");
}

TEST(PgErrorTest, RedactsTheSecretWherever) {
  Secret secret("s3cr3t-Pa55");
  EXPECT_EQ(redact("auth with s3cr3t-Pa55 failed; s3cr3t-Pa55 again", secret),
            "auth with <redacted> failed; <redacted> again");
  EXPECT_EQ(redact("nothing to hide", secret), "nothing to hide");
  EXPECT_EQ(redact("anything", Secret()), "anything");
}

TEST(PgErrorTest, RedactsPasswordsOfConninfoStrings) {
  EXPECT_EQ(redact("host=127.0.0.1 password=hunter2 port=5432", Secret()),
            "host=127.0.0.1 password=<redacted> port=5432");
  EXPECT_EQ(redact("PASSWORD='a b\\' c' user=x", Secret()), "PASSWORD=<redacted> user=x");
  EXPECT_EQ(redact("password=", Secret()), "password=<redacted>");
}

TEST(PgErrorTest, NodeMessagesNameTheNodeOnOneLineWithoutTheSecret) {
  Secret secret("top-secret");
  std::string message =
      nodeMessage(describeNode("pg1", "127.0.0.1", 5433),
                  "connection failed: FATAL:  password top-secret is wrong\n\tretry\n", secret);
  EXPECT_EQ(message,
            "node 'pg1' (127.0.0.1:5433): connection failed: FATAL: password <redacted> is wrong "
            "retry");
  EXPECT_EQ(message.find("top-secret"), std::string::npos);
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(PgSqlTest, ParsesAndQuotesTheHeartbeatTable) {
  auto name = parseTableName("pgfailover.heartbeat");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->schema, "pgfailover");
  EXPECT_EQ(name->table, "heartbeat");
  EXPECT_EQ(name->quoted(), "\"pgfailover\".\"heartbeat\"");

  auto folded = parseTableName("Ops_1.Heart_Beat2");
  ASSERT_TRUE(folded);
  EXPECT_EQ(folded->quoted(), "\"ops_1\".\"heart_beat2\"");
  EXPECT_TRUE(parseTableName("_s._t"));
  EXPECT_TRUE(parseTableName(std::string(63, 's') + "." + std::string(63, 't')));
}

TEST(PgSqlTest, RejectsAnythingButAPlainSchemaDotTable) {
  for (const char* bad :
       {"", "heartbeat", ".heartbeat", "pgfailover.", "a.b.c", "\"a\".b", "a.\"b\"", "a b.c",
        "1a.b", "a.b;drop table x", "a.b'", "a-b.c", "a.b ", "été.b"}) {
    EXPECT_FALSE(parseTableName(bad)) << bad;
  }
  EXPECT_FALSE(parseTableName(std::string(64, 's') + ".t"));
}

TEST(PgSqlTest, QuotesIdentifiersByDoublingQuotes) {
  EXPECT_EQ(quoteIdentifier("plain"), "\"plain\"");
  EXPECT_EQ(quoteIdentifier("we\"ird"), "\"we\"\"ird\"");
}

TEST(PgSqlTest, ParsesTextFormatValues) {
  EXPECT_EQ(parseBool("t"), true);
  EXPECT_EQ(parseBool("f"), false);
  EXPECT_EQ(parseBool("on"), true);
  EXPECT_EQ(parseBool("off"), false);
  EXPECT_EQ(parseBool(""), std::nullopt);
  EXPECT_EQ(parseInt64("7441405390813958337"), 7441405390813958337);
  EXPECT_EQ(parseInt64("-5"), -5);
  EXPECT_EQ(parseInt64("60000ms"), std::nullopt);
  EXPECT_EQ(parseInt64(""), std::nullopt);
  EXPECT_EQ(parseDouble("1732564800.123456"), 1732564800.123456);
  EXPECT_EQ(parseDouble("0.5"), 0.5);
  EXPECT_EQ(parseDouble("x"), std::nullopt);
}

TEST(PgSqlTest, ReadsTheTimelineOfAWalFileName) {
  EXPECT_EQ(timelineFromWalFileName("000000010000000000000003"), 1u);
  EXPECT_EQ(timelineFromWalFileName("0000000A00000002000000FF"), 10u);
  EXPECT_EQ(timelineFromWalFileName("00000001000000000000000"), std::nullopt);
  EXPECT_EQ(timelineFromWalFileName("0000000G0000000000000003"), std::nullopt);
  EXPECT_EQ(timelineFromWalFileName(""), std::nullopt);
}

TEST(PgSqlTest, ValidatesSlotNamesAsPostgresDoes) {
  EXPECT_TRUE(isValidSlotName("pg2"));
  EXPECT_TRUE(isValidSlotName("pgfailover_pg_2"));
  EXPECT_TRUE(isValidSlotName(std::string(63, 'a')));
  for (const char* bad : {"", "Pg2", "pg-2", "pg 2", "pg2,", "a'b"}) {
    EXPECT_FALSE(isValidSlotName(bad)) << bad;
  }
  EXPECT_FALSE(isValidSlotName(std::string(64, 'a')));
}

TEST(PgSqlTest, ParsesTheAggregatedSlotList) {
  auto none = parseSlotList("");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());

  auto slots = parseSlotList("pg2 true 0/3000148,pg3 false -");
  ASSERT_TRUE(slots);
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[0].name, "pg2");
  EXPECT_TRUE((*slots)[0].active);
  EXPECT_EQ((*slots)[0].restart_lsn, 0x3000148u);
  EXPECT_EQ((*slots)[1].name, "pg3");
  EXPECT_FALSE((*slots)[1].active);
  EXPECT_FALSE((*slots)[1].restart_lsn);

  for (const char* bad :
       {"pg2", "pg2 true", "pg2 maybe -", "pg2 true nolsn", "Pg2 true -", "pg2 true -,"}) {
    EXPECT_FALSE(parseSlotList(bad)) << bad;
  }
}

TEST(PgSqlTest, ParsesLsnsAsPostgresPrintsThem) {
  EXPECT_EQ(parseLsn("0/3000148"), 0x3000148u);
  EXPECT_EQ(parseLsn("16/B374D848"), (0x16ull << 32) | 0xB374D848u);
  EXPECT_EQ(parseLsn(""), std::nullopt);
}

}  // namespace
}  // namespace pgfailover::pg
