#!/usr/bin/env bash
# Turns an empty folder into a primary set up like the seed's master (streaming replication on,
# hot standby on) plus what pgfailover needs: wal_log_hints for pg_rewind, short WAL
# sender/receiver timeouts, scram-sha-256 everywhere, a superuser for pgfailover and a
# replication role. Starts it with pg_ctl -w. Safe to run again: an existing primary keeps its
# data, gets its configuration rewritten (and reloaded) and its roles' passwords reset.
set -euo pipefail
NODE_SCRIPT="init-primary.sh"
# shellcheck source=scripts/node/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

node_usage() {
  cat <<'EOF'
Usage: scripts/node/init-primary.sh --dir DIR --port PORT \
         --superuser-password-file FILE --repl-password-file FILE [options]

Creates DIR/data with initdb, writes DIR/pgfailover-node.conf and DIR/pg_hba.conf, starts the
server (unless --no-start) and creates the superuser and the replication role with the
passwords read from the files. Run as root, PostgreSQL runs as the OS user "postgres".
EOF
}

node_parse_args "$@"
node_resolve

# Read both passwords before changing anything, so a missing file fails early.
superuser_password=$(node_read_password "${NODE_SUPERUSER_PASSWORD_FILE:-}" "superuser (NODE_SUPERUSER_PASSWORD_FILE)")
repl_password=$(node_read_password "${NODE_REPL_PASSWORD_FILE:-}" "replication (NODE_REPL_PASSWORD_FILE)")
[[ $NODE_SUPERUSER != "$NODE_REPL_USER" ]] ||
  die "the superuser and the replication role must differ (both are '$NODE_SUPERUSER')"

if [[ ! -d $NODE_DIR ]]; then
  node_mkdir "$NODE_DIR" 0750
else
  node_check_reachable "$NODE_DIR"
fi

if node_is_initialized; then
  if node_is_standby; then
    die "$NODE_DATA_DIR holds a standby (standby.signal is there): refusing to make it a primary; promote it (pg_ctl promote) instead"
  fi
  node_say "$NODE_DATA_DIR is already a data directory; rewriting its node configuration"
else
  if [[ -d $NODE_DATA_DIR && -n $(ls -A -- "$NODE_DATA_DIR") ]]; then
    die "$NODE_DATA_DIR is not empty but holds no PostgreSQL data directory (no PG_VERSION): empty it or choose another folder"
  fi
  node_mkdir "$NODE_DATA_DIR" 0700
  initdb_args=(-D "$NODE_DATA_DIR" --username="$NODE_RUN_AS" --auth-local=trust
    --auth-host=scram-sha-256 --encoding=UTF8 --no-locale)
  if [[ ${NODE_NO_SYNC:-} == 1 ]]; then initdb_args+=(--no-sync); fi
  node_say "initdb $NODE_DATA_DIR (OS user $NODE_RUN_AS)"
  if ! initdb_output=$(as_node_user "$PG_BIN/initdb" "${initdb_args[@]}" 2>&1); then
    printf '%s\n' "$initdb_output" >&2
    die "initdb failed for $NODE_DATA_DIR"
  fi
fi

node_setup_tls
node_write_config
node_write_passfile

was_running=0
if node_is_running; then
  was_running=1
  node_pg_ctl reload >/dev/null || die "pg_ctl reload failed for $NODE_DATA_DIR"
  node_say "node $NODE_NAME was running: configuration reloaded (a changed port or listen address needs a restart)"
else
  node_start
fi

# Roles. The statement carries the passwords, so it goes through stdin (never argv) and is kept
# out of the server log.
roles_sql() {
  local su repl
  su=$(sql_literal "$NODE_SUPERUSER")
  repl=$(sql_literal "$NODE_REPL_USER")
  cat <<EOF
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET log_min_duration_statement = -1;
SELECT format('CREATE ROLE %I', $su) WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $su) \gexec
ALTER ROLE $(sql_ident "$NODE_SUPERUSER") WITH SUPERUSER LOGIN PASSWORD $(sql_literal "$superuser_password");
SELECT format('CREATE ROLE %I', $repl) WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $repl) \gexec
ALTER ROLE $(sql_ident "$NODE_REPL_USER") WITH NOSUPERUSER REPLICATION LOGIN PASSWORD $(sql_literal "$repl_password");
-- pg_rewind connects to the new primary as the replication role; these are the functions it
-- reads the source's files with. Without them every rejoin falls back to a full re-clone.
GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO $(sql_ident "$NODE_REPL_USER");
GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO $(sql_ident "$NODE_REPL_USER");
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO $(sql_ident "$NODE_REPL_USER");
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO $(sql_ident "$NODE_REPL_USER");
EOF
}
if ! roles_output=$(roles_sql | node_psql -f - 2>&1); then
  printf '%s\n' "$roles_output" >&2
  die "creating the roles '$NODE_SUPERUSER' and '$NODE_REPL_USER' on node $NODE_NAME failed"
fi

if [[ ${NODE_NO_START:-} == 1 && $was_running == 0 ]]; then
  node_pg_ctl -m fast -w -t "$NODE_TIMEOUT" stop >/dev/null || die "could not stop node $NODE_NAME after setting it up"
  node_say "primary $NODE_NAME set up in $NODE_DATA_DIR and left stopped (--no-start)"
else
  node_say "primary $NODE_NAME ready: port $NODE_PORT, pid $(node_postmaster_pid), data $NODE_DATA_DIR"
fi
