#!/usr/bin/env bash
# The network-namespace lab: the seed's two hosts, for real. One network namespace per host —
# pg1 and pg2 (PostgreSQL 15 + sshd on their own address), pgf (pgfailover) and client — all
# joined by a Linux bridge that lives in a namespace of its own (br). The namespaces have no
# default route and no way out; the root namespace gets an `unreachable` route for the lab's
# range, so no lab packet can leave the machine by mistake. Faults: kill -9 / SIGSTOP / SIGCONT a
# postmaster, a host's link down, partitions the hosts cannot see (nftables in the bridge).
# Everything the lab starts is stopped by PID (pid files); nothing is killed by name.
# See docs/lab-netns.md.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
NODE_SCRIPTS=$REPO_ROOT/scripts/node
NODES=(pg1 pg2)
HOSTS=(pgf pg1 pg2 client)

say() { printf 'lab-netns: %s\n' "$*" >&2; }
die() {
  printf 'lab-netns: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: scripts/lab-netns.sh COMMAND

  up                   namespaces, bridge, pg1 (primary) + pg2 (replica) with sshd, pgfailover
                       in pgf; returns once a replica streams and /readyz answers 200
  status [--json]      pgfailover's view (asked from inside pgf), links and partitions
  dsn                  libpq connection string reaching the writable node (use it in `client`)
  url                  pgfailover's base URL (reachable from the lab's namespaces only)
  psql [ARGS]          psql on that DSN, run in the client namespace
  exec HOST CMD...     run CMD in HOST's namespace (pg1, pg2, pgf, client, br)
  kill NODE            kill -9 the node's postmaster (a crash)
  stop NODE            SIGSTOP the postmaster and its children (a hung server)
  cont NODE            SIGCONT them again
  start NODE [--guard] start the node's PostgreSQL as its data directory is; with --guard, ask
                       pgfailover first and start as a standby when it is not the primary
  shutdown NODE        pg_ctl stop -m fast
  pgfailover start|stop|kill
                       start pgfailover again, stop it (SIGTERM), or kill -9 it (a crash)
  switchover [NODE]    planned switchover to NODE (default: the replica), through the admin API
  poweroff NODE        SIGKILL of the postmaster and all its processes at once: the host's power
                       cut through an out-of-band channel (works while its link is down)
  link HOST down|up    the host's cable: its veth in the bridge namespace
  partition HOST [from HOST] [--one-way]
                       drop IPv4 between HOST and everyone (or only the other HOST), both
                       directions, or with --one-way only what HOST sends; invisible to the hosts
  heal                 remove every partition (and bring every link up)
  logs [NAME]          last lines of pgfailover's log, or of pg1/pg2/primary/replica, sshd-pg1, guard-pg1...
  down                 stop everything by PID, remove namespaces, route, lab folder

NODE is pg1, pg2, primary or replica (the current holder of that role, from pgfailover's
/status). HOST is a NODE, pgfailover (pgf) or client.
Environment: LAB_NET (10.231.77.0/24, a private /24), LAB_PREFIX (pgflab-), LAB_DIR
(/tmp/pgfailover-netns-lab), LAB_TIMEOUT (90 s), LAB_BUILD_DIR (build), LAB_SKIP_DEPS=1,
LAB_SKIP_BUILD=1, PGFAILOVER_BIN, LAB_ICMP=0 (no probe.icmp), LAB_SYNC (off, on, strict:
pgfailover's synchronous.mode), LAB_FENCING_HOOK=1 (failover.fencing_hook powers the old
primary off before every failover promotion, as IPMI or a cloud API would), LAB_LEASE_GUARD=0 (no
lease guard on the nodes: pgfailover lease-guard). See docs/lab-netns.md.
EOF
}

((EUID == 0)) || [[ ${1:-help} =~ ^(help|-h|--help)$ ]] ||
  die "the namespace lab needs root (network namespaces, bridge, nftables, sshd): run it with sudo"

# ----- settings -------------------------------------------------------------------------------

