#include "runtime/coordinator.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <utility>

#include "coord/etcd_client.h"
#include "coord/from_config.h"
#include "coord/leadership.h"

namespace pgfailover::runtime {

namespace {

using nlohmann::json;

// The host's first non-loopback IPv4 address, or 127.0.0.1 when it has none.
std::string firstHostAddress() {
  struct ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "127.0.0.1";
  std::unique_ptr<struct ifaddrs, decltype(&freeifaddrs)> owned(list, &freeifaddrs);
  for (auto* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_INET) continue;
    const auto* address = reinterpret_cast<const sockaddr_in*>(entry->ifa_addr);
    if ((ntohl(address->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN] = {};
    if (inet_ntop(AF_INET, &address->sin_addr, text, sizeof(text)) != nullptr) return text;
  }
  return "127.0.0.1";
}

class EtcdCoordinator final : public Coordinator {
 public:
  EtcdCoordinator(const config::Config& config, Logger& log)
      : log_(log),
        name_(config.etcd.name),
        api_url_(apiUrlOf(config)),
        client_(coord::clientOptionsFrom(config.etcd)),
        leadership_(client_, coord::leadershipOptionsFrom(config.etcd)),
        members_prefix_(config.etcd.prefix + "/members/") {}

  bool shared() const override { return true; }

  core::CoordinationView step(SteadyTime now) override {
    const bool was_leading = leadership_.leading();
    const Status stepped = leadership_.step(now);
    if (!stepped.isOk() && stepped.message() != last_error_)
      log_.warn("etcd_unreachable", "election step failed: " + stepped.message() +
                                        "; this instance acts only while its lease surely holds");
    last_error_ = stepped.isOk() ? "" : stepped.message();
    if (leadership_.leading() != was_leading) {
      ++leadership_changes_;
      if (leadership_.leading())
        log_.warn("leadership_gained", "this instance ('" + name_ +
                                           "') holds the leader key, term " +
                                           std::to_string(leadership_.term()));
      else
        log_.warn("leadership_lost", "this instance ('" + name_ + "') no longer leads" +
                                         (stepped.isOk() ? "" : ": " + stepped.message()));
    }
    Status registered = Status::ok();
    if (stepped.isOk() && leadership_.leaseId() != 0 && leadership_.leaseId() != registered_lease_)
      registered = registerMember();
    // One read for who leads and who is registered.
    auto read = client_.txn({}, {coord::Op::get(leadership_.leaderKey()),
                                 coord::Op::get(members_prefix_, /*prefix=*/true)});
    if (read.ok() && read.value.ranges.size() == 2) {
      view_.acting_instance.clear();
      view_.term = 0;
      if (!read.value.ranges[0].empty()) {
        view_.acting_instance = read.value.ranges[0].front().value;
        view_.term = read.value.ranges[0].front().create_revision;
      }
      view_.instances.clear();
      view_.acting_api_url.clear();
      bool self_listed = false;
      for (const auto& kv : read.value.ranges[1]) {
        const std::string member = kv.key.substr(members_prefix_.size());
        view_.instances.push_back(member);
        self_listed = self_listed || member == name_;
        json doc = json::parse(kv.value, nullptr, /*allow_exceptions=*/false);
        if (member == view_.acting_instance && doc.is_object() && doc.contains("api_url") &&
            doc["api_url"].is_string())
          view_.acting_api_url = doc["api_url"].get<std::string>();
      }
      std::sort(view_.instances.begin(), view_.instances.end());
      // Registered under a lease etcd no longer has (it ran out while etcd was away): again.
      if (!self_listed && stepped.isOk()) registered_lease_ = 0;
    }
    view_.enabled = true;
    view_.instance = name_;
    view_.acting = leadership_.acting(now);
    view_.etcd_reachable = stepped.isOk() && read.ok() && registered.isOk();
    if (leadership_.leading())
      view_.since_last_renewal = elapsed(leadership_.renewalSentAt(), now);
    else
      view_.since_last_renewal.reset();
    view_.leadership_changes = leadership_changes_;
    const auto& totals = client_.totals();
    view_.etcd_requests = totals.requests;
    view_.etcd_errors = totals.errors;
    view_.etcd_request_seconds = totals.seconds;
    return view_;
  }

  bool acting(SteadyTime now) const override { return leadership_.acting(now); }
  std::string instance() const override { return name_; }
  std::int64_t term() const override { return leadership_.term(); }

  Status guard(SteadyTime now, const std::vector<DocumentWrite>& writes) override {
    std::vector<coord::Op> ops;
    for (const auto& [name, document] : writes)
      ops.push_back(document ? coord::Op::put(leadership_.documentKey(name), document->dump())
                             : coord::Op::erase(leadership_.documentKey(name)));
    // An empty write still checks, in etcd, that this instance leads.
    if (ops.empty()) ops.push_back(coord::Op::get(leadership_.leaderKey()));
    return leadership_.guardedTxn(now, ops).status;
  }

  Status read(const std::string& name, std::optional<json>& document) override {
    auto got = leadership_.readDocument(name);
    if (!got.ok()) return got.status;
    document = std::move(got.value);
    return Status::ok();
  }

  void resign() override {
    const bool was_leading = leadership_.leading();
    if (Status resigned = leadership_.resign(); !resigned.isOk())
      log_.warn("resign_failed", "could not revoke the etcd lease (" + resigned.message() +
                                     "); another instance takes over once it runs out");
    else if (was_leading)
      log_.info("resigned", "leadership handed over: the etcd lease is revoked");
  }

 private:
  Status registerMember() {
    const json member = {{"name", name_}, {"api_url", api_url_}};
    auto put = client_.put(members_prefix_ + name_, member.dump(), leadership_.leaseId());
    if (put.ok()) registered_lease_ = leadership_.leaseId();
    return put.status;
  }

  Logger& log_;
  std::string name_;
  std::string api_url_;
  coord::EtcdClient client_;
  coord::Leadership leadership_;
  std::string members_prefix_;
  std::int64_t registered_lease_ = 0;
  std::uint64_t leadership_changes_ = 0;
  std::string last_error_;
  core::CoordinationView view_;
};

}  // namespace

std::string apiUrlOf(const config::Config& config) {
  if (config.etcd.enabled && !config.etcd.api_url.empty()) return config.etcd.api_url;
  const std::string scheme = config.http.tls.enabled() ? "https" : "http";
  std::string host = config.http.listen_address;
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]")
    host = firstHostAddress();
  else if (host.find(':') != std::string::npos && host.front() != '[')
    host = "[" + host + "]";
  return scheme + "://" + host + ":" + std::to_string(config.http.port);
}

std::unique_ptr<Coordinator> makeCoordinator(const config::Config& config, Logger& log) {
  if (!config.etcd.enabled) return std::make_unique<SingleInstanceCoordinator>();
  return std::make_unique<EtcdCoordinator>(config, log);
}

}  // namespace pgfailover::runtime
