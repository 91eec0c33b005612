#!/usr/bin/env bash
# The network-namespace lab: the seed's two hosts, for real. One network namespace per host —
# pg1 and pg2 (PostgreSQL 15 + sshd on their own address), pgf (pgfailover) and client — all
# joined by a Linux bridge that lives in a namespace of its own (br). The namespaces have no
# default route and no way out; the root namespace gets an `unreachable` route for the lab's
# range, so no lab packet can leave the machine by mistake. Faults: kill -9 / SIGSTOP / SIGCONT a
# postmaster, a host's link down, partitions the hosts cannot see (nftables in the bridge).
# Everything the lab starts is stopped by PID (pid files); nothing is killed by name.
# What it shares with the loopback lab is scripts/lib/lab-common.sh; here a command runs on a host
# through `ip netns exec`. See docs/lab-netns.md.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
LAB_TAG=lab-netns
LAB_SCRIPT=scripts/lab-netns.sh
LAB_KIND="namespace lab"
LAB_TRANSPORT=netns
# shellcheck source=scripts/lib/lab-common.sh
source "$REPO_ROOT/scripts/lib/lab-common.sh"
HOSTS=(pgf pg1 pg2 client)

usage() {
  cat <<'EOF'
Usage: scripts/lab-netns.sh COMMAND

  up [--instances 2]   namespaces, bridge, pg1 (primary) + pg2 (replica) with sshd, pgfailover
                       in pgf; returns once a replica streams and /readyz answers 200. With
                       --instances 2: pgfailover pgf1 in pg1 and pgf2 in pg2 (nothing in pgf),
                       one acting, coordinated through etcd members on pg1, pg2 and pgf
  status [--json]      pgfailover's view (asked from inside pgf), links and partitions
  history              failovers, fences, rejoins, switchovers (pgfailover history, inside pgf)
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
                       start pgfailover again, stop it (SIGTERM), or kill -9 it (a crash); with
                       two instances, stop and kill hit the acting one (the etcd leader key's)
  kill etcd | start etcd
                       kill -9 every etcd member (two instances) / start them again on their data
  switchover [NODE]    planned switchover to NODE (default: the replica), through the admin API
  poweroff NODE        SIGKILL of the postmaster and all its processes at once: the host's power
                       cut through an out-of-band channel (works while its link is down)
  link HOST down|up    the host's cable: its veth in the bridge namespace
  partition HOST [from HOST] [--one-way]
                       drop IPv4 between HOST and everyone (or only the other HOST), both
                       directions, or with --one-way only what HOST sends; invisible to the hosts
  heal                 remove every partition (and bring every link up)
  logs [NAME]          last lines of the acting pgfailover's log, or of pg1/pg2/primary/replica,
                       sshd-pg1, guard-pg1, pgf1, pgf2, etcd1..etcd3
  down                 stop everything by PID, remove namespaces, route, lab folder

NODE is pg1, pg2, primary or replica (the current holder of that role, from pgfailover's
/status). HOST is a NODE, pgfailover (pgf) or client.
Environment: LAB_NET (10.231.77.0/24, a private /24), LAB_PREFIX (pgflab-), LAB_DIR
(/tmp/pgfailover-netns-lab), LAB_TIMEOUT (90 s), LAB_BUILD_DIR (build), LAB_SKIP_DEPS=1,
LAB_SKIP_BUILD=1, PGFAILOVER_BIN, LAB_ICMP=0 (no probe.icmp), LAB_SYNC (off, on, strict:
pgfailover's synchronous.mode), LAB_FENCING_HOOK=1 (failover.fencing_hook powers the old
primary off before every failover promotion, as IPMI or a cloud API would), LAB_INSTANCES (1: what
up --instances sets), LAB_LEASE_GUARD=0 (no
lease guard on the nodes: pgfailover lease-guard), LAB_WAL_RECEIVER_TIMEOUT (3: the nodes'
wal_receiver_timeout in seconds). See docs/lab-netns.md.
EOF
}

((EUID == 0)) || [[ ${1:-help} =~ ^(help|-h|--help)$ ]] ||
  die "the namespace lab needs root (network namespaces, bridge, nftables, sshd): run it with sudo"

# ----- settings -------------------------------------------------------------------------------

# A lab that exists keeps the network and binary it was made with.
if ! lab_settings /tmp/pgfailover-netns-lab .pgfailover-netns-lab; then
  LAB_NET=${LAB_NET:-10.231.77.0/24}
  LAB_PREFIX=${LAB_PREFIX:-pgflab-}
  LAB_SYNC=${LAB_SYNC:-off}
  LAB_FENCING_HOOK=${LAB_FENCING_HOOK:-0}
  LAB_LEASE_GUARD=${LAB_LEASE_GUARD:-1}
  LAB_WAL_RECEIVER_TIMEOUT=${LAB_WAL_RECEIVER_TIMEOUT:-3}
  lab_binary_settings
fi
lab_check_instances 2

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
lab_check_lease_guard
LAB_WAL_RECEIVER_TIMEOUT=${LAB_WAL_RECEIVER_TIMEOUT:-3} # a lab.env written before it existed
[[ $LAB_WAL_RECEIVER_TIMEOUT =~ ^[1-9][0-9]?$ ]] ||
  die "LAB_WAL_RECEIVER_TIMEOUT must be a whole number of seconds from 1 to 99, got '$LAB_WAL_RECEIVER_TIMEOUT'"
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
LAB_ENV_VARS=(LAB_NET LAB_PREFIX LAB_BUILD_DIR PGFAILOVER_BIN LAB_SKIP_BUILD LAB_SYNC LAB_FENCING_HOOK LAB_LEASE_GUARD LAB_WAL_RECEIVER_TIMEOUT LAB_INSTANCES)
# The replica's WAL receiver vouches for the primary (its replies renew the primary's lease)
# until wal_receiver_timeout after the primary fell silent: a lost host cannot be failed over
# before that + the lease + 0.5 s (docs/probing.md, "A lost host").
LAB_NODE_ENV=(PG_BIN="$PG_BIN" NODE_SETTINGS="wal_receiver_timeout = ${LAB_WAL_RECEIVER_TIMEOUT}s")
LAB_SWITCHOVER_ARGS=(--wait 90)

host_ip() {
  case $1 in
    pgf) printf '%s.10\n' "$NET_BASE" ;;
    pg1) printf '%s.11\n' "$NET_BASE" ;;
    pg2) printf '%s.12\n' "$NET_BASE" ;;
    client) printf '%s.20\n' "$NET_BASE" ;;
    *) die "no address for host '$1'" ;;
  esac
}
node_host() { host_ip "$1"; }
node_port() { printf '%s\n' "$PG_PORT"; }
BR_NS=$(ns_name br)
URL=http://$(host_ip pgf):$HTTP_PORT

