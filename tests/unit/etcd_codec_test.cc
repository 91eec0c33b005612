// The etcd v3 gateway's JSON: base64 keys and values, 64-bit integers as strings, fields left out
// when zero, and error bodies; what the integration tests then exchange with a real etcd.
#include "coord/etcd_codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace pgfailover::coord {
namespace {

using nlohmann::json;

TEST(EtcdCodec, Base64RoundTripsEveryLength) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("/pgfailover/leader"), "L3BnZmFpbG92ZXIvbGVhZGVy");
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (std::size_t n = 0; n <= bytes.size(); n += 37) {
    auto decoded = base64Decode(base64Encode(bytes.substr(0, n)));
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(*decoded, bytes.substr(0, n));
  }
}

TEST(EtcdCodec, Base64RejectsGarbage) {
  EXPECT_FALSE(base64Decode("abc").has_value());       // not a multiple of 4
  EXPECT_FALSE(base64Decode("ab!d").has_value());      // outside the alphabet
  EXPECT_FALSE(base64Decode("a=bc").has_value());      // padding in the middle
  EXPECT_FALSE(base64Decode("Zg==Zm9v").has_value());  // data after padding
  EXPECT_FALSE(base64Decode("Z===").has_value());
}

TEST(EtcdCodec, PrefixEnd) {
  EXPECT_EQ(prefixEnd("/a/"), "/a0");
  EXPECT_EQ(prefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefixEnd(std::string("\xff\xff", 2)), std::string(1, '\0'));
}

TEST(EtcdCodec, EncodesTransactions) {
  json txn = encodeTxn({Compare::createRevision("/l", 0), Compare::valueIs("/l", "a"),
                        Compare::modRevision("/s", 42, Compare::Result::kLess)},
                       {Op::put("/l", "a", 7587)}, {Op::get("/p/", true), Op::erase("/x")});
  EXPECT_EQ(
      txn["compare"][0],
      json({{"key", "L2w="}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}}));
  EXPECT_EQ(txn["compare"][1]["target"], "VALUE");
  EXPECT_EQ(txn["compare"][1]["value"], "YQ==");
  EXPECT_EQ(txn["compare"][2]["target"], "MOD");
  EXPECT_EQ(txn["compare"][2]["result"], "LESS");
  EXPECT_EQ(txn["compare"][2]["mod_revision"], "42");
  EXPECT_EQ(txn["success"][0],
            json({{"request_put", {{"key", "L2w="}, {"value", "YQ=="}, {"lease", "7587"}}}}));
  EXPECT_EQ(txn["failure"][0]["request_range"]["key"], "L3Av");
  EXPECT_EQ(txn["failure"][0]["request_range"]["range_end"], "L3Aw");  // "/p0"
  EXPECT_EQ(txn["failure"][1]["request_delete_range"], json({{"key", "L3g="}}));
  // A put without a lease carries no lease field.
  EXPECT_FALSE(encodeOp(Op::put("/k", "v"))["request_put"].contains("lease"));
}

TEST(EtcdCodec, DecodesRevisionsAsStringsAndLeftOutFields) {
  // As etcd 3.4's gateway answers a failed txn whose failure branch read the leader key.
  json answer = json::parse(R"({
    "header": {"cluster_id": "14841639068965178418", "member_id": "10276657743932975437",
               "revision": "9223372036854775807", "raft_term": "2"},
    "responses": [{"response_range": {"header": {"revision": "17"},
      "kvs": [{"key": "L2w=", "create_revision": "12", "mod_revision": "12", "version": "1",
               "value": "Yg==", "lease": "7587869437594612740"}], "count": "1"}}]})");
  TxnResult txn;
  ASSERT_TRUE(decodeTxn(answer, txn).isOk());
  EXPECT_FALSE(txn.succeeded);  // left out when false
  EXPECT_EQ(txn.revision, 9223372036854775807LL);
  ASSERT_EQ(txn.ranges.size(), 1u);
  ASSERT_EQ(txn.ranges[0].size(), 1u);
  const KeyValue& kv = txn.ranges[0][0];
  EXPECT_EQ(kv.key, "/l");
  EXPECT_EQ(kv.value, "b");
  EXPECT_EQ(kv.create_revision, 12);
  EXPECT_EQ(kv.lease, 7587869437594612740LL);

  // A successful put-only txn: "succeeded" true, a response without kvs.
  ASSERT_TRUE(decodeTxn(json::parse(R"({"header": {"revision": "5"}, "succeeded": true,
    "responses": [{"response_put": {"header": {"revision": "5"}}}]})"),
                        txn)
                  .isOk());
  EXPECT_TRUE(txn.succeeded);
  EXPECT_EQ(txn.revision, 5);
  ASSERT_EQ(txn.ranges.size(), 1u);
  EXPECT_TRUE(txn.ranges[0].empty());

  // An empty value and a key without a lease are left out entirely; numbers are accepted too.
  KeyValue bare;
  ASSERT_TRUE(decodeKeyValue(json::parse(R"({"key": "YQ==", "create_revision": 3})"), bare).isOk());
  EXPECT_EQ(bare.value, "");
  EXPECT_EQ(bare.lease, 0);
  EXPECT_EQ(bare.create_revision, 3);
  std::vector<KeyValue> none;
  ASSERT_TRUE(decodeRange(json::parse(R"({"header": {"revision": "4"}})"), none).isOk());
  EXPECT_TRUE(none.empty());
}

TEST(EtcdCodec, MalformedAnswersAreErrorsNotExceptions) {
  KeyValue kv;
  EXPECT_FALSE(decodeKeyValue(json::parse(R"({"key": "not base64!"})"), kv).isOk());
  EXPECT_FALSE(decodeKeyValue(json::parse(R"({"key": "YQ==", "mod_revision": "12x"})"), kv).isOk());
  EXPECT_FALSE(decodeKeyValue(json::parse(R"({"key": 5})"), kv).isOk());
  std::vector<KeyValue> kvs;
  EXPECT_FALSE(decodeRange(json::parse(R"({"kvs": {"key": "YQ=="}})"), kvs).isOk());
  TxnResult txn;
  EXPECT_FALSE(decodeTxn(json::parse(R"({"succeeded": "yes"})"), txn).isOk());
  EXPECT_FALSE(decodeTxn(json::parse("[]"), txn).isOk());
  EXPECT_EQ(int64Field(json::parse(R"({"ID": ""})"), "ID"), std::nullopt);
  EXPECT_EQ(int64Field(json::parse(R"({"ID": "99999999999999999999"})"), "ID"), std::nullopt);
}

TEST(EtcdCodec, GatewayErrors) {
  GatewayError unary = decodeError(
      R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
  EXPECT_EQ(unary.grpc_code, 5);
  EXPECT_EQ(unary.message, "etcdserver: requested lease not found");
  GatewayError streamed = decodeError(
      R"({"error":{"grpc_code":16,"http_code":401,"message":"etcdserver: invalid auth token","code":16}})");
  EXPECT_EQ(streamed.grpc_code, 16);
  EXPECT_EQ(streamed.message, "etcdserver: invalid auth token");
  GatewayError html = decodeError("<html>bad gateway</html>");
  EXPECT_EQ(html.grpc_code, 0);
  EXPECT_TRUE(html.message.empty());
}

}  // namespace
}  // namespace pgfailover::coord