LAB_DIR=$(realpath -m -- "${LAB_DIR:-/tmp/pgfailover-netns-lab}")
LAB_ENV=$LAB_DIR/lab.env
MARKER=$LAB_DIR/.pgfailover-netns-lab
LAB_TIMEOUT=${LAB_TIMEOUT:-90}
[[ $LAB_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "LAB_TIMEOUT must be a whole number of seconds"

if [[ -f $LAB_ENV ]]; then
  # A lab that exists keeps the network and binary it was made with.
  # shellcheck source=/dev/null
  source "$LAB_ENV"
else
  LAB_NET=${LAB_NET:-10.231.77.0/24}
  LAB_PREFIX=${LAB_PREFIX:-pgflab-}
  LAB_SYNC=${LAB_SYNC:-off}
  LAB_FENCING_HOOK=${LAB_FENCING_HOOK:-0}
  LAB_LEASE_GUARD=${LAB_LEASE_GUARD:-1}
  LAB_BUILD_DIR=$(realpath -m -- "${LAB_BUILD_DIR:-$REPO_ROOT/build}")
  if [[ -n ${PGFAILOVER_BIN:-} ]]; then
    PGFAILOVER_BIN=$(realpath -m -- "$PGFAILOVER_BIN")
    LAB_SKIP_BUILD=1
  else
    LAB_SKIP_BUILD=${LAB_SKIP_BUILD:-0}
    PGFAILOVER_BIN=$LAB_BUILD_DIR/pgfailover
  fi
fi

# LAB_NET: a private /24; hosts get fixed last octets.
if [[ ! $LAB_NET =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.0/24$ ]]; then
  die "LAB_NET must be a /24 written as A.B.C.0/24, got '$LAB_NET'"
fi
o1=${BASH_REMATCH[1]} o2=${BASH_REMATCH[2]} o3=${BASH_REMATCH[3]}
((o1 <= 255 && o2 <= 255 && o3 <= 255)) || die "LAB_NET '$LAB_NET' is not an IPv4 network"
if ! ((o1 == 10 || (o1 == 172 && o2 >= 16 && o2 <= 31) || (o1 == 192 && o2 == 168))); then
  die "LAB_NET must be in a private range (10/8, 172.16/12, 192.168/16), got '$LAB_NET'"
fi
NET_BASE=$o1.$o2.$o3
LAB_SYNC=${LAB_SYNC:-off} # a lab.env written before LAB_SYNC existed
LAB_FENCING_HOOK=${LAB_FENCING_HOOK:-0}
[[ $LAB_FENCING_HOOK =~ ^[01]$ ]] || die "LAB_FENCING_HOOK must be 0 or 1, got '$LAB_FENCING_HOOK'"
LAB_LEASE_GUARD=${LAB_LEASE_GUARD:-1}
[[ $LAB_LEASE_GUARD =~ ^[01]$ ]] || die "LAB_LEASE_GUARD must be 0 or 1, got '$LAB_LEASE_GUARD'"
[[ $LAB_SYNC =~ ^(off|on|strict)$ ]] || die "LAB_SYNC must be off, on or strict, got '$LAB_SYNC'"
[[ $LAB_PREFIX =~ ^[a-z][a-z0-9-]{0,7}$ ]] || die "LAB_PREFIX must be 1-8 of a-z 0-9 -, starting with a letter, got '$LAB_PREFIX'"

PG_PORT=5432
SSH_PORT=22
HTTP_PORT=8008
PG_BIN=/usr/lib/postgresql/15/bin
SUPERUSER=pgfailover
REPL_USER=replicator
SECRETS=$LAB_DIR/secrets
PASSWORD_FILE=$SECRETS/pgfailover.password
ADMIN_TOKEN_FILE=$SECRETS/admin.token # bearer token of POST /switchover and /failover
REPL_PASSWORD_FILE=$SECRETS/replication.password
PGPASS=$SECRETS/pgpass
REPL_PASSFILE=$LAB_DIR/replication.pgpass # on the nodes' "hosts": the same path on each
LAB_CA_DIR=$LAB_DIR/ca                    # the nodes' CA: ca.crt for every client, ca.key 0600
PGF_DIR=$LAB_DIR/pgf
CONFIG=$PGF_DIR/pgfailover.json
PID_FILE=$PGF_DIR/pgfailover.pid
LOG_FILE=$PGF_DIR/pgfailover.log
SSH_KEY=$PGF_DIR/ssh/id_ed25519
KNOWN_HOSTS=$PGF_DIR/ssh/known_hosts
NFT_TABLE=pgflab

host_ip() {
  case $1 in
    pgf) printf '%s.10\n' "$NET_BASE" ;;
    pg1) printf '%s.11\n' "$NET_BASE" ;;
    pg2) printf '%s.12\n' "$NET_BASE" ;;
    client) printf '%s.20\n' "$NET_BASE" ;;
    *) die "no address for host '$1'" ;;
  esac
}
ns_name() { printf '%s%s\n' "$LAB_PREFIX" "$1"; }
BR_NS=$(ns_name br)
URL=http://$(host_ip pgf):$HTTP_PORT
node_dir() { printf '%s\n' "$LAB_DIR/$1"; }
node_initialized() { [[ -f $LAB_DIR/$1/data/PG_VERSION ]]; }

ns_exists() { [[ -e /run/netns/$1 ]]; }
in_ns() { # host cmd...
  local ns
  ns=$(ns_name "$1")
  shift
  ns_exists "$ns" || die "namespace $ns does not exist: run 'scripts/lab-netns.sh up' first"
  ip netns exec "$ns" "$@"
}

# ----- helpers --------------------------------------------------------------------------------

require_lab() {
  [[ -f $MARKER ]] || die "no lab in $LAB_DIR: run 'scripts/lab-netns.sh up' first (or set LAB_DIR)"
}

# curl from inside the client namespace to an address of the lab; only lab addresses.
lab_curl() { # path [curl args...]
  local path=$1
  shift
  in_ns client curl -s --max-time 3 "$@" "$URL$path"
}
http_code() { lab_curl "$1" -o /dev/null -w '%{http_code}' 2>/dev/null || true; }

# psql from the client namespace as the lab's superuser.
lab_psql() { # host psql-args...
  local host=$1
  shift
  in_ns client env PGPASSFILE="$PGPASS" psql -X -A -t -q \
    -d "host=$(host_ip "$host") port=$PG_PORT dbname=postgres user=$SUPERUSER sslmode=verify-full sslrootcert=$LAB_CA_DIR/ca.crt connect_timeout=3" "$@"
}

# A postmaster's PID from postmaster.pid when it lives and works in that data directory.
postmaster_pid() {
  local file=$LAB_DIR/$1/data/postmaster.pid pid='' state
  [[ -f $file ]] && read -r pid <"$file"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  state=$(proc_state "$pid")
  [[ -n $state && $state != Z && $state != X ]] || return 0
  [[ $(readlink "/proc/$pid/cwd" 2>/dev/null || true) == "$LAB_DIR/$1/data" ]] || return 0
  printf '%s\n' "$pid"
}

proc_state() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  printf '%s\n' "${stat%% *}"
}

# Direct children of a PID, for SIGSTOP/SIGCONT of a server's backends: from the kernel's
# /proc/PID/task/*/children when it has them, else by scanning /proc/*/stat (read with the shell's
# own `read`: a `cat` per process takes seconds on a loaded machine, and the chaos suite times
# the fault from when this command returns).
children_of() {
  local parent=$1 stat pid rest ppid task
  local -a pids=()
  if [[ -r /proc/$parent/task/$parent/children ]]; then
    for task in /proc/"$parent"/task/*/children; do
      read -r -a pids <"$task" 2>/dev/null || true
      ((${#pids[@]} == 0)) || printf '%s\n' "${pids[@]}"
    done
    return 0
  fi
  for stat in /proc/[0-9]*/stat; do
    read -r rest <"$stat" 2>/dev/null || continue
    pid=${rest%% *}
    rest=${rest##*) }
    read -r _ ppid _ <<<"$rest"
    [[ $ppid == "$parent" ]] && printf '%s\n' "$pid"
  done
  return 0
}

# pgfailover's PID from its pid file when that process runs the lab's binary.
daemon_pid() {
  local pid='' exe
  [[ -f $PID_FILE ]] && read -r pid <"$PID_FILE"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ $exe == "$PGFAILOVER_BIN" || $exe == "$PGFAILOVER_BIN (deleted)" ]] || return 0
  [[ $(proc_state "$pid") != Z ]] || return 0
  printf '%s\n' "$pid"
}

