#include "coord/etcd_codec.h"

#include <array>
#include <charconv>

namespace pgfailover::coord {

using nlohmann::json;

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

const char* targetName(Compare::Target target) {
  switch (target) {
    case Compare::Target::kCreateRevision:
      return "CREATE";
    case Compare::Target::kModRevision:
      return "MOD";
    case Compare::Target::kVersion:
      return "VERSION";
    case Compare::Target::kValue:
      return "VALUE";
  }
  return "CREATE";
}

const char* resultName(Compare::Result result) {
  switch (result) {
    case Compare::Result::kEqual:
      return "EQUAL";
    case Compare::Result::kNotEqual:
      return "NOT_EQUAL";
    case Compare::Result::kGreater:
      return "GREATER";
    case Compare::Result::kLess:
      return "LESS";
  }
  return "EQUAL";
}

json rangeBody(const std::string& key, bool prefix) {
  json body = {{"key", base64Encode(key)}};
  if (prefix) body["range_end"] = base64Encode(prefixEnd(key));
  return body;
}

Status malformed(const std::string& what) {
  return {StatusCode::kInternal, "etcd answered malformed JSON: " + what};
}

}  // namespace

std::string base64Encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned n = (static_cast<unsigned char>(bytes[i]) << 16) |
                 (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                 static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == bytes.size()) {
    unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    unsigned n = (static_cast<unsigned char>(bytes[i]) << 16) |
                 (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64Decode(const std::string& text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::array<int, 4> v{};
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      char c = text[i + j];
      if (c == '=' && last && j >= 2) {
        ++padding;
        v[j] = 0;
        continue;
      }
      if (padding > 0) return std::nullopt;  // data after padding
      v[j] = sextet(c);
      if (v[j] < 0) return std::nullopt;
    }
    unsigned n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((n >> 16) & 0xff);
    if (padding < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (padding < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

Compare Compare::createRevision(std::string key, std::int64_t revision, Result result) {
  Compare c;
  c.key = std::move(key);
  c.target = Target::kCreateRevision;
  c.result = result;
  c.number = revision;
  return c;
}

Compare Compare::modRevision(std::string key, std::int64_t revision, Result result) {
  Compare c = createRevision(std::move(key), revision, result);
  c.target = Target::kModRevision;
  return c;
}

Compare Compare::valueIs(std::string key, std::string value) {
  Compare c;
  c.key = std::move(key);
  c.target = Target::kValue;
  c.value = std::move(value);
  return c;
}

Op Op::put(std::string key, std::string value, std::int64_t lease) {
  Op op;
  op.kind = Kind::kPut;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}

Op Op::get(std::string key, bool prefix) {
  Op op;
  op.kind = Kind::kRange;
  op.key = std::move(key);
  op.prefix = prefix;
  return op;
}

Op Op::erase(std::string key, bool prefix) {
  Op op = get(std::move(key), prefix);
  op.kind = Kind::kDelete;
  return op;
}

std::string prefixEnd(const std::string& prefix) {
  // The smallest key greater than every key with this prefix: the prefix with its last byte
  // that is not 0xff incremented, and what follows it dropped.
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

json encodeCompare(const Compare& compare) {
  json c = {{"key", base64Encode(compare.key)},
            {"target", targetName(compare.target)},
            {"result", resultName(compare.result)}};
  switch (compare.target) {
    case Compare::Target::kCreateRevision:
      c["create_revision"] = std::to_string(compare.number);
      break;
    case Compare::Target::kModRevision:
      c["mod_revision"] = std::to_string(compare.number);
      break;
    case Compare::Target::kVersion:
      c["version"] = std::to_string(compare.number);
      break;
    case Compare::Target::kValue:
      c["value"] = base64Encode(compare.value);
      break;
  }
  return c;
}

json encodeOp(const Op& op) {
  switch (op.kind) {
    case Op::Kind::kPut: {
      json put = {{"key", base64Encode(op.key)}, {"value", base64Encode(op.value)}};
      if (op.lease != 0) put["lease"] = std::to_string(op.lease);
      return {{"request_put", put}};
    }
    case Op::Kind::kRange:
      return {{"request_range", rangeBody(op.key, op.prefix)}};
    case Op::Kind::kDelete:
      return {{"request_delete_range", rangeBody(op.key, op.prefix)}};
  }
  return json::object();
}

json encodeTxn(const std::vector<Compare>& compares, const std::vector<Op>& success,
               const std::vector<Op>& failure) {
  json body = {{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
  for (const auto& c : compares) body["compare"].push_back(encodeCompare(c));
  for (const auto& op : success) body["success"].push_back(encodeOp(op));
  for (const auto& op : failure) body["failure"].push_back(encodeOp(op));
  return body;
}

std::optional<std::int64_t> int64Field(const json& object, const char* name) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return 0;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_string()) {
    const auto& text = it->get_ref<const std::string&>();
    std::int64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error == std::errc() && end == text.data() + text.size() && !text.empty()) return value;
  }
  return std::nullopt;
}

Status decodeKeyValue(const json& object, KeyValue& out) {
  if (!object.is_object()) return malformed("a key-value is not an object");
  for (const char* field : {"key", "value"}) {
    auto it = object.find(field);
    std::string decoded;
    if (it != object.end()) {
      if (!it->is_string()) return malformed(std::string(field) + " is not a string");
      auto bytes = base64Decode(it->get<std::string>());
      if (!bytes) return malformed(std::string(field) + " is not base64");
      decoded = std::move(*bytes);
    }
    (std::string(field) == "key" ? out.key : out.value) = std::move(decoded);
  }
  struct Field {
    const char* name;
    std::int64_t* target;
  };
  for (const Field& f :
       {Field{"create_revision", &out.create_revision}, Field{"mod_revision", &out.mod_revision},
        Field{"version", &out.version}, Field{"lease", &out.lease}}) {
    auto number = int64Field(object, f.name);
    if (!number) return malformed(std::string(f.name) + " is not an integer");
    *f.target = *number;
  }
  return Status::ok();
}

Status decodeRange(const json& object, std::vector<KeyValue>& out) {
  out.clear();
  if (!object.is_object()) return malformed("a range response is not an object");
  auto kvs = object.find("kvs");
  if (kvs == object.end() || kvs->is_null()) return Status::ok();
  if (!kvs->is_array()) return malformed("kvs is not a list");
  for (const auto& item : *kvs) {
    KeyValue kv;
    if (Status s = decodeKeyValue(item, kv); !s.isOk()) return s;
    out.push_back(std::move(kv));
  }
  return Status::ok();
}

Status decodeTxn(const json& object, TxnResult& out) {
  out = TxnResult{};
  if (!object.is_object()) return malformed("a txn response is not an object");
  if (auto it = object.find("succeeded"); it != object.end()) {
    if (!it->is_boolean()) return malformed("succeeded is not true or false");
    out.succeeded = it->get<bool>();
  }
  out.revision = headerRevision(object);
  auto responses = object.find("responses");
  if (responses == object.end() || responses->is_null()) return Status::ok();
  if (!responses->is_array()) return malformed("responses is not a list");
  for (const auto& response : *responses) {
    std::vector<KeyValue> kvs;
    if (auto range = response.find("response_range"); range != response.end()) {
      if (Status s = decodeRange(*range, kvs); !s.isOk()) return s;
    }
    out.ranges.push_back(std::move(kvs));
  }
  return Status::ok();
}

std::int64_t headerRevision(const json& object) {
  if (!object.is_object()) return 0;
  auto header = object.find("header");
  if (header == object.end()) return 0;
  return int64Field(*header, "revision").value_or(0);
}

GatewayError decodeError(const std::string& body) {
  GatewayError error;
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return error;
  // A streaming call (lease keepalive) wraps its error as {"error": {...}}.
  const json* holder = &parsed;
  if (auto nested = parsed.find("error"); nested != parsed.end() && nested->is_object())
    holder = &*nested;
  if (auto code = holder->find("code"); code != holder->end() && code->is_number_integer())
    error.grpc_code = code->get<int>();
  for (const char* field : {"message", "error"}) {
    auto it = holder->find(field);
    if (it != holder->end() && it->is_string() && !it->get<std::string>().empty()) {
      error.message = it->get<std::string>();
      break;
    }
  }
  return error;
}

}  // namespace pgfailover::coord