# Two instances (up --instances 2), as on three hosts each running etcd and a failover manager:
# pgf1 next to pg1 and pgf2 next to pg2, in their namespaces; the etcd members on pg1, pg2 and
# the third host, pgf (which then runs no pgfailover).
inst_host() {
  if multi_instance; then printf 'pg%s\n' "$1"; else printf 'pgf\n'; fi
}
inst_addr() { host_ip "$(inst_host "$1")"; }
inst_port() { printf '%s\n' "$HTTP_PORT"; }
etcd_host() {
  case $1 in
    1) printf 'pg1\n' ;;
    2) printf 'pg2\n' ;;
    3) printf 'pgf\n' ;;
  esac
}
etcd_addr() { host_ip "$(etcd_host "$1")"; }
etcd_client_port() { printf '2379\n'; }
etcd_peer_port() { printf '2380\n'; }
ETCD_PREFIX=/pgfailover/netns-lab

# TLS: the lab's CA in $LAB_DIR/ca (its key stays there, 0600); each node's certificate names
# its namespace address, which pgfailover and the replicas verify (verify-full).
node_setup_args() {
  NODE_ARGS=(--port "$PG_PORT" --allow-cidr "$LAB_NET" --repl-user "$REPL_USER"
    --repl-password-file "$REPL_PASSWORD_FILE" --passfile "$REPL_PASSFILE" --ca-dir "$LAB_CA_DIR"
    --listen "$(host_ip "$1")")
}