# The lab's sshd listener of a node from its pid file, checked by binary and config path.
sshd_pid() {
  local dir=$LAB_DIR/ssh/$1 pid=''
  [[ -f $dir/sshd.pid ]] && read -r pid <"$dir/sshd.pid"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null || true) == /usr/sbin/sshd ]] || return 0
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$dir/sshd_config" || return 0
  printf '%s\n' "$pid"
}

sshd_running() { [[ -n $(sshd_pid "$1") ]]; }
daemon_running() { [[ -n $(daemon_pid) ]]; }

# pg1/pg2 from a NODE argument: primary/replica are asked from pgfailover's /status, or from
# pg_is_in_recovery() on each node when pgfailover does not answer.
resolve_node() {
  local want=${1:-} json name node recovery
  case $want in
    pg1 | pg2)
      printf '%s\n' "$want"
      return
      ;;
    primary | replica) ;;
    '') die "which node? pg1, pg2, primary or replica" ;;
    *) die "unknown node '$want': use pg1, pg2, primary or replica" ;;
  esac
  if json=$(lab_curl /status -f 2>/dev/null); then
    name=$(jq -r --arg role "$want" '[.nodes[]? | select(.role == $role) | .name][0] // empty' \
      <<<"$json" 2>/dev/null || true)
    if [[ $name == pg1 || $name == pg2 ]]; then
      printf '%s\n' "$name"
      return
    fi
  fi
  for node in "${NODES[@]}"; do
    recovery=$(lab_psql "$node" -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)
    if [[ ($want == primary && $recovery == f) || ($want == replica && $recovery == t) ]]; then
      say "pgfailover did not name the $want; pg_is_in_recovery() says $node"
      printf '%s\n' "$node"
      return
    fi
  done
  die "no node is the $want now (neither pgfailover's /status nor pg_is_in_recovery() names one)"
}

# A HOST argument: a NODE, pgfailover/pgf or client.
resolve_host() {
  case ${1:-} in
    pgf | pgfailover) printf 'pgf\n' ;;
    client) printf 'client\n' ;;
    pg1 | pg2 | primary | replica) resolve_node "$1" ;;
    '') die "which host? pg1, pg2, primary, replica, pgfailover or client" ;;
    *) die "unknown host '$1': use pg1, pg2, primary, replica, pgfailover or client" ;;
  esac
}

