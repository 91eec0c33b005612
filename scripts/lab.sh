#!/usr/bin/env bash
# The loopback lab: two PostgreSQL 15 servers on 127.0.0.1, pg1 (primary) and pg2 (streaming
# replica), set up by scripts/node/ like the seed's two hosts, and pgfailover watching them.
# Everything lives in one folder (LAB_DIR) and is stopped by PID; nothing is killed by name.
# What it shares with the namespace lab is scripts/lib/lab-common.sh; here every host of the lab
# is this machine. See docs/lab.md.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
LAB_TAG=lab
LAB_SCRIPT=scripts/lab.sh
LAB_KIND=lab
LAB_TRANSPORT=local
# shellcheck source=scripts/lib/lab-common.sh
source "$REPO_ROOT/scripts/lib/lab-common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/lab.sh [--netns | --compose] COMMAND

  --netns        the same lab with one network namespace per host, each with its own
                 address, PostgreSQL and sshd (scripts/lab-netns.sh, docs/lab-netns.md)
  --compose      the compose lab: pg1, pg2, pgfailover, HAProxy, Prometheus in containers,
                 also without a registry (scripts/lab-compose.sh: up, status, kill NODE,
                 start NODE, stop NODE, logs, psql, down...; docs/lab-compose.md)

  up [--instances N]
                 install packages, build pgfailover, start pg1 (primary), pg2 (replica) and
                 pgfailover; returns once replication streams and /readyz answers 200. With
                 N = 2 or 3: N instances pgf1..pgfN (APIs on 8008, 8009, 8010) coordinated
                 through a 3-member etcd cluster the lab starts (docs/coordination.md)
  status [--json]  pgfailover's view (pgfailover status; --json: raw GET /status), asked from
                 the acting instance; then the instances and etcd members
  history        failovers, fences, rejoins, switchovers (pgfailover history)
  switchover [NODE]  a planned switchover (to NODE, default the replica), with the lab's token
  dsn            a libpq connection string that always reaches the writable node
  url            pgfailover's base URL
  psql [ARGS]    psql on that DSN
  kill NODE      kill -9 the node's postmaster (a crash)
  kill pgfailover  kill -9 the acting pgfailover instance (the holder of the etcd leader key;
                 with one instance, the only one)
  kill etcd      kill -9 every etcd member (their data stays)
  start NODE [--guard]  start the node's PostgreSQL again, as its data directory is; with
                 --guard, ask pgfailover first and start as a standby when it is not the primary
  start pgfailover  start every instance that does not run
  start etcd     start the etcd members again (same data: the cluster keeps its state)
  stop NODE      stop the node's PostgreSQL cleanly (pg_ctl stop -m fast)
  rejoin NODE    re-clone a node that is not the primary from the primary (pg_basebackup)
  logs [NAME]    last lines of the acting pgfailover's log, or of NAME's (pg1, pg2, primary,
                 replica, guard-pg1, guard-pg2, pgf1..pgf3, etcd1..etcd3)
  down           stop pgfailover, etcd and both servers, remove the lab folder

NODE is pg1, pg2, primary or replica (whichever node has that role now).
Environment: LAB_DIR (.lab, or /tmp/pgfailover-lab when "postgres" cannot enter the repo),
LAB_PG1_PORT (6432), LAB_PG2_PORT (6433) or LAB_PG_PORTS=P1,P2, LAB_HTTP_PORT (8008; instance
I on LAB_HTTP_PORT + I - 1), LAB_INSTANCES (1: what up --instances sets), LAB_ETCD_PORT (12379:
the members' client ports 12379-12381, peer ports 12389-12391),
LAB_TIMEOUT (90 s), LAB_BUILD_DIR (build), LAB_BUILD_TYPE (RelWithDebInfo), LAB_SKIP_DEPS=1,
LAB_SKIP_BUILD=1, PGFAILOVER_BIN (a binary to use: nothing is built), LAB_LEASE_GUARD=0 (no lease guard
next to the nodes: pgfailover lease-guard). See docs/lab.md.
EOF
}

# The other labs, before this lab's settings (LAB_DIR may name one of theirs).
case ${1:-} in
  # The same lab with one network namespace per host (docs/lab-netns.md).
  --netns) exec bash "$REPO_ROOT/scripts/lab-netns.sh" "${@:2}" ;;
  # The compose lab: containers, HAProxy and Prometheus (docs/lab-compose.md).
  --compose) exec bash "$REPO_ROOT/scripts/lab-compose.sh" "${@:2}" ;;
esac

# ----- settings -------------------------------------------------------------------------------

default_lab_dir() {
  local dir=$REPO_ROOT/.lab
  # Run as root, PostgreSQL runs as "postgres", which must be able to reach the lab folder.
  if ((EUID == 0)) && ! runuser -u postgres -- test -x "$REPO_ROOT" 2>/dev/null; then
    dir=/tmp/pgfailover-lab
  fi
  printf '%s\n' "$dir"
}

