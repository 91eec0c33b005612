// The etcd client's and the election's options from the configuration's "etcd" section.
#pragma once

#include "config/config.h"
#include "coord/etcd_client.h"
#include "coord/leadership.h"

namespace pgfailover::coord {

EtcdClientOptions clientOptionsFrom(const config::EtcdConfig& etcd);
LeadershipOptions leadershipOptionsFrom(const config::EtcdConfig& etcd);

}  // namespace pgfailover::coord
