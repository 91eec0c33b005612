// The request-head parser on its own: what it accepts, where each limit falls (one byte under
// passes, one over is refused), and that an unfinished head asks for more rather than failing.
#include <gtest/gtest.h>

#include <random>

#include "http/request_head.h"

namespace pgfailover::http {
namespace {

TEST(RequestHead, ParsesAHeadAndTellsWhereTheBodyStarts) {
  const std::string text =
      "\r\nPOST /switchover?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-A:  b \r\n\r\n{}";
  const HeadParse parse = parseRequestHead(text, HeadLimits{});
  ASSERT_EQ(parse.state, HeadState::kComplete) << parse.message;
  EXPECT_EQ(parse.head.method, "POST");
  EXPECT_EQ(parse.head.target, "/switchover?x=1");
  EXPECT_EQ(parse.head.content_length, 2u);
  EXPECT_EQ(text.substr(parse.head.head_bytes), "{}");
  ASSERT_EQ(parse.head.headers.size(), 3u);
  EXPECT_EQ(parse.head.headers[2].second, "b");
  EXPECT_TRUE(parse.head.keep_alive);
}

TEST(RequestHead, AnUnfinishedHeadAsksForMore) {
  const std::string text = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  for (std::size_t n = 0; n < text.size(); ++n)
    EXPECT_EQ(parseRequestHead(text.substr(0, n), HeadLimits{}).state, HeadState::kIncomplete) << n;
  EXPECT_EQ(parseRequestHead(text, HeadLimits{}).state, HeadState::kComplete);
}

TEST(RequestHead, KeepAliveFollowsTheVersionAndTheConnectionHeader) {
  EXPECT_FALSE(parseRequestHead("GET / HTTP/1.0\r\n\r\n", {}).head.keep_alive);
  EXPECT_TRUE(
      parseRequestHead("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", {}).head.keep_alive);
  EXPECT_FALSE(
      parseRequestHead("GET / HTTP/1.1\r\nConnection: te, close\r\n\r\n", {}).head.keep_alive);
  EXPECT_TRUE(parseRequestHead("GET / HTTP/1.1\n\n", {}).head.keep_alive);  // bare LF
}

TEST(RequestHead, EachLimitFallsExactlyWhereItIsSet) {
  HeadLimits limits;
  limits.max_head_bytes = 100;
  limits.max_headers = 2;
  limits.max_body = 10;
  const auto withPadding = [](std::size_t total) {
    std::string head = "GET / HTTP/1.1\r\nX: ";
    head += std::string(total - head.size() - 4, 'a');
    return head + "\r\n\r\n";
  };
  EXPECT_EQ(parseRequestHead(withPadding(100), limits).state, HeadState::kComplete);
  EXPECT_EQ(parseRequestHead(withPadding(101), limits).status, 431);
  // Refused before the end of the head arrives.
  EXPECT_EQ(
      parseRequestHead(std::string("GET / HTTP/1.1\r\nX: ") + std::string(200, 'a'), limits).status,
      431);
  EXPECT_EQ(parseRequestHead("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", limits).state,
            HeadState::kComplete);
  EXPECT_EQ(parseRequestHead("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits).status, 431);
  EXPECT_EQ(parseRequestHead("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", limits).state,
            HeadState::kComplete);
  EXPECT_EQ(parseRequestHead("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", limits).status, 413);
  EXPECT_EQ(
      parseRequestHead("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", limits)
          .status,
      400);
  EXPECT_EQ(parseRequestHead("POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n", limits)
                .status,
            411);
  EXPECT_EQ(parseRequestHead("GET /" + std::string(2100, 'a'), HeadLimits{}).status, 414);
}

TEST(RequestHead, PathsAndQueriesArePercentDecoded) {
  EXPECT_EQ(decodedPath("/primary/pg%31?lag=1"), "/primary/pg1");
  EXPECT_EQ(decodedPath("/bad%zz%4"), "/bad%zz%4");
  const auto query = decodedQuery("/replica?lag=16%4DB&x&y=a+b&&lag=2");
  ASSERT_EQ(query.size(), 4u);
  EXPECT_EQ(query[0], (std::pair<std::string, std::string>{"lag", "16MB"}));
  EXPECT_EQ(query[1], (std::pair<std::string, std::string>{"x", ""}));
  EXPECT_EQ(query[2], (std::pair<std::string, std::string>{"y", "a b"}));
  EXPECT_EQ(query[3], (std::pair<std::string, std::string>{"lag", "2"}));
}

// Random bytes and random damage to a valid head: every outcome is "more", a head, or a 4xx/5xx
// with a message; never a crash or an answer that is not an error code.
TEST(RequestHead, GarbageNeverCrashesAndAlwaysGetsAnErrorCode) {
  std::mt19937 random(20261206);
  const std::string valid =
      "POST /switchover?lag=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}";
  const std::string alphabet = std::string("GET POST/?%:\r\n \t-0123456789aZ\x00\x7f\xff", 32);
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    if (round % 2 == 0) {
      const std::size_t size = random() % 300;
      for (std::size_t i = 0; i < size; ++i)
        text.push_back(round % 4 == 0 ? static_cast<char>(random() % 256)
                                      : alphabet[random() % alphabet.size()]);
    } else {
      text = valid;
      for (int edits = 1 + static_cast<int>(random() % 4); edits > 0; --edits)
        text[random() % text.size()] = alphabet[random() % alphabet.size()];
    }
    const HeadParse parse = parseRequestHead(text, HeadLimits{});
    if (parse.state == HeadState::kError) {
      EXPECT_GE(parse.status, 400) << text;
      EXPECT_LT(parse.status, 600) << text;
      EXPECT_FALSE(parse.message.empty()) << text;
    } else if (parse.state == HeadState::kComplete) {
      EXPECT_LE(parse.head.head_bytes, text.size());
      EXPECT_EQ(parse.head.target.front(), '/');
    }
    decodedPath(text);
    decodedQuery(text);
  }
}

}  // namespace
}  // namespace pgfailover::http