# A lab that exists keeps the ports and binary it was made with.
if ! lab_settings "$(default_lab_dir)" .pgfailover-lab; then
  if [[ -n ${LAB_PG_PORTS:-} ]]; then
    IFS=', ' read -r LAB_PG1_PORT LAB_PG2_PORT _ <<<"$LAB_PG_PORTS"
  fi
  LAB_PG1_PORT=${LAB_PG1_PORT:-6432}
  LAB_PG2_PORT=${LAB_PG2_PORT:-6433}
  LAB_HTTP_PORT=${LAB_HTTP_PORT:-8008}
  lab_binary_settings
fi
LAB_ETCD_PORT=${LAB_ETCD_PORT:-12379} # also for a lab.env written before several instances
lab_check_instances 3
for port_var in LAB_PG1_PORT LAB_PG2_PORT LAB_HTTP_PORT LAB_ETCD_PORT; do
  port=${!port_var}
  if [[ ! $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "$port_var must be a TCP port, got '$port'"
  fi
done
[[ $LAB_PG1_PORT != "$LAB_PG2_PORT" ]] || die "pg1 and pg2 need different ports (both $LAB_PG1_PORT)"
lab_check_lease_guard
((LAB_HTTP_PORT + 2 <= 65535 && LAB_ETCD_PORT + 12 <= 65535)) || die "LAB_HTTP_PORT and LAB_ETCD_PORT leave no room for the instances' and etcd's ports"
LAB_ENV_VARS=(LAB_PG1_PORT LAB_PG2_PORT LAB_HTTP_PORT LAB_BUILD_DIR PGFAILOVER_BIN LAB_INSTANCES LAB_ETCD_PORT)

URL=http://127.0.0.1:$LAB_HTTP_PORT
CONFIG=$LAB_DIR/pgfailover.json
PID_FILE=$LAB_DIR/pgfailover.pid
LOG_FILE=$LAB_DIR/pgfailover.log
PASSWORD_FILE=$LAB_DIR/pgfailover.password
REPL_PASSWORD_FILE=$LAB_DIR/replication.password
ADMIN_TOKEN_FILE=$LAB_DIR/admin.token
REPL_USER=${NODE_REPL_USER:-replicator}
REPL_PASSFILE='' # each node's own (NODE_DIR/replication.pgpass)
PG_BIN_DIR=$(bash "$REPO_ROOT/scripts/pg-bin.sh" 2>/dev/null || echo /usr/lib/postgresql/15/bin)
PGPASS=$LAB_DIR/pgpass
LAB_CA_DIR=$LAB_DIR/ca
SUPERUSER=pgfailover
LAB_NODE_ENV=()
LAB_SWITCHOVER_ARGS=()

node_host() { printf '127.0.0.1\n'; }
node_port() {
  case $1 in
    pg1) printf '%s\n' "$LAB_PG1_PORT" ;;
    pg2) printf '%s\n' "$LAB_PG2_PORT" ;;
  esac
}

# TLS: the node scripts make the lab's CA in $LAB_DIR/ca (ca.key stays there, 0600) and issue
# each node a certificate for 127.0.0.1; pgfailover and the replicas verify it (verify-full).
node_setup_args() {
  NODE_ARGS=(--listen 127.0.0.1 --allow-cidr 127.0.0.1/32 --repl-password-file "$REPL_PASSWORD_FILE"
    --ca-dir "$LAB_CA_DIR" --port "$(node_port "$1")")
}

# Several instances (up --instances N): all on this machine, instance I's API on LAB_HTTP_PORT +
# I - 1; the three etcd members' client ports from LAB_ETCD_PORT, their peer ports 10 above.
inst_addr() { printf '127.0.0.1\n'; }
inst_port() { printf '%s\n' "$((LAB_HTTP_PORT + $1 - 1))"; }
etcd_host() { printf 'pgf\n'; }
etcd_addr() { printf '127.0.0.1\n'; }
etcd_client_port() { printf '%s\n' "$((LAB_ETCD_PORT + $1 - 1))"; }
etcd_peer_port() { printf '%s\n' "$((LAB_ETCD_PORT + 10 + $1 - 1))"; }
ETCD_PREFIX=/pgfailover/lab