new_password() {
  local password
  password=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
  [[ ${#password} -eq 24 ]] || die "cannot generate a password"
  printf '%s' "$password"
}

write_file() { # file mode (content on stdin)
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  chmod "$2" "$tmp"
  mv -f -- "$tmp" "$1"
}

# The nodes' lease guards (scripts/lab-guard.sh), each in its node's namespace.
# shellcheck source=scripts/lab-guard.sh
source "$REPO_ROOT/scripts/lab-guard.sh"
start_node_guard() {
  [[ $LAB_LEASE_GUARD == 1 ]] || return 0
  start_guard "$1" ip netns exec "$(ns_name "$1")"
}

node_script() { # script node [args...]  run in the node's namespace
  local script=$1 node=$2
  shift 2
  in_ns "$node" env NODE_TIMEOUT="$LAB_TIMEOUT" PG_BIN="$PG_BIN" \
    bash "$NODE_SCRIPTS/$script" --dir "$(node_dir "$node")" --name "$node" "$@"
}

wait_for() { # seconds description command...
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what"
    sleep 0.3
  done
}

# ----- network --------------------------------------------------------------------------------

# The lab's range must not be a network this machine uses: any route into it other than our
# own `unreachable` one, or an address in it, and we refuse.
check_range_unused() {
  local routes
  routes=$( (ip -4 route show match "$LAB_NET" 2>/dev/null; ip -4 route show root "$LAB_NET" 2>/dev/null) |
    grep -v -e '^default' -e "^unreachable $LAB_NET *\$" || true)
  [[ -z $routes ]] || die "LAB_NET $LAB_NET overlaps a network this machine routes ($(echo "$routes" | head -n1)): choose another LAB_NET"
  [[ -z $(ip -4 -o addr show to "$LAB_NET" 2>/dev/null) ]] ||
    die "an interface of this machine has an address in $LAB_NET: choose another LAB_NET"
}

root_route_present() { ip -4 route show type unreachable "$LAB_NET" 2>/dev/null | grep -q .; }

net_up() {
  check_range_unused
  if ! root_route_present; then
    ip route add unreachable "$LAB_NET"
    say "root namespace: unreachable route for $LAB_NET (nothing of the lab can leave the machine)"
  fi
  local host ns
  for host in br "${HOSTS[@]}"; do
    ns=$(ns_name "$host")
    if ! ns_exists "$ns"; then
      ip netns add "$ns"
    fi
    ip -n "$ns" link set lo up
    # IPv4 only, no router solicitations or other chatter; nothing routes between interfaces.
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
      net.ipv4.ip_forward=0 >/dev/null
  done
  if ! ip -n "$BR_NS" link show br0 >/dev/null 2>&1; then
    ip -n "$BR_NS" link add br0 type bridge stp_state 0 forward_delay 0
  fi
  ip -n "$BR_NS" link set br0 up
  for host in "${HOSTS[@]}"; do
    ns=$(ns_name "$host")
    # Both ends are created inside the namespaces: no veth ever exists in the root namespace.
    if ! ip -n "$BR_NS" link show "v-$host" >/dev/null 2>&1; then
      ip -n "$BR_NS" link add "v-$host" type veth peer name eth0 netns "$ns"
    fi
    ip -n "$BR_NS" link set "v-$host" master br0 up
    ip -n "$ns" link set eth0 up
    if ! ip -n "$ns" -4 -o addr show dev eth0 | grep -qF " $(host_ip "$host")/24 "; then
      ip -n "$ns" addr add "$(host_ip "$host")/24" dev eth0
    fi
    # No default route in any namespace: the /24 on eth0 is all there is.
    if ip -n "$ns" route show default | grep -q .; then
      die "namespace $ns has a default route: refusing to go on"
    fi
  done
  say "network: $LAB_NET on bridge br0 in $BR_NS; pgf $(host_ip pgf), pg1 $(host_ip pg1), pg2 $(host_ip pg2), client $(host_ip client)"
}

nft_ensure_table() {
  in_ns br nft list table bridge "$NFT_TABLE" >/dev/null 2>&1 && return 0
  in_ns br nft -f - <<EOF
table bridge $NFT_TABLE {
  chain forward {
    type filter hook forward priority 0; policy accept;
  }
}
EOF
}

# ----- setup steps ----------------------------------------------------------------------------

install_extra_packages() {
  local -a want=(nftables iputils-ping openssh-client openssh-server iproute2 curl jq) missing=()
  local p
  for p in "${want[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
    {
      apt-get -o DPkg::Lock::Timeout=300 update -qq
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "${missing[@]}" </dev/null >/dev/null
    }
}

build_pgfailover() {
  say "building pgfailover in $LAB_BUILD_DIR (log: $LAB_DIR/build.log)"
  if ! {
    cmake -S "$REPO_ROOT" -B "$LAB_BUILD_DIR" -DCMAKE_BUILD_TYPE="${LAB_BUILD_TYPE:-RelWithDebInfo}" \
      -DBUILD_TESTING=OFF &&
      cmake --build "$LAB_BUILD_DIR" --target pgfailover -j "$(nproc)"
  } >"$LAB_DIR/build.log" 2>&1; then
    tail -n 40 "$LAB_DIR/build.log" >&2
    die "building pgfailover failed (whole log: $LAB_DIR/build.log)"
  fi
}

make_secrets() {
  install -d -m 0700 "$SECRETS" "$PGF_DIR/ssh"
  [[ -s $PASSWORD_FILE ]] || new_password | write_file "$PASSWORD_FILE" 0600
  [[ -s $REPL_PASSWORD_FILE ]] || new_password | write_file "$REPL_PASSWORD_FILE" 0600
  [[ -s $ADMIN_TOKEN_FILE ]] || new_password | write_file "$ADMIN_TOKEN_FILE" 0600
  # pgpass host fields match literally, not by pattern: list every node.
  {
    local node
    for node in "${NODES[@]}"; do
      printf '%s:*:*:%s:%s\n' "$(host_ip "$node")" "$SUPERUSER" "$(<"$PASSWORD_FILE")"
    done
  } | write_file "$PGPASS" 0600
  if [[ ! -f $SSH_KEY ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "pgfailover@netns-lab" -f "$SSH_KEY" >/dev/null
  fi
}

# sshd for one node, in its namespace, on its address only, with a host key of the lab and
# pgfailover's key (usable from pgf's address only) as the one authorized key.
start_sshd() {
  local node=$1 dir=$LAB_DIR/ssh/$1 pid
  install -d -m 0755 "$dir"
  [[ -f $dir/ssh_host_ed25519_key ]] ||
    ssh-keygen -q -t ed25519 -N '' -C "$node@netns-lab" -f "$dir/ssh_host_ed25519_key" >/dev/null
  printf 'from="%s",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty %s\n' \
    "$(host_ip pgf)" "$(<"$SSH_KEY.pub")" | write_file "$dir/authorized_keys" 0644
  write_file "$dir/sshd_config" 0644 <<EOF
# Written by scripts/lab-netns.sh for $node; only pgfailover's key, only as postgres.
ListenAddress $(host_ip "$node"):$SSH_PORT
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers postgres
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
# Debian's PAM lets "postgres" (locked password) log in by key.
UsePAM yes
# The lab folder may sit under /tmp (mode 1777), which StrictModes would refuse.
StrictModes no
UseDNS no
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
MaxStartups 50
LogLevel VERBOSE
EOF
  pid=$(sshd_pid "$node")
  if [[ -n $pid ]]; then
    return 0
  fi
  # sshd's privilege separation directory (created by the package's init script normally).
  install -d -m 0755 /run/sshd
  /usr/sbin/sshd -t -f "$dir/sshd_config" || die "sshd rejects $dir/sshd_config"
  in_ns "$node" /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  wait_for 10 "sshd of $node" sshd_running "$node"
  say "sshd for $node on $(host_ip "$node"):$SSH_PORT (pid $(sshd_pid "$node"))"
}

# known_hosts for pgfailover, scanned from inside pgf, each key checked against the key file.
write_known_hosts() {
  local node scanned expected got
  : >"$KNOWN_HOSTS.tmp"
  for node in "${NODES[@]}"; do
    scanned=
    local deadline=$((SECONDS + 15))
    while [[ -z $scanned ]] && ((SECONDS < deadline)); do
      scanned=$(in_ns pgf ssh-keyscan -T 3 -t ed25519 -p "$SSH_PORT" "$(host_ip "$node")" 2>/dev/null || true)
      [[ -n $scanned ]] || sleep 0.5
    done
    [[ -n $scanned ]] || die "ssh-keyscan from pgf could not reach $node's sshd at $(host_ip "$node"):$SSH_PORT"
    expected=$(ssh-keygen -lf "$LAB_DIR/ssh/$node/ssh_host_ed25519_key.pub" | awk '{print $2}')
    got=$(ssh-keygen -lf - <<<"$scanned" | awk '{print $2}')
    [[ $expected == "$got" ]] || die "host key of $node scanned from pgf ($got) differs from the lab's key ($expected)"
    printf '%s\n' "$scanned" >>"$KNOWN_HOSTS.tmp"
  done
  chmod 0600 "$KNOWN_HOSTS.tmp"
  mv -f -- "$KNOWN_HOSTS.tmp" "$KNOWN_HOSTS"
}

write_config() {
  local config
  config=$(jq -n \
    --arg pw "$PASSWORD_FILE" --arg user "$SUPERUSER" --arg repl "$REPL_USER" \
    --arg ip1 "$(host_ip pg1)" --arg ip2 "$(host_ip pg2)" --arg ipf "$(host_ip pgf)" \
    --argjson port "$PG_PORT" --argjson sshport "$SSH_PORT" --argjson http "$HTTP_PORT" \
    --arg dir1 "$LAB_DIR/pg1/data" --arg dir2 "$LAB_DIR/pg2/data" --arg bin "$PG_BIN" \
    --arg log1 "$LAB_DIR/pg1/postgresql.log" --arg log2 "$LAB_DIR/pg2/postgresql.log" \
    --arg key "$SSH_KEY" --arg kh "$KNOWN_HOSTS" --arg passfile "$REPL_PASSFILE" \
    --arg ca "$LAB_CA_DIR/ca.crt" \
    --arg state "$PGF_DIR/state.json" --arg token "$ADMIN_TOKEN_FILE" --arg sync "$LAB_SYNC" \
    --arg hook "$([[ $LAB_FENCING_HOOK == 1 ]] && printf 'LAB_DIR=%q bash %q fencing-hook' "$LAB_DIR" "$REPO_ROOT/scripts/lab-netns.sh")" \
    --argjson icmp "$([[ ${LAB_ICMP:-1} == 1 ]] && echo true || echo false)" '
    def node($name; $ip; $dir; $log): {
      name: $name, host: $ip, port: $port, dbname: "postgres", user: $user, password_file: $pw,
      sslmode: "verify-full", sslrootcert: $ca,
      data_dir: $dir, bin_dir: $bin,
      start_command: ("{bin_dir}/pg_ctl start -D {data_dir} -w -t 60 -l " + $log),
      ssh: {host: $ip, port: $sshport, user: "postgres", private_key_file: $key,
            known_hosts_file: $kh, connect_timeout_ms: 3000}
    };
    {
      cluster_name: "netns-lab",
      nodes: [node("pg1"; $ip1; $dir1; $log1), node("pg2"; $ip2; $dir2; $log2)],
      probe: {interval_ms: 1000, icmp: $icmp},
      failover: {confirmed_down_timeout_ms: 3000, unresponsive_timeout_ms: 10000,
                 rejoin_retry_interval_ms: 10000},
      replication: {user: $repl, passfile: $passfile, sslmode: "verify-full", sslrootcert: $ca},
      http: {listen_address: $ipf, port: $http},
      admin: {token_file: $token},
      state_file: $state
    } + (if $sync == "off" then {} else {synchronous: {mode: $sync}} end)
      | if $hook == "" then . else .failover.fencing_hook = $hook end')
  printf '%s\n' "$config" | write_file "$CONFIG" 0600
}

start_pgfailover() {
  local pid check_output
  pid=$(daemon_pid)
  if [[ -n $pid ]]; then
    say "pgfailover already running (pid $pid)"
    return 0
  fi
  if ! check_output=$(in_ns pgf "$PGFAILOVER_BIN" check-config --config "$CONFIG" 2>&1); then
    printf '%s\n' "$check_output" >&2
    die "pgfailover check-config rejected $CONFIG"
  fi
  say "starting pgfailover in $(ns_name pgf) (log: $LOG_FILE)"
  # `ip netns exec` execs the command: $! is pgfailover's own PID.
  nohup ip netns exec "$(ns_name pgf)" "$PGFAILOVER_BIN" run --config "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  wait_for 10 "pgfailover to start" daemon_running
}

cmd_up() {
  if [[ ${LAB_SKIP_DEPS:-0} != 1 ]]; then
    bash "$REPO_ROOT/scripts/install-deps.sh"
    install_extra_packages
  fi
  local tool
  for tool in ip nft sshd ssh-keygen ssh-keyscan curl jq psql; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || die "$tool not found (scripts/install-deps.sh, nftables, openssh-server)"
  done

  if [[ -d $LAB_DIR && ! -f $MARKER && -n $(ls -A -- "$LAB_DIR" 2>/dev/null) ]]; then
    die "$LAB_DIR exists and is not a namespace lab folder: choose another LAB_DIR"
  fi
  mkdir -p -- "$LAB_DIR"
  chmod 0755 "$LAB_DIR"
  touch "$MARKER"
  if [[ ! -f $LAB_ENV ]]; then
    {
      printf '# Written by scripts/lab-netns.sh up; later commands use these values.\n'
      printf 'LAB_NET=%q\nLAB_PREFIX=%q\nLAB_BUILD_DIR=%q\nPGFAILOVER_BIN=%q\nLAB_SKIP_BUILD=%q\nLAB_SYNC=%q\nLAB_FENCING_HOOK=%q\nLAB_LEASE_GUARD=%q\n' \
        "$LAB_NET" "$LAB_PREFIX" "$LAB_BUILD_DIR" "$PGFAILOVER_BIN" "$LAB_SKIP_BUILD" "$LAB_SYNC" "$LAB_FENCING_HOOK" "$LAB_LEASE_GUARD"
    } >"$LAB_ENV"
  fi
  install -d -m 0755 "$PGF_DIR"

  if [[ ${LAB_SKIP_BUILD:-0} != 1 ]]; then
    build_pgfailover
  fi
  [[ -x $PGFAILOVER_BIN ]] || die "$PGFAILOVER_BIN is missing: build it (cmake --build build) or set PGFAILOVER_BIN"

  net_up
  make_secrets
  local node
  install -d -m 0755 "$LAB_DIR/ssh"
  for node in "${NODES[@]}"; do
    start_sshd "$node"
  done

  # TLS: the lab's CA in $LAB_DIR/ca (its key stays there, 0600); each node's certificate names
  # its namespace address, which pgfailover and the replicas verify (verify-full).
  local -a common=(--port "$PG_PORT" --allow-cidr "$LAB_NET" --repl-user "$REPL_USER"
    --repl-password-file "$REPL_PASSWORD_FILE" --passfile "$REPL_PASSFILE" --ca-dir "$LAB_CA_DIR")
  if node_initialized pg1; then
    node_script start.sh pg1
  else
    node_script init-primary.sh pg1 "${common[@]}" --listen "$(host_ip pg1)" \
      --superuser "$SUPERUSER" --superuser-password-file "$PASSWORD_FILE"
  fi
  if node_initialized pg2; then
    node_script start.sh pg2
  else
    node_script clone-replica.sh pg2 "${common[@]}" --listen "$(host_ip pg2)" \
      --primary-host "$(host_ip pg1)" --primary-port "$PG_PORT"
  fi

  for node in "${NODES[@]}"; do
    start_node_guard "$node"
  done
  write_known_hosts
  write_config
  start_pgfailover

  say "waiting up to ${LAB_TIMEOUT}s for $URL/readyz (from the client namespace)"
  local deadline=$((SECONDS + LAB_TIMEOUT)) code=
  while ((SECONDS < deadline)); do
    code=$(http_code /readyz)
    [[ $code == 200 ]] && break
    if [[ -z $(daemon_pid) ]]; then
      tail -n 30 "$LOG_FILE" >&2 || true
      die "pgfailover exited during start; log: $LOG_FILE"
    fi
    sleep 0.5
  done
  if [[ $code != 200 ]]; then
    tail -n 30 "$LOG_FILE" >&2 || true
    die "/readyz did not answer 200 within ${LAB_TIMEOUT}s (last: ${code:-none}); everything still runs: inspect, then 'scripts/lab-netns.sh down'"
  fi
  say "ready: pgfailover $URL in $(ns_name pgf) (pid $(daemon_pid)); pg1 $(host_ip pg1):$PG_PORT, pg2 $(host_ip pg2):$PG_PORT"
  say "try: scripts/lab-netns.sh status; scripts/lab-netns.sh kill primary; scripts/lab-netns.sh partition pgfailover from primary"
}

# ----- commands -------------------------------------------------------------------------------

cmd_status() {
  require_lab
  if [[ ${1:-} == --json ]]; then
    lab_curl /status -f || die "pgfailover does not answer at $URL"
    echo
    return
  fi
  [[ -z ${1:-} ]] || die "status takes only --json"
  in_ns pgf "$PGFAILOVER_BIN" status --url "$URL" || say "pgfailover does not answer at $URL"
  local host state
  printf '\nLinks:'
  for host in "${HOSTS[@]}"; do
    state=$(ip -n "$BR_NS" -o link show "v-$host" 2>/dev/null | grep -q 'state UP' && echo up || echo DOWN)
    printf ' %s=%s' "$host" "$state"
  done
  printf '\nPartitions:'
  local rules
  rules=$(in_ns br nft list table bridge "$NFT_TABLE" 2>/dev/null | sed -n 's/.*comment "\(.*\)".*/\1/p' | sort -u || true)
  if [[ -n $rules ]]; then
    printf '\n'
    # shellcheck disable=SC2001
    sed 's/^/  /' <<<"$rules"
  else
    printf ' none\n'
  fi
}

cmd_dsn() {
  require_lab
  printf 'host=%s,%s port=%s,%s dbname=postgres user=%s passfile=%s sslmode=verify-full sslrootcert=%s target_session_attrs=read-write connect_timeout=2\n' \
    "$(host_ip pg1)" "$(host_ip pg2)" "$PG_PORT" "$PG_PORT" "$SUPERUSER" "$PGPASS" "$LAB_CA_DIR/ca.crt"
}

cmd_kill() {
  require_lab
  local node pid
  node=$(resolve_node "${1:-}")
  pid=$(postmaster_pid "$node")
  [[ -n $pid ]] || die "$node is not running"
  kill -KILL "$pid"
  local deadline=$((SECONDS + 10))
  while [[ -n $(postmaster_pid "$node") ]] && ((SECONDS < deadline)); do sleep 0.1; done
  say "killed $node's postmaster (pid $pid) with SIGKILL"
}

# The node whose postmaster is stopped (SIGSTOP), for `cont primary` when a stopped primary
# can no longer be named by its role.
stopped_node() {
  local node pid
  for node in "${NODES[@]}"; do
    pid=$(postmaster_pid "$node")
    if [[ -n $pid && $(proc_state "$pid") == T ]]; then
      printf '%s\n' "$node"
      return 0
    fi
  done
  return 1
}

cmd_signal_tree() { # STOP|CONT node
  require_lab
  local signal=$1 node pid child
  if [[ $signal == CONT ]]; then
    node=$(resolve_node "${2:-}" 2>/dev/null) || node=$(stopped_node) ||
      die "cannot tell which node '${2:-}' is, and no node is stopped"
  else
    node=$(resolve_node "${2:-}")
  fi
  pid=$(postmaster_pid "$node")
  [[ -n $pid ]] || die "$node is not running"
  local -a pids=("$pid")
  while read -r child; do [[ -n $child ]] && pids+=("$child"); done < <(children_of "$pid")
  if [[ $signal == STOP ]]; then
    kill -STOP "${pids[@]}"
  else
    kill -CONT "${pids[@]}"
  fi
  say "SIG$signal to $node's postmaster (pid $pid) and ${#pids[@]} process(es) in all: ${pids[*]}"
}

cmd_start() {
  require_lab
  local node guard=0
  node=$(resolve_node "${1:-}")
  [[ ${2:-} == --guard ]] && guard=1
  [[ -z ${2:-} || $guard == 1 ]] || die "start takes NODE [--guard]"
  node_initialized "$node" || die "$node has no data directory in $LAB_DIR"
  if ((guard)); then
    in_ns "$node" bash "$REPO_ROOT/docker/postgres/node-guard.sh" --dir "$(node_dir "$node")" \
      --name "$node" --pgfailover-url "$URL" --repl-user "$REPL_USER" --passfile "$REPL_PASSFILE" \
      --peer "pg1=$(host_ip pg1):$PG_PORT" --peer "pg2=$(host_ip pg2):$PG_PORT"
  fi
  node_script start.sh "$node"
}

cmd_shutdown() {
  require_lab
  local node
  node=$(resolve_node "${1:-}")
  node_script stop.sh "$node" --mode fast
}

# pgfailover's own lifecycle, for faults of the sidecar itself: `kill` is a crash (SIGKILL, no
# chance to write anything more), `stop` a clean SIGTERM, `start` runs it again with the same
# configuration and state file.
cmd_pgfailover() {
  require_lab
  local pid deadline
  case ${1:-} in
    start) start_pgfailover ;;
    stop | kill)
      pid=$(daemon_pid)
      [[ -n $pid ]] || die "pgfailover is not running"
      if [[ $1 == kill ]]; then kill -KILL "$pid"; else kill -TERM "$pid"; fi
      deadline=$((SECONDS + 15))
      while [[ -n $(daemon_pid) ]] && ((SECONDS < deadline)); do sleep 0.1; done
      [[ -z $(daemon_pid) ]] || die "pgfailover (pid $pid) still runs 15 s after SIG$([[ $1 == kill ]] && echo KILL || echo TERM)"
      say "pgfailover (pid $pid) $([[ $1 == kill ]] && echo killed with SIGKILL || echo stopped)"
      ;;
    *) die "pgfailover takes start, stop or kill" ;;
  esac
}

# A planned switchover through the admin API (pgfailover's own CLI, run inside pgf; the token
# comes from a file, never the command line). Waits for the outcome (at most 90 s).
cmd_switchover() {
  require_lab
  local -a to=()
  if [[ -n ${1:-} ]]; then to=(--to "$(resolve_node "$1")"); fi
  in_ns pgf "$PGFAILOVER_BIN" switchover --url "$URL" --token-file "$ADMIN_TOKEN_FILE" "${to[@]}" --wait 90
}

# The old primary's power cut, out of band: SIGKILL to the postmaster and every process it has,
# all at once (a SIGSTOPped server included: SIGKILL needs no SIGCONT). Nothing of the server is
# left to answer or to hold its shared memory. Succeeds when the server is not running at all.
cmd_poweroff() {
  require_lab
  local node pid child
  node=$(resolve_node "${1:-}")
  pid=$(postmaster_pid "$node")
  if [[ -z $pid ]]; then
    say "$node's PostgreSQL is not running: nothing to power off"
    return 0
  fi
  local -a pids=("$pid")
  while read -r child; do [[ -n $child ]] && pids+=("$child"); done < <(children_of "$pid")
  kill -KILL "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while [[ -n $(postmaster_pid "$node") ]] && ((SECONDS < deadline)); do sleep 0.1; done
  [[ -z $(postmaster_pid "$node") ]] || die "$node's postmaster (pid $pid) survived SIGKILL"
  say "powered $node off: SIGKILL to ${#pids[@]} process(es): ${pids[*]}"
}

# failover.fencing_hook with LAB_FENCING_HOOK=1: pgfailover runs it before every failover
# promotion with PGFAILOVER_OLD_PRIMARY in the environment (STONITH). A non-zero exit cancels
# that promotion attempt.
cmd_fencing_hook() {
  require_lab
  local old=${PGFAILOVER_OLD_PRIMARY:-}
  [[ $old == pg1 || $old == pg2 ]] || die "fencing-hook: PGFAILOVER_OLD_PRIMARY is '$old', expected pg1 or pg2"
  say "fencing hook: powering $old off before ${PGFAILOVER_NEW_PRIMARY:-the replica} is promoted"
  cmd_poweroff "$old"
}

cmd_link() {
  require_lab
  local host state=${2:-}
  host=$(resolve_host "${1:-}")
  [[ $state == up || $state == down ]] || die "link takes HOST down|up"
  ip -n "$BR_NS" link set "v-$host" "$state"
  say "link of $host ($(host_ip "$host")) $state"
}

cmd_partition() {
  require_lab
  local a='' b='' one_way=0 arg
  local -a args=()
  for arg in "$@"; do
    if [[ $arg == --one-way ]]; then one_way=1; else args+=("$arg"); fi
  done
  case ${#args[@]} in
    1) a=$(resolve_host "${args[0]}") ;;
    3)
      [[ ${args[1]} == from ]] || die "partition takes HOST [from HOST] [--one-way]"
      a=$(resolve_host "${args[0]}")
      b=$(resolve_host "${args[2]}")
      [[ $a != "$b" ]] || die "cannot partition $a from itself"
      ;;
    *) die "partition takes HOST [from HOST] [--one-way]" ;;
  esac
  nft_ensure_table
  local ipa ipb rules label
  ipa=$(host_ip "$a")
  if [[ -z $b ]]; then
    label="$a-x-all"
    rules="add rule bridge $NFT_TABLE forward ip saddr $ipa drop comment \"$label\""
    if ((!one_way)); then
      rules+=$'\n'"add rule bridge $NFT_TABLE forward ip daddr $ipa drop comment \"$label\""
    else
      label="$a-to-all"
      rules="add rule bridge $NFT_TABLE forward ip saddr $ipa drop comment \"$label\""
    fi
  else
    ipb=$(host_ip "$b")
    if ((one_way)); then
      label="$a-to-$b"
      rules="add rule bridge $NFT_TABLE forward ip saddr $ipa ip daddr $ipb drop comment \"$label\""
    else
      label="$a-x-$b"
      rules="add rule bridge $NFT_TABLE forward ip saddr $ipa ip daddr $ipb drop comment \"$label\""
      rules+=$'\n'"add rule bridge $NFT_TABLE forward ip saddr $ipb ip daddr $ipa drop comment \"$label\""
    fi
  fi
  printf '%s\n' "$rules" | in_ns br nft -f -
  say "partition $label: IPv4 dropped in the bridge ($BR_NS, table bridge $NFT_TABLE)"
}

cmd_heal() {
  require_lab
  if in_ns br nft list table bridge "$NFT_TABLE" >/dev/null 2>&1; then
    in_ns br nft delete table bridge "$NFT_TABLE"
  fi
  local host
  for host in "${HOSTS[@]}"; do ip -n "$BR_NS" link set "v-$host" up 2>/dev/null || true; done
  say "healed: no partitions, every link up"
}

cmd_logs() {
  require_lab
  local what=${1:-pgfailover} file
  case $what in
    pgfailover | pgf) file=$LOG_FILE ;;
    sshd-pg1 | sshd-pg2) file=$LAB_DIR/ssh/${what#sshd-}/sshd.log ;;
    guard-pg1 | guard-pg2) file=$LAB_DIR/${what#guard-}/lease-guard.log ;;
    *) file=$LAB_DIR/$(resolve_node "$what")/postgresql.log ;;
  esac
  [[ -f $file ]] || die "no log at $file"
  tail -n "${LAB_LOG_LINES:-50}" -- "$file"
}

