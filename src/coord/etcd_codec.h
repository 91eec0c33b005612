// The etcd v3 JSON gateway's encoding (etcd 3.4 and 3.5 serve it under /v3/...): keys and values
// are base64, 64-bit integers (revisions, lease IDs, TTLs) are JSON strings, and fields equal to
// their zero value are left out of responses. Pure functions, so the wire format is unit-tested
// without a server.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace pgfailover::coord {

std::string base64Encode(const std::string& bytes);
// nullopt when `text` is not valid base64 (standard alphabet, padded).
std::optional<std::string> base64Decode(const std::string& text);

// One key as etcd stores it.
struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;
  std::int64_t lease = 0;
};

// A condition of a transaction, on one key.
struct Compare {
  enum class Target { kCreateRevision, kModRevision, kVersion, kValue };
  enum class Result { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = Target::kCreateRevision;
  Result result = Result::kEqual;
  std::int64_t number = 0;  // for the revision and version targets
  std::string value;        // for kValue

  static Compare createRevision(std::string key, std::int64_t revision,
                                Result result = Result::kEqual);
  static Compare modRevision(std::string key, std::int64_t revision,
                             Result result = Result::kEqual);
  static Compare valueIs(std::string key, std::string value);
};

// One operation of a transaction's success or failure branch.
struct Op {
  enum class Kind { kPut, kRange, kDelete };
  Kind kind = Kind::kRange;
  std::string key;
  std::string value;       // kPut
  std::int64_t lease = 0;  // kPut: attach the key to this lease (0: none)
  bool prefix = false;     // kRange / kDelete: every key starting with `key`

  static Op put(std::string key, std::string value, std::int64_t lease = 0);
  static Op get(std::string key, bool prefix = false);
  static Op erase(std::string key, bool prefix = false);
};

struct TxnResult {
  bool succeeded = false;
  std::int64_t revision = 0;  // the store's revision after the transaction (the header's)
  // For each operation of the branch that ran, the keys a range returned (empty for put and
  // delete), in order.
  std::vector<std::vector<KeyValue>> ranges;
};

// The end of the key range holding every key that starts with `prefix` (etcd's range_end).
std::string prefixEnd(const std::string& prefix);

nlohmann::json encodeCompare(const Compare& compare);
nlohmann::json encodeOp(const Op& op);
nlohmann::json encodeTxn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                         const std::vector<Op>& failure);

// A 64-bit integer field that the gateway writes as a string ("12"), or as a number; 0 when
// absent. nullopt when present but not an integer.
std::optional<std::int64_t> int64Field(const nlohmann::json& object, const char* name);

// Decoding returns a Status naming the field that is malformed; etcd's own answers never are,
// but whatever sits at an endpoint (a proxy, another service) may answer anything.
Status decodeKeyValue(const nlohmann::json& json, KeyValue& out);
Status decodeRange(const nlohmann::json& json, std::vector<KeyValue>& out);
Status decodeTxn(const nlohmann::json& json, TxnResult& out);
// The header's revision.
std::int64_t headerRevision(const nlohmann::json& json);

// The gateway's error body: {"error": "...", "code": 16, "message": "..."}; the message and the
// gRPC code (0 when the body is not such an error).
struct GatewayError {
  int grpc_code = 0;
  std::string message;
};
GatewayError decodeError(const std::string& body);

}  // namespace pgfailover::coord
