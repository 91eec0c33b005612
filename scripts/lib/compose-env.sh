# shellcheck shell=bash
# The compose lab's offline engine, sourced by scripts/lab-compose.sh (the lab by hand) and by
# tests/labs/compose_test.sh, so that both bring the lab up the same way, with no image pulled:
#   ce_install_packages   docker.io, docker-compose (v1), debootstrap, curl, jq, psql (idempotent;
#                         docker.io's own dockerd is kept from starting during the install)
#   ce_start_dockerd      a private dockerd: its own socket (CE_SOCKET), pid file, exec root and
#                         data root; bridges only in 10.232.0.0/16 (the lab's 10.232.77.0/24) and
#                         10.233.0.0/24 (docker0); no iptables rules, no IP forwarding, no
#                         masquerading: containers reach nothing beyond this machine. Published
#                         ports work through docker-proxy.
#   ce_base_tar           debootstrap --variant=minbase bookworm, cached as a tarball in CE_WORK
#   ce_base_image         pgfailover-base:bookworm: that tarball, docker import
#   ce_build              every image FROM it with docker-compose.ci.yml (Prometheus from
#                         Debian's package); fails when a build fails, never keeps a stale image
#   ce_compose ARGS       docker-compose -f docker-compose.yml -f docker-compose.ci.yml ARGS
#   ce_stop_dockerd       SIGTERM to the private dockerd by PID (SIGKILL after 60 s), then its
#                         leftovers (the nsfs mounts under the exec root, its docker0)
#   ce_dockerd_idle       true when the private dockerd has no container at all (another lab's
#                         containers keep it running)
# Settings (set before sourcing, or the defaults): CE_TAG (message prefix), CE_WORK
# (/var/tmp/pgfailover-compose: base image tarball, data root, logs), CE_DATA_ROOT
# ($CE_WORK/docker). ce_use_private_engine exports DOCKER_HOST (the private socket), BASE_IMAGE
# and COMPOSE_HTTP_TIMEOUT. Everything here needs root.

CE_TAG=${CE_TAG:-compose-env}
CE_REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
CE_WORK=${CE_WORK:-/var/tmp/pgfailover-compose}
CE_DATA_ROOT=${CE_DATA_ROOT:-$CE_WORK/docker}
CE_EXEC_ROOT=/run/pgfailover-dockerd
CE_SOCKET=$CE_EXEC_ROOT/docker.sock
CE_DOCKERD_PID_FILE=$CE_EXEC_ROOT/dockerd.pid
CE_DOCKERD_LOG=$CE_WORK/dockerd.log
CE_BASE_TAR=$CE_WORK/base-bookworm.tar
CE_BASE_IMAGE=pgfailover-base:bookworm
CE_DOCKER_POOL=10.232.0.0/16
CE_DOCKER_BIP=10.233.0.1/24
# Debian's client matches Debian's daemon (another docker CLI may be first on PATH).
CE_DOCKER=/usr/bin/docker
CE_IMAGES=(pgfailover/pgfailover pgfailover/postgres-node pgfailover/haproxy pgfailover/prometheus pgfailover/etcd)

# Points docker, docker-compose and the compose files at the private dockerd and the base image.
ce_use_private_engine() {
  export DOCKER_HOST=unix://$CE_SOCKET
  export BASE_IMAGE=$CE_BASE_IMAGE
  export COMPOSE_HTTP_TIMEOUT=${COMPOSE_HTTP_TIMEOUT:-300}
}

ce_say() { printf '%s: %s\n' "$CE_TAG" "$*" >&2; }
ce_die() {
  printf '%s: error: %s\n' "$CE_TAG" "$*" >&2
  exit 1
}

ce_compose() {
  (cd -- "$CE_REPO_ROOT" && /usr/bin/docker-compose -f docker-compose.yml -f docker-compose.ci.yml "$@")
}

ce_install_packages() {
  local p policy_added=0
  local -a missing=()
  for p in docker.io docker-compose debootstrap curl jq; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] || missing+=("$p")
  done
  command -v psql >/dev/null || missing+=(postgresql-client)
  ((${#missing[@]} > 0)) || return 0
  ce_say "installing ${missing[*]}"
  # docker.io's maintainer scripts would start the system's dockerd (default 172.17.0.0/16
  # bridge, NAT): forbid starting services during the install unless a policy already does.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${missing[@]}" </dev/null >/dev/null ||
    {
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
          --no-install-recommends "${missing[@]}" </dev/null >/dev/null
    } || status=$?
  ((policy_added == 0)) || rm -f /usr/sbin/policy-rc.d
  ((status == 0)) || ce_die "apt-get install ${missing[*]} failed"
}

# The private dockerd's PID when it runs (checked against /proc: a reused PID is not it).
ce_dockerd_pid() {
  local pid=''
  [[ -f $CE_DOCKERD_PID_FILE ]] && read -r pid <"$CE_DOCKERD_PID_FILE"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null || true) == /usr/sbin/dockerd ]] || return 0
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$CE_SOCKET" || return 0
  printf '%s\n' "$pid"
}

# Our ranges must not be networks this machine already uses (other than our dockerd's own).
ce_check_ranges() {
  local net routes
  for net in "$CE_DOCKER_POOL" "${CE_DOCKER_BIP%.*}.0/24"; do
    routes=$( (ip -4 route show match "$net"; ip -4 route show root "$net") 2>/dev/null | grep -v '^default' || true)
    [[ -z $routes ]] || ce_die "$net is already routed on this machine ($(head -n1 <<<"$routes")): another dockerd? stop it or change the ranges"
  done
}