cmd_exec() {
  require_lab
  local host=${1:-}
  shift || true
  (($# > 0)) || die "exec takes HOST CMD..."
  case $host in
    br) ;;
    *) host=$(resolve_host "$host") ;;
  esac
  in_ns "$host" "$@"
}

# Stops everything by PID, removes namespaces, route and folder. Works after a failed or
# partial `up`, and when there is nothing left (idempotent).
cmd_down() {
  if [[ -e $LAB_DIR && ! -f $MARKER ]]; then
    die "$LAB_DIR is not a namespace lab folder (no $(basename -- "$MARKER")): not touching it"
  fi
  local pid deadline failed=0 node host ns
  pid=$(daemon_pid)
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [[ -n $(daemon_pid) ]] && ((SECONDS < deadline)); do sleep 0.2; done
    if [[ -n $(daemon_pid) ]]; then
      say "pgfailover (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped pgfailover (pid $pid)"
  fi
  for node in "${NODES[@]}"; do
    if [[ -d $LAB_DIR/$node/data && (-n $(postmaster_pid "$node") || -f $LAB_DIR/$node/data/postmaster.pid) ]]; then
      # stop.sh sends SIGCONT first (a SIGSTOPped server cannot shut down) and SIGKILLs by PID
      # what pg_ctl cannot stop.
      NODE_TIMEOUT=20 PG_BIN=$PG_BIN bash "$NODE_SCRIPTS/stop.sh" --dir "$(node_dir "$node")" --mode fast || failed=1
    fi
    stop_guard "$node"
    pid=$(sshd_pid "$node")
    if [[ -n $pid ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while [[ -n $(sshd_pid "$node") ]] && ((SECONDS < deadline)); do sleep 0.1; done
      [[ -z $(sshd_pid "$node") ]] || kill -KILL "$pid" 2>/dev/null || true
      say "stopped sshd of $node (pid $pid)"
    fi
  done
  # Whatever still lives inside the lab's namespaces was started by the lab (ssh sessions,
  # a server started by pgfailover's rejoin, a command run with `exec`): stopped by PID.
  for host in "${HOSTS[@]}" br; do
    ns=$(ns_name "$host")
    ns_exists "$ns" || continue
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
      say "processes left in $ns: $(echo "$pids" | tr '\n' ' ')- SIGTERM, then SIGKILL"
      for pid in $pids; do kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
      deadline=$((SECONDS + 5))
      while [[ -n $(ip netns pids "$ns" 2>/dev/null || true) ]] && ((SECONDS < deadline)); do sleep 0.2; done
      for pid in $(ip netns pids "$ns" 2>/dev/null || true); do kill -KILL "$pid" 2>/dev/null || true; done
      sleep 0.3
    fi
  done
  for node in "${NODES[@]}"; do
    if [[ -n $(postmaster_pid "$node") ]]; then
      say "$node still runs (pid $(postmaster_pid "$node"))"
      failed=1
    fi
  done
  # Deleting a namespace removes its veth ends, the bridge and the nft table with it.
  for host in "${HOSTS[@]}" br; do
    ns=$(ns_name "$host")
    if ns_exists "$ns"; then
      ip netns del "$ns" || failed=1
    fi
  done
  if root_route_present; then
    ip route del unreachable "$LAB_NET" || failed=1
  fi
  ((failed == 0)) || die "could not remove everything; $LAB_DIR kept: run 'scripts/lab-netns.sh down' again"
  if [[ -e $LAB_DIR ]]; then
    rm -rf -- "$LAB_DIR"
    say "removed $LAB_DIR, namespaces ${LAB_PREFIX}{br,pgf,pg1,pg2,client} and the route for $LAB_NET"
  else
    say "no lab folder in $LAB_DIR; namespaces and route for $LAB_NET removed if there were any"
  fi
}

command=${1:-help}
shift || true
case $command in
  up) cmd_up "$@" ;;
  status) cmd_status "$@" ;;
  dsn) cmd_dsn ;;
  url)
    require_lab
    printf '%s\n' "$URL"
    ;;
  psql)
    require_lab
    in_ns client env PGPASSFILE="$PGPASS" psql "$(cmd_dsn)" "$@"
    ;;
  exec) cmd_exec "$@" ;;
  kill) cmd_kill "$@" ;;
  stop) cmd_signal_tree STOP "$@" ;;
  cont) cmd_signal_tree CONT "$@" ;;
  start) cmd_start "$@" ;;
  shutdown) cmd_shutdown "$@" ;;
  pgfailover | pgf) cmd_pgfailover "$@" ;;
  switchover) cmd_switchover "$@" ;;
  poweroff) cmd_poweroff "$@" ;;
  fencing-hook) cmd_fencing_hook ;;
  link) cmd_link "$@" ;;
  partition) cmd_partition "$@" ;;
  heal) cmd_heal ;;
  logs) cmd_logs "$@" ;;
  down) cmd_down ;;
  help | -h | --help) usage ;;
  *)
    usage >&2
    die "unknown command '$command'"
    ;;
esac