# ----- helpers --------------------------------------------------------------------------------

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
  on_host br nft list table bridge "$NFT_TABLE" >/dev/null 2>&1 && return 0
  on_host br nft -f - <<EOF
table bridge $NFT_TABLE {
  chain forward {
    type filter hook forward priority 0; policy accept;
  }
}
EOF
}

# ----- setup steps ----------------------------------------------------------------------------

lab_hook_packages() {
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

# sshd for one node, in its namespace, on its address only, with a host key of the lab and
# pgfailover's key (usable from the pgfailover instances' addresses only) as the one authorized
# key.
start_sshd() {
  local node=$1 dir=$LAB_DIR/ssh/$1 pid
  install -d -m 0755 "$dir"
  [[ -f $dir/ssh_host_ed25519_key ]] ||
    ssh-keygen -q -t ed25519 -N '' -C "$node@netns-lab" -f "$dir/ssh_host_ed25519_key" >/dev/null
  local from='' i
  for i in $(instances); do from+=${from:+,}$(inst_addr "$i"); done
  printf 'from="%s",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty %s\n' \
    "$from" "$(<"$SSH_KEY.pub")" | write_file "$dir/authorized_keys" 0644
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
  on_host "$node" /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
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
      scanned=$(on_host pgf ssh-keyscan -T 3 -t ed25519 -p "$SSH_PORT" "$(host_ip "$node")" 2>/dev/null || true)
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
  write_known_hosts
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

# ----- up -------------------------------------------------------------------------------------

lab_hook_preflight() {
  local tool
  for tool in ip nft sshd ssh-keygen ssh-keyscan curl jq psql; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || die "$tool not found (scripts/install-deps.sh, nftables, openssh-server)"
  done
}

lab_hook_before_nodes() {
  install -d -m 0755 "$PGF_DIR" "$LAB_DIR/ssh"
  install -d -m 0700 "$SECRETS" "$PGF_DIR/ssh"
  net_up
  make_secrets
  if [[ ! -f $SSH_KEY ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "pgfailover@netns-lab" -f "$SSH_KEY" >/dev/null
  fi
  local node
  for node in "${NODES[@]}"; do
    start_sshd "$node"
  done
}

lab_hook_ready() {
  if multi_instance; then
    local leader
    leader=$(etcd_leader)
    say "ready: pgfailover pgf1 $(inst_url 1) in $(ns_name pg1) (pid $(daemon_pid 1)), pgf2 $(inst_url 2) in $(ns_name pg2) (pid $(daemon_pid 2)); etcd on pg1, pg2 and pgf; acting: ${leader:-nobody holds $ETCD_PREFIX/leader yet}"
    say "try: scripts/lab-netns.sh status; scripts/lab-netns.sh pgfailover kill (the acting one); scripts/lab-netns.sh kill primary"
    return
  fi
  say "ready: pgfailover $URL in $(ns_name pgf) (pid $(daemon_pid)); pg1 $(host_ip pg1):$PG_PORT, pg2 $(host_ip pg2):$PG_PORT"
  say "try: scripts/lab-netns.sh status; scripts/lab-netns.sh kill primary; scripts/lab-netns.sh partition pgfailover from primary"
}

# ----- commands of this lab -------------------------------------------------------------------

# After pgfailover's view: the links and the partitions.
lab_hook_status() {
  local host state
  printf '\nLinks:'
  for host in "${HOSTS[@]}"; do
    state=$(ip -n "$BR_NS" -o link show "v-$host" 2>/dev/null | grep -q 'state UP' && echo up || echo DOWN)
    printf ' %s=%s' "$host" "$state"
  done
  printf '\nPartitions:'
  local rules
  rules=$(on_host br nft list table bridge "$NFT_TABLE" 2>/dev/null | sed -n 's/.*comment "\(.*\)".*/\1/p' | sort -u || true)
  if [[ -n $rules ]]; then
    printf '\n'
    # shellcheck disable=SC2001
    sed 's/^/  /' <<<"$rules"
  else
    printf ' none\n'
  fi
}

lab_hook_log_file() {
  case $1 in
    sshd-pg1 | sshd-pg2) printf '%s\n' "$LAB_DIR/ssh/${1#sshd-}/sshd.log" ;;
    *) return 1 ;;
  esac
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

# pgfailover's own lifecycle, for faults of the sidecar itself: `kill` is a crash (SIGKILL, no
# chance to write anything more), `stop` a clean SIGTERM, both of the acting instance (with two,
# the holder of the etcd leader key); `start` runs every instance that does not run again, with
# the same configuration and state file.
cmd_pgfailover() {
  require_lab
  case ${1:-} in
    start) start_instances ;;
    stop) stop_acting_instance TERM ;;
    kill) stop_acting_instance KILL ;;
    *) die "pgfailover takes start, stop or kill" ;;
  esac
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
  printf '%s\n' "$rules" | on_host br nft -f -
  say "partition $label: IPv4 dropped in the bridge ($BR_NS, table bridge $NFT_TABLE)"
}