# What a stopped dockerd leaves: the nsfs mount of its default network namespace under the exec
# root, and its docker0 bridge (ours when it carries our --bip address).
ce_cleanup_dockerd_leftovers() {
  local target
  while read -r target; do
    if [[ -n $target ]]; then umount "$target" 2>/dev/null || true; fi
  done < <(findmnt -rn -o TARGET 2>/dev/null | grep "^$CE_EXEC_ROOT/" | sort -r)
  rm -rf -- "$CE_EXEC_ROOT"
  if ip -4 -o addr show dev docker0 2>/dev/null | grep -qF " $CE_DOCKER_BIP "; then
    ip link delete docker0
  fi
}

ce_start_dockerd() {
  if [[ -z $(ce_dockerd_pid) ]]; then
    ce_cleanup_dockerd_leftovers
    ce_check_ranges
    mkdir -p "$CE_EXEC_ROOT" "$CE_DATA_ROOT" "$CE_WORK"
    ce_say "starting dockerd: socket $CE_SOCKET, data root $CE_DATA_ROOT, bridge $CE_DOCKER_BIP, pool $CE_DOCKER_POOL"
    nohup /usr/sbin/dockerd --host "unix://$CE_SOCKET" --pidfile "$CE_DOCKERD_PID_FILE" \
      --data-root "$CE_DATA_ROOT" --exec-root "$CE_EXEC_ROOT/exec" \
      --bip "$CE_DOCKER_BIP" --default-address-pool "base=$CE_DOCKER_POOL,size=24" \
      --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=true \
      --log-level warn >"$CE_DOCKERD_LOG" 2>&1 </dev/null &
  fi
  local deadline=$((SECONDS + 60))
  until $CE_DOCKER info >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      tail -n 30 "$CE_DOCKERD_LOG" >&2
      ce_die "dockerd does not answer on $CE_SOCKET after 60 s (log: $CE_DOCKERD_LOG)"
    fi
    sleep 0.5
  done
  ce_say "dockerd $($CE_DOCKER version -f '{{.Server.Version}}') running (pid $(ce_dockerd_pid), DOCKER_HOST=$DOCKER_HOST)"
}

ce_dockerd_idle() { [[ -z $($CE_DOCKER ps -aq 2>/dev/null) ]]; }

ce_stop_dockerd() {
  local pid deadline
  pid=$(ce_dockerd_pid)
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 60))
    while [[ -n $(ce_dockerd_pid) ]] && ((SECONDS < deadline)); do sleep 0.5; done
    if [[ -n $(ce_dockerd_pid) ]]; then
      ce_say "dockerd (pid $pid) ignored SIGTERM for 60 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
    fi
    ce_say "stopped dockerd (pid $pid)"
  fi
  ce_cleanup_dockerd_leftovers
}

# The debootstrapped Debian 12 root as a tarball, made once and cached in CE_WORK (also the
# root tests/labs/deb_install_test.sh installs the package into).
ce_base_tar() {
  [[ -s $CE_BASE_TAR ]] && return 0
  mkdir -p -- "$CE_WORK"
  local rootfs=$CE_WORK/rootfs.tmp
  rm -rf -- "$rootfs"
  ce_say "debootstrap --variant=minbase bookworm (the host's apt cache is reused; log: $CE_WORK/debootstrap.log)"
  debootstrap --variant=minbase --cache-dir=/var/cache/apt/archives bookworm "$rootfs" \
    http://deb.debian.org/debian >"$CE_WORK/debootstrap.log" 2>&1 ||
    {
      tail -n 20 "$CE_WORK/debootstrap.log" >&2
      ce_die "debootstrap failed (log: $CE_WORK/debootstrap.log)"
    }
  cat >"$rootfs/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -cf "$CE_BASE_TAR.tmp" .
  mv -f -- "$CE_BASE_TAR.tmp" "$CE_BASE_TAR"
  rm -rf -- "$rootfs"
}

ce_base_image() {
  if $CE_DOCKER image inspect "$CE_BASE_IMAGE" >/dev/null 2>&1; then
    ce_say "$CE_BASE_IMAGE already in the data root"
    return 0
  fi
  ce_base_tar
  ce_say "docker import $CE_BASE_TAR"
  $CE_DOCKER import --change 'CMD ["/bin/bash"]' "$CE_BASE_TAR" "$CE_BASE_IMAGE" >/dev/null
}

ce_images_present() {
  local image
  for image in "${CE_IMAGES[@]}"; do
    $CE_DOCKER image inspect "$image:${PGF_TAG:-local}" >/dev/null 2>&1 || return 1
  done
}

# Builds every image (layers cached in the data root). The full output goes to a log; the FROM
# lines, the tags and pgfailover's runtime packages are shown.
ce_build() {
  local log=$CE_WORK/build-${COMPOSE_PROJECT_NAME:-pgfailover}.log
  ce_compose config -q || ce_die "docker-compose config rejects the compose files"
  ce_say "building the images FROM $BASE_IMAGE (log: $log)"
  if ! ce_compose build >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    ce_die "docker-compose build failed (whole log: $log)"
  fi
  grep -E '^(Step [0-9]+/[0-9]+ : FROM|Successfully tagged|runtime packages:|lib)' "$log" >&2 || true
  ce_images_present || ce_die "the build left not every image of ${CE_IMAGES[*]} (tag ${PGF_TAG:-local})"
  $CE_DOCKER image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^pgfailover' >&2 || true
}
