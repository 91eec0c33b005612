#include "coord/leadership.h"

#include <algorithm>
#include <utility>

namespace pgfailover::coord {

using nlohmann::json;

namespace {

LeaderInfo leaderFrom(const std::vector<KeyValue>& kvs) {
  LeaderInfo info;
  if (kvs.empty()) return info;
  info.name = kvs.front().value;
  info.term = kvs.front().create_revision;
  info.lease = kvs.front().lease;
  return info;
}

std::string describe(const LeaderInfo& leader) {
  if (leader.name.empty()) return "nobody holds the leader key";
  return "the leader key is held by '" + leader.name + "' (term " + std::to_string(leader.term) +
         ")";
}

}  // namespace

Leadership::Leadership(EtcdClient& client, LeadershipOptions options)
    : client_(client), options_(std::move(options)) {
  margin_ = options_.acting_margin > Millis{0} ? options_.acting_margin
                                               : std::max(Millis{1000}, options_.lease_ttl / 5);
}

SteadyTime Leadership::actingUntil() const {
  return renewal_sent_at_ + lease_ttl_ - margin_;
}

bool Leadership::acting(SteadyTime now) const {
  return term_ != 0 && lease_id_ != 0 && now < actingUntil();
}

void Leadership::lose() {
  term_ = 0;
}

Status Leadership::ensureLease(SteadyTime now) {
  if (lease_id_ != 0) {
    Status renewed = renew(now);
    if (renewed.isOk() || lease_id_ != 0) return renewed;
    // The lease is gone: grant a new one below.
  }
  const auto seconds = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options_.lease_ttl).count());
  EtcdResult<Lease> granted = client_.grantLease(seconds);
  if (!granted.ok()) return granted.status;
  lease_id_ = granted.value.id;
  lease_ttl_ = std::chrono::seconds(granted.value.ttl_seconds);
  renewal_sent_at_ = now;
  return Status::ok();
}

Status Leadership::campaign(SteadyTime now) {
  if (leading()) return renew(now);
  if (Status lease = ensureLease(now); !lease.isOk()) return lease;
  const std::string key = leaderKey();
  EtcdResult<TxnResult> txn = client_.txn({Compare::createRevision(key, 0)},
                                          {Op::put(key, options_.name, lease_id_)}, {Op::get(key)});
  if (!txn.ok()) return txn.status;
  if (txn.value.succeeded) {
    term_ = txn.value.revision;  // the put created the key at the transaction's revision
    seen_ = {options_.name, term_, lease_id_};
    return Status::ok();
  }
  seen_ = txn.value.ranges.empty() ? LeaderInfo{} : leaderFrom(txn.value.ranges.front());
  // Our own key with our own lease: an earlier campaign succeeded but its answer was lost.
  if (seen_.name == options_.name && seen_.lease == lease_id_ && seen_.term != 0)
    term_ = seen_.term;
  return Status::ok();
}

Status Leadership::renew(SteadyTime now) {
  if (lease_id_ == 0) return {StatusCode::kFailedPrecondition, "etcd: no lease to renew"};
  EtcdResult<Lease> renewed = client_.keepAlive(lease_id_);
  if (!renewed.ok()) return renewed.status;
  if (renewed.value.ttl_seconds == 0) {
    const bool was_leading = leading();
    lease_id_ = 0;
    lose();
    return {StatusCode::kFailedPrecondition,
            std::string("etcd: the lease ran out before it was renewed") +
                (was_leading ? "; no longer the leader" : "")};
  }
  lease_ttl_ = std::chrono::seconds(renewed.value.ttl_seconds);
  renewal_sent_at_ = now;
  return Status::ok();
}

Status Leadership::step(SteadyTime now) {
  return leading() ? renew(now) : campaign(now);
}

Status Leadership::resign() {
  lose();
  if (lease_id_ == 0) return Status::ok();
  Status revoked = client_.revokeLease(lease_id_);
  // Unrevoked, the lease still runs out after its TTL; either way this instance stops here.
  lease_id_ = 0;
  return revoked;
}

EtcdResult<TxnResult> Leadership::guardedTxn(SteadyTime now, const std::vector<Op>& ops) {
  EtcdResult<TxnResult> result;
  if (!acting(now)) {
    result.status = {StatusCode::kFailedPrecondition,
                     leading() ? "not acting: the lease was not renewed in time (it may run out "
                                 "in etcd before this write lands)"
                               : "not acting: this instance is not the leader"};
    return result;
  }
  const std::string key = leaderKey();
  result = client_.txn({Compare::createRevision(key, term_), Compare::valueIs(key, options_.name)},
                       ops, {Op::get(key)});
  if (!result.ok()) return result;
  if (!result.value.succeeded) {
    seen_ = result.value.ranges.empty() ? LeaderInfo{} : leaderFrom(result.value.ranges.front());
    const std::int64_t my_term = term_;
    lose();
    result.status = {StatusCode::kFailedPrecondition,
                     "etcd refused the write: this instance (term " + std::to_string(my_term) +
                         ") is no longer the leader; " + describe(seen_)};
  }
  return result;
}

Status Leadership::putDocument(SteadyTime now, const std::string& name, const json& document) {
  return guardedTxn(now, {Op::put(documentKey(name), document.dump())}).status;
}

EtcdResult<std::optional<json>> Leadership::readDocument(const std::string& name) {
  EtcdResult<std::optional<json>> result;
  const std::string key = documentKey(name);
  EtcdResult<std::vector<KeyValue>> got = client_.get(key);
  result.status = got.status;
  if (!got.ok() || got.value.empty()) return result;
  json parsed = json::parse(got.value.front().value, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded())
    result.status = {StatusCode::kInternal, "etcd key " + key + " does not hold JSON"};
  else
    result.value = std::move(parsed);
  return result;
}

EtcdResult<LeaderInfo> Leadership::readLeader() {
  EtcdResult<LeaderInfo> result;
  EtcdResult<std::vector<KeyValue>> got = client_.get(leaderKey());
  result.status = got.status;
  if (got.ok()) result.value = leaderFrom(got.value);
  return result;
}

}  // namespace pgfailover::coord