port_in_use() {
  if command -v ss >/dev/null; then
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# ----- up -------------------------------------------------------------------------------------

lab_hook_before_nodes() {
  make_secrets
  local node port
  for node in "${NODES[@]}"; do
    port=$(node_port "$node")
    if [[ -z $(postmaster_pid "$node") ]] && port_in_use "$port"; then
      die "port $port for $node is taken by another program: free it or choose other ports (LAB_PG1_PORT, LAB_PG2_PORT; after 'down')"
    fi
  done
  local i m
  for i in $(instances); do
    port=$(inst_port "$i")
    if [[ -z $(daemon_pid "$i") ]] && port_in_use "$port"; then
      die "port $port for pgfailover's HTTP API is taken: free it or set LAB_HTTP_PORT (after 'down')"
    fi
  done
  multi_instance || return 0
  for m in "${ETCD_MEMBERS[@]}"; do
    for port in "$(etcd_client_port "$m")" "$(etcd_peer_port "$m")"; do
      if [[ -z $(etcd_pid "$m") ]] && port_in_use "$port"; then
        die "port $port for etcd member etcd$m is taken: free it or set LAB_ETCD_PORT (after 'down')"
      fi
    done
  done
}

# Both nodes live on this host, so pgfailover fences and rejoins them with the local executor
# (as "postgres" when run as root), the same commands it would run over ssh.
write_config() {
  local run_as=''
  ((EUID == 0)) && run_as=postgres
  jq -n \
    --arg pw "$PASSWORD_FILE" --arg user "$SUPERUSER" --arg run_as "$run_as" \
    --argjson p1 "$LAB_PG1_PORT" --argjson p2 "$LAB_PG2_PORT" --argjson http "$LAB_HTTP_PORT" \
    --arg dir "$LAB_DIR" --arg bin "$PG_BIN_DIR" --arg repl "$REPL_USER" --arg ca "$LAB_CA_DIR/ca.crt" \
    --arg token "$ADMIN_TOKEN_FILE" --arg state "$LAB_DIR/pgfailover.state.json" '
    def node($name; $port): {
      name: $name, host: "127.0.0.1", port: $port, dbname: "postgres", user: $user,
      password_file: $pw, sslmode: "verify-full", sslrootcert: $ca,
      data_dir: ($dir + "/" + $name + "/data"), bin_dir: $bin,
      start_command: ("{bin_dir}/pg_ctl start -D {data_dir} -w -t 60 -l " + $dir + "/" + $name +
                      "/postgresql.log"),
      local: (if $run_as == "" then {} else {run_as: $run_as} end)
    };
    {
      cluster_name: "lab",
      nodes: [node("pg1"; $p1), node("pg2"; $p2)],
      probe: {interval_ms: 1000},
      failover: {confirmed_down_timeout_ms: 3000, unresponsive_timeout_ms: 10000,
                 rejoin_retry_interval_ms: 10000},
      replication: {user: $repl, passfile: ($dir + "/pg1/replication.pgpass"),
                    sslmode: "verify-full", sslrootcert: $ca},
      http: {listen_address: "127.0.0.1", port: $http},
      admin: {token_file: $token},
      state_file: $state
    }' | write_file "$CONFIG" 0600
}

lab_hook_ready() {
  if multi_instance; then
    local i list=''
    for i in $(instances); do list+="${list:+, }$(inst_name "$i") $(inst_url "$i") (pid $(daemon_pid "$i"))"; done
    say "ready: pgfailover $list; etcd $(etcd_endpoints); pg1 on $LAB_PG1_PORT, pg2 on $LAB_PG2_PORT"
    local leader
    leader=$(etcd_leader)
    say "acting: ${leader:-nobody holds $ETCD_PREFIX/leader yet}"
    say "try: scripts/lab.sh status; scripts/lab.sh kill pgfailover (the acting one); scripts/lab.sh kill etcd"
    return
  fi
  say "ready: pgfailover $URL (pid $(daemon_pid)), pg1 on $LAB_PG1_PORT, pg2 on $LAB_PG2_PORT"
  say "try: scripts/lab.sh status; psql \"\$(scripts/lab.sh dsn)\"; scripts/lab.sh kill primary"
}

# ----- commands of this lab -------------------------------------------------------------------

# A full re-clone from the current primary, as the seed did by hand: for a node that came back
# writable after a failover. pgfailover's own rejoin (pg_rewind) makes this unnecessary.
cmd_rejoin() {
  require_lab
  local node primary
  node=$(resolve_node "${1:-}")
  primary=$(resolve_node primary)
  [[ $node != "$primary" ]] || die "$node is the primary now: nothing to rejoin"
  say "re-cloning $node from the primary $primary (its data directory is replaced)"
  node_script stop.sh "$node" --mode fast
  node_setup_args "$node"
  node_script clone-replica.sh "$node" --force "${NODE_ARGS[@]}" \
    --primary-host "$(node_host "$primary")" --primary-port "$(node_port "$primary")"
}

command=${1:-help}
shift || true
case $command in
  stop) cmd_shutdown "$@" ;;
  rejoin) cmd_rejoin "$@" ;;
  *) lab_command "$command" "$@" ;;
esac
