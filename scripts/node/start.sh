#!/usr/bin/env bash
# Starts a node's PostgreSQL as its data directory is (primary or standby, whatever it holds),
# with pg_ctl -w under NODE_TIMEOUT. Does nothing when it already runs. Waits first for
# backends of a killed postmaster to go away, which would otherwise keep it from starting.
set -euo pipefail
NODE_SCRIPT="start.sh"
# shellcheck source=scripts/node/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

node_usage() {
  cat <<'EOF2'
Usage: scripts/node/start.sh --dir DIR [--timeout SECONDS] [options]
EOF2
}

node_parse_args "$@"
node_resolve
node_refuse_during_rejoin
node_is_initialized || die "$NODE_DATA_DIR is not a PostgreSQL data directory (no PG_VERSION): set it up with init-primary.sh or clone-replica.sh"
[[ -f $NODE_CONF ]] || die "$NODE_CONF is missing: run init-primary.sh or clone-replica.sh for this node first"
if grep -qx 'ssl = on' "$NODE_CONF" && [[ ! -f $NODE_TLS_DIR/server.crt || ! -f $NODE_TLS_DIR/server.key ]]; then
  die "$NODE_CONF turns TLS on but $NODE_TLS_DIR holds no server.crt and server.key: run init-primary.sh or clone-replica.sh for this node again (they issue them)"
fi
node_start
role=primary
if node_is_standby; then role=standby; fi
node_say "node $NODE_NAME running as $role: pid $(node_postmaster_pid)"
