#!/usr/bin/env bash
# Turns an empty folder into a streaming replica of a running primary, as the seed does with
# `pg_basebackup -P -R -X stream -c fast`, but authenticated by a passfile (no password on any
# command line) and with this node's own settings written next to the copied data directory.
# Starts it and waits until its WAL receiver streams. Safe to run again on an existing standby
# (it is reconfigured and started); a data directory that is not a standby is refused unless
# --force wipes it.
set -euo pipefail
NODE_SCRIPT="clone-replica.sh"
# shellcheck source=scripts/node/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

node_usage() {
  cat <<'EOF'
Usage: scripts/node/clone-replica.sh --dir DIR --port PORT --primary-host HOST \
         --primary-port PORT --repl-password-file FILE [options]

Copies the primary into DIR/data with pg_basebackup -R -X stream -c fast (primary_conninfo
names the passfile DIR/replication.pgpass and application_name = the node's name), writes
DIR/pgfailover-node.conf and DIR/pg_hba.conf, starts the server and waits (NODE_TIMEOUT) until
it streams. NODE_CLONE_TIMEOUT (default 1800 s) bounds pg_basebackup itself.
EOF
}

node_parse_args "$@"
node_resolve
[[ -n ${NODE_PRIMARY_HOST:-} ]] || die "no primary given: set NODE_PRIMARY_HOST (or --primary-host) and NODE_PRIMARY_PORT"
NODE_CLONE_TIMEOUT=${NODE_CLONE_TIMEOUT:-1800}
[[ $NODE_CLONE_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "NODE_CLONE_TIMEOUT must be a whole number of seconds"
# Fails early when the password file is missing.
node_read_password "${NODE_REPL_PASSWORD_FILE:-}" "replication (NODE_REPL_PASSWORD_FILE)" >/dev/null

if [[ ! -d $NODE_DIR ]]; then
  node_mkdir "$NODE_DIR" 0750
else
  node_check_reachable "$NODE_DIR"
fi

wipe_data_dir() {
  if node_is_running; then
    node_say "stopping the server in $NODE_DATA_DIR before wiping it (--force)"
    node_pg_ctl -m immediate -w -t "$NODE_TIMEOUT" stop >/dev/null || die "could not stop the server in $NODE_DATA_DIR"
  fi
  node_say "wiping $NODE_DATA_DIR (--force)"
  find "$NODE_DATA_DIR" -mindepth 1 -delete
}

clone=1
if node_is_initialized; then
  if node_is_standby; then
    node_say "$NODE_DATA_DIR is already a standby; rewriting its node configuration"
    clone=0
  elif [[ ${NODE_FORCE:-} == 1 ]]; then
    wipe_data_dir
  else
    die "$NODE_DATA_DIR holds a data directory that is not a standby (a former primary?): rejoin it with pg_rewind, or pass --force (NODE_FORCE=1) to wipe it and clone again"
  fi
elif [[ -d $NODE_DATA_DIR && -n $(ls -A -- "$NODE_DATA_DIR") ]]; then
  if [[ ${NODE_FORCE:-} == 1 ]]; then
    wipe_data_dir
  else
    die "$NODE_DATA_DIR is not empty but holds no data directory: empty it, or pass --force (NODE_FORCE=1)"
  fi
fi

node_write_passfile
node_setup_tls

conninfo_quote() {
  local s=${1//\\/\\\\}
  printf "'%s'" "${s//\'/\\\'}"
}

if ((clone)); then
  node_mkdir "$NODE_DATA_DIR" 0700
  conninfo="host=$(conninfo_quote "$NODE_PRIMARY_HOST") port=$NODE_PRIMARY_PORT"
  conninfo+=" user=$(conninfo_quote "$NODE_REPL_USER") passfile=$(conninfo_quote "$NODE_PASSFILE")"
  conninfo+=" application_name=$NODE_NAME connect_timeout=5"
  # The replication password goes only to a primary whose certificate the nodes' CA signed for
  # NODE_PRIMARY_HOST. pg_basebackup -R writes this conninfo into primary_conninfo.
  if [[ $NODE_TLS == on ]]; then
    conninfo+=" sslmode=verify-full sslrootcert=$(conninfo_quote "$NODE_TLS_DIR/ca.crt")"
  fi
  basebackup_args=(-D "$NODE_DATA_DIR" -R -X stream -c fast -d "$conninfo")
  if [[ ${NODE_NO_SYNC:-} == 1 ]]; then basebackup_args+=(--no-sync); fi
  node_say "pg_basebackup from $NODE_PRIMARY_HOST:$NODE_PRIMARY_PORT as $NODE_REPL_USER into $NODE_DATA_DIR"
  if ! basebackup_output=$(as_node_user timeout --kill-after=10 "$NODE_CLONE_TIMEOUT" \
    "$PG_BIN/pg_basebackup" "${basebackup_args[@]}" 2>&1); then
    printf '%s\n' "$basebackup_output" >&2
    # Leave an empty folder behind, so that the next run can clone again.
    find "$NODE_DATA_DIR" -mindepth 1 -delete 2>/dev/null || true
    die "pg_basebackup from the primary at $NODE_PRIMARY_HOST:$NODE_PRIMARY_PORT (role $NODE_REPL_USER) failed"
  fi
  [[ -f $NODE_DATA_DIR/standby.signal ]] || die "pg_basebackup -R left no standby.signal in $NODE_DATA_DIR"
fi

node_write_config

if [[ ${NODE_NO_START:-} == 1 ]]; then
  node_say "replica $NODE_NAME set up in $NODE_DATA_DIR and left stopped (--no-start)"
  exit 0
fi
if node_is_running; then
  node_pg_ctl reload >/dev/null || die "pg_ctl reload failed for $NODE_DATA_DIR"
else
  node_start
fi

node_say "waiting up to ${NODE_TIMEOUT}s for node $NODE_NAME to stream from $NODE_PRIMARY_HOST:$NODE_PRIMARY_PORT"
deadline=$((SECONDS + NODE_TIMEOUT))
status=
while ((SECONDS < deadline)); do
  status=$(node_psql -At -c "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null || true)
  [[ $status == streaming ]] && break
  sleep 0.2
done
if [[ $status != streaming ]]; then
  node_tail_log
  die "replica $NODE_NAME does not stream after ${NODE_TIMEOUT}s (WAL receiver status: '${status:-none}')"
fi
node_say "replica $NODE_NAME streaming: port $NODE_PORT, pid $(node_postmaster_pid), data $NODE_DATA_DIR"