cmd_heal() {
  require_lab
  if on_host br nft list table bridge "$NFT_TABLE" >/dev/null 2>&1; then
    on_host br nft delete table bridge "$NFT_TABLE"
  fi
  local host
  for host in "${HOSTS[@]}"; do ip -n "$BR_NS" link set "v-$host" up 2>/dev/null || true; done
  say "healed: no partitions, every link up"
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
  on_host "$host" "$@"
}

# ----- down: what else the namespace lab has ---------------------------------------------------

lab_hook_stop_host() { # node: its sshd
  local pid deadline
  pid=$(sshd_pid "$1")
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 5))
  while [[ -n $(sshd_pid "$1") ]] && ((SECONDS < deadline)); do sleep 0.1; done
  [[ -z $(sshd_pid "$1") ]] || kill -KILL "$pid" 2>/dev/null || true
  say "stopped sshd of $1 (pid $pid)"
}

# Whatever still lives inside the lab's namespaces was started by the lab (ssh sessions, a server
# started by pgfailover's rejoin, a command run with `exec`): stopped by PID. Then the namespaces
# (deleting one removes its veth ends, the bridge and the nft table with it) and the route.
lab_hook_down() {
  local host ns pids pid deadline failed=0
  for host in "${HOSTS[@]}" br; do
    ns=$(ns_name "$host")
    ns_exists "$ns" || continue
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
  for host in "${HOSTS[@]}" br; do
    ns=$(ns_name "$host")
    if ns_exists "$ns"; then
      ip netns del "$ns" || failed=1
    fi
  done
  if root_route_present; then
    ip route del unreachable "$LAB_NET" || failed=1
  fi
  return "$failed"
}

lab_hook_no_folder() { return 0; } # namespaces and route may be left: go on
lab_hook_removed() { # 1 when there was a lab folder
  if (($1)); then
    say "removed $LAB_DIR, namespaces ${LAB_PREFIX}{br,pgf,pg1,pg2,client} and the route for $LAB_NET"
  else
    say "no lab folder in $LAB_DIR; namespaces and route for $LAB_NET removed if there were any"
  fi
}

command=${1:-help}
shift || true
case $command in
  exec) cmd_exec "$@" ;;
  stop) cmd_signal_tree STOP "$@" ;;
  cont) cmd_signal_tree CONT "$@" ;;
  shutdown) cmd_shutdown "$@" ;;
  pgfailover | pgf) cmd_pgfailover "$@" ;;
  poweroff) cmd_poweroff "$@" ;;
  fencing-hook) cmd_fencing_hook ;;
  link) cmd_link "$@" ;;
  partition) cmd_partition "$@" ;;
  heal) cmd_heal ;;
  *) lab_command "$command" "$@" ;;
esac
