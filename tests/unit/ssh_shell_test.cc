// shellQuote / shellJoin (checked by handing the result to a real /bin/sh) and redactForLog,
// plus the output cap every runner uses.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ssh/command_runner.h"
#include "ssh/shell.h"
#include "support/process.h"

namespace pgfailover::ssh {
namespace {

// What /bin/sh makes of `line` as the arguments of printf '[%s]'.
std::string shellWords(const std::string& line) {
  testing::ProcessResult result =
      testing::runProcess({"/bin/sh", "-c", "printf '[%s]' " + line}, {});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return result.out;
}

TEST(ShellQuote, WrapsInSingleQuotesAndEscapesThem) {
  EXPECT_EQ(shellQuote("abc"), "'abc'");
  EXPECT_EQ(shellQuote(""), "''");
  EXPECT_EQ(shellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(shellQuote("''"), "''\\'''\\'''");
}

TEST(ShellQuote, ShellReadsBackExactlyOneWordWithTheOriginalText) {
  const std::vector<std::string> samples = {
      "",
      "plain",
      "two words",
      "it's",
      "'",
      "\"double\"",
      "$HOME `id` $(id) ; rm -rf / & | > < * ? [a] ~ # !",
      "back\\slash\\",
      "new\nline\ttab",
      "/var/lib/postgresql/15/main",
      "host=10.0.0.2 password='se cr\\'et' dbname=postgres",
  };
  for (const std::string& text : samples) {
    EXPECT_EQ(shellWords(shellQuote(text)), "[" + text + "]") << text;
  }
}

TEST(ShellJoin, LeavesPlainWordsBareAndQuotesTheRest) {
  EXPECT_EQ(shellJoin({"pg_ctl", "stop", "-D", "/var/lib/postgresql/15/main", "-m", "fast"}),
            "pg_ctl stop -D /var/lib/postgresql/15/main -m fast");
  EXPECT_EQ(shellJoin({"touch", "/data/my dir/standby.signal"}),
            "touch '/data/my dir/standby.signal'");
  EXPECT_EQ(shellJoin({"echo", ""}), "echo ''");
  EXPECT_EQ(shellJoin({"echo", "$HOME"}), "echo '$HOME'");
  EXPECT_EQ(shellJoin({}), "");
}

TEST(ShellJoin, ShellSplitsItBackIntoTheSameWords) {
  EXPECT_EQ(shellWords(shellJoin({"a b", "c", "", "d'e", "x=1,y=2"})), "[a b][c][][d'e][x=1,y=2]");
}

TEST(RedactForLog, HidesConninfoPasswordInsideAShellQuotedWord) {
  EXPECT_EQ(redactForLog("pg_rewind -D /data --source-server='host=10.0.0.2 port=5432 "
                         "user=postgres password=s3cr3t dbname=postgres'"),
            "pg_rewind -D /data --source-server='host=10.0.0.2 port=5432 user=postgres "
            "password=<redacted> dbname=postgres'");
  EXPECT_EQ(redactForLog("psql 'host=a password=s3cr3t'"), "psql 'host=a password=<redacted>'");
}

TEST(RedactForLog, HidesQuotedConninfoPasswordWithBlanks) {
  // What shellQuote makes of:  host=a password='zq9 xk7' port=5
  const std::string line = "pg_basebackup -d " + shellQuote("host=a password='zq9 xk7' port=5");
  EXPECT_EQ(redactForLog(line), "pg_basebackup -d 'host=a password=<redacted> port=5'");
}

TEST(RedactForLog, HidesEnvironmentAssignments) {
  EXPECT_EQ(redactForLog("PGPASSWORD=hunter2 pg_basebackup -h x"),
            "PGPASSWORD=<redacted> pg_basebackup -h x");
  EXPECT_EQ(redactForLog("env PGPASSWORD='hunter 2' psql"), "env PGPASSWORD=<redacted> psql");
  EXPECT_EQ(redactForLog("export PGPASSWORD=\"a b c\"; psql"), "export PGPASSWORD=<redacted> psql");
}

TEST(RedactForLog, MatchesSecretKeysCaseInsensitively) {
  EXPECT_EQ(redactForLog("PassWord=x sslpassword=y --db-passwd=z api_token=t client_secret=s"),
            "PassWord=<redacted> sslpassword=<redacted> --db-passwd=<redacted> "
            "api_token=<redacted> client_secret=<redacted>");
}

TEST(RedactForLog, HidesThePasswordInAUri) {
  EXPECT_EQ(redactForLog("pg_basebackup -d postgresql://repl:s3cr3t@10.0.0.2:5432/postgres"),
            "pg_basebackup -d postgresql://repl:<redacted>@10.0.0.2:5432/postgres");
  EXPECT_EQ(redactForLog("psql 'postgres://u:p%40ss@h/db?sslmode=require'"),
            "psql 'postgres://u:<redacted>@h/db?sslmode=require'");
}

TEST(RedactForLog, LeavesHarmlessTextAlone) {
  const std::vector<std::string> same = {
      "pg_ctl stop -D '/var/lib/postgresql/15/main' -m fast",
      "host=10.0.0.2 user=postgres dbname=postgres",
      "postgresql://repl@10.0.0.2/postgres",
      "http://10.0.0.2:8008/primary",
      "a == b",
      "password=",
      "",
  };
  for (const std::string& text : same) EXPECT_EQ(redactForLog(text), text);
}

TEST(RedactForLog, HidesAnEscapedQuoteInsideAnUnquotedValue) {
  EXPECT_EQ(redactForLog("password=ab\\'cd host=x"), "password=<redacted> host=x");
}

TEST(OutputCapture, KeepsEverythingUnderTheLimit) {
  OutputCapture capture(10);
  capture.append("hello", 5);
  capture.append("world", 5);
  EXPECT_FALSE(capture.truncated());
  EXPECT_EQ(capture.text(), "helloworld");
}

TEST(OutputCapture, KeepsHeadAndTailAndSaysHowMuchWasDropped) {
  OutputCapture capture(10);
  const std::string input = "0123456789abcdefghijXYZ";  // 23 bytes
  for (char c : input) capture.append(&c, 1);
  EXPECT_TRUE(capture.truncated());
  EXPECT_EQ(capture.text(), "01234\n[... 13 bytes omitted ...]\nijXYZ");
}

TEST(OutputCapture, LargeInputStaysWithinTheLimit) {
  OutputCapture capture;
  const std::string chunk(10000, 'x');
  for (int i = 0; i < 100; ++i) capture.append(chunk.data(), chunk.size());
  EXPECT_TRUE(capture.truncated());
  EXPECT_LT(capture.text().size(), kMaxOutputBytes + 100);
  EXPECT_NE(capture.text().find("bytes omitted"), std::string::npos);
}

TEST(CommandResultSummary, NamesHowTheCommandEndedAndWhy) {
  CommandResult failed;
  failed.exit_code = 1;
  failed.stderr_text = "pg_ctl: directory \"/x\" does not exist\n\n";
  EXPECT_EQ(failed.summary(), "exit 1: pg_ctl: directory \"/x\" does not exist");
  EXPECT_FALSE(failed.succeeded());

  CommandResult ok;
  ok.exit_code = 0;
  ok.stdout_text = "server stopped\n";
  EXPECT_EQ(ok.summary(), "exit 0");
  EXPECT_TRUE(ok.succeeded());

  CommandResult killed;
  killed.signal = "KILL";
  EXPECT_EQ(killed.summary(), "killed by signal KILL");
  EXPECT_FALSE(killed.succeeded());

  CommandResult unreachable;
  unreachable.status = Status(StatusCode::kUnavailable, "ssh root@h:22: unable to connect");
  EXPECT_EQ(unreachable.summary(), "ssh root@h:22: unable to connect");
}

}  // namespace
}  // namespace pgfailover::ssh
