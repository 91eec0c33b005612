#include "coord/from_config.h"

namespace pgfailover::coord {

EtcdClientOptions clientOptionsFrom(const config::EtcdConfig& etcd) {
  EtcdClientOptions options;
  options.endpoints = etcd.endpoints;
  // One setting for both: the configuration checks that connect + read fit in the acting
  // window.
  options.connect_timeout = etcd.request_timeout;
  options.request_timeout = etcd.request_timeout;
  options.ca_file = etcd.tls.ca_file;
  options.cert_file = etcd.tls.cert_file;
  options.key_file = etcd.tls.key_file;
  options.user = etcd.user;
  options.password = etcd.password;
  return options;
}

LeadershipOptions leadershipOptionsFrom(const config::EtcdConfig& etcd) {
  LeadershipOptions options;
  options.name = etcd.name;
  options.prefix = etcd.prefix;
  options.lease_ttl = etcd.lease_ttl;
  return options;
}

}  // namespace pgfailover::coord
