#!/usr/bin/env bash
# The node's lease guard: runs on every PostgreSQL host, next to the server, for as long as the
# host runs. While its node is a primary, it checks twice a second whether anyone still vouches
# for it: pgfailover, whose heartbeat row carries a lease (probe.primary_lease_ms), and the
# replica, whose WAL receiver replies every wal_receiver_status_interval (1 s on these nodes).
# When the lease ran out AND no replica replied for as long, the node is cut off from both, and
# pgfailover may be about to promote the replica; so the guard makes it read-only first
# (self_fenced_at in the heartbeat row, default_transaction_read_only = on, client sessions
# ended). pgfailover's own timeouts are longer than the lease, so the fence always comes first.
# If nothing was promoted, pgfailover lifts the fence when it sees the node again.
#
# It never fences a replica, a node already read-only, a node whose lease is 0 (pgfailover was
# stopped cleanly, or runs without a lease), a primary whose replica still streams (only
# pgfailover is gone: nobody can promote), or a node that became writable less than a lease ago
# (just promoted or started: pgfailover's first heartbeat is still to come).
# docs/lifecycle.md, "Self-fencing".
set -euo pipefail
NODE_SCRIPT="lease-guard.sh"
# shellcheck source=scripts/node/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

node_usage() {
  cat <<'EOF2'
Usage: scripts/node/lease-guard.sh --dir DIR [--heartbeat-table SCHEMA.TABLE] [--dbname DB]
                                   [--check-interval SECONDS] [--once] [options]
  --heartbeat-table   pgfailover's probe.heartbeat_table (default pgfailover.heartbeat)
  --dbname            the database pgfailover connects to (nodes[].dbname; default postgres)
  --check-interval    seconds between checks (default 0.5)
  --once              check once and exit: 0 nothing to do, 3 fenced the node
Runs in the foreground until killed; logs one line per fence to stderr.
EOF2
}

GUARD_TABLE=${GUARD_TABLE:-pgfailover.heartbeat}
GUARD_DBNAME=${GUARD_DBNAME:-postgres}
GUARD_INTERVAL=${GUARD_INTERVAL:-0.5}
GUARD_ONCE=0
node_args=()
while (($# > 0)); do
  case $1 in
    --heartbeat-table)
      (($# >= 2)) || die "option $1 needs a value"
      GUARD_TABLE=$2
      shift 2
      ;;
    --check-interval)
      (($# >= 2)) || die "option $1 needs a value"
      GUARD_INTERVAL=$2
      shift 2
      ;;
    --dbname)
      (($# >= 2)) || die "option $1 needs a value"
      GUARD_DBNAME=$2
      shift 2
      ;;
    --once)
      GUARD_ONCE=1
      shift
      ;;
    *)
      node_args+=("$1")
      shift
      ;;
  esac
done
node_parse_args "${node_args[@]}"
node_resolve
[[ $GUARD_TABLE =~ ^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$ ]] ||
  die "--heartbeat-table must be schema.table in lower case letters, digits and _, got '$GUARD_TABLE'"
[[ $GUARD_INTERVAL =~ ^[0-9]*[1-9][0-9]*(\.[0-9]+)?$|^[0-9]+\.[0-9]*[1-9][0-9]*$ ]] ||
  die "--check-interval must be a positive number of seconds, got '$GUARD_INTERVAL'"

log() { printf '%s %s[%s]: %s\n' "$(date -u +%FT%T.%3NZ)" "$NODE_SCRIPT" "$NODE_NAME" "$*" >&2; }

# psql with a deadline: a hung server must not hang the guard. synchronous_commit = local: the
# marker must commit on a primary whose synchronous standby is gone (the very case it is for).
guard_psql() {
  local -a cmd=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$NODE_RUN_DIR" -p "$NODE_PORT"
    -U "$NODE_RUN_AS" -d "$GUARD_DBNAME" "$@")
  if ((EUID == 0)); then cmd=(runuser -u "$NODE_RUN_AS" -- "${cmd[@]}"); fi
  PGCONNECT_TIMEOUT=2 PGOPTIONS="-c statement_timeout=2000 -c synchronous_commit=local" \
    timeout 3 "${cmd[@]}"
}

# One row: whether the node takes writes (out of recovery, not read-only), the lease, the
# heartbeat's age and the age of the newest reply from a streaming standby (empty: none
# streams), in ms on the server's own clock (pgfailover writes ts with the server's now()).
CHECK_SQL="SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off',
  coalesce(h.lease_ms, 0),
  coalesce((extract(epoch FROM clock_timestamp() - h.ts) * 1000)::bigint, 0),
  (SELECT (extract(epoch FROM clock_timestamp() - max(r.reply_time)) * 1000)::bigint
     FROM pg_stat_replication AS r WHERE r.state = 'streaming')
FROM (SELECT 1) AS one LEFT JOIN $GUARD_TABLE AS h ON h.id = 1"

# When this guard first saw the node take writes (ms since the epoch), in this run. A node that
# just became writable - promoted, started, unfenced - carries the last heartbeat of another
# time; pgfailover writes its first one within a tick, so the lease counts from this moment
# when it is later than the heartbeat. Only a definite answer (not writable) resets it.
writable_since=

fence() { # lease_ms why
  local lease=$1 why=$2 setting deadline marked
  # The mark first, in one statement with the check that the lease still ran out (a heartbeat
  # may have arrived since): pgfailover lifts only a fence it can tell from an operator's, and
  # only pgfailover's unfence clears the mark.
  if ! marked=$(guard_psql -At -c "UPDATE $GUARD_TABLE SET self_fenced_at = now()
      WHERE id = 1 AND clock_timestamp() - ts > make_interval(secs => $lease / 1000.0)
        AND NOT EXISTS (SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'
          AND clock_timestamp() - reply_time <= make_interval(secs => $lease / 1000.0))
      RETURNING 1"); then
    log "could not mark the fence in $GUARD_TABLE; not fencing ($why)"
    return 1
  fi
  if [[ $marked != 1 ]]; then
    log "a heartbeat or a replica's reply arrived meanwhile; not fencing"
    return 1
  fi
  guard_psql -c "ALTER SYSTEM SET default_transaction_read_only = on" \
    -c "SELECT pg_reload_conf()" >/dev/null || {
    log "ALTER SYSTEM or pg_reload_conf failed ($why)"
    return 1
  }
  # Sessions forked after the postmaster reloaded start read-only; wait for that (a new
  # session shows it), then end every client session, which may still be writing.
  deadline=$((SECONDS + 2))
  while setting=$(guard_psql -At -c "SHOW default_transaction_read_only" 2>/dev/null) &&
    [[ $setting != on ]] && ((SECONDS < deadline)); do
    sleep 0.05
  done
  guard_psql -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" >/dev/null ||
    log "terminating client sessions failed"
  log "fenced node $NODE_NAME (read-only, client sessions ended): $why"
  return 0
}

check_once() {
  local row writable lease hb_age reply_age now_ms age
  # Down, starting, hung or no table yet: nothing to decide this time.
  row=$(guard_psql -At -F ' ' -c "$CHECK_SQL" 2>/dev/null) || return 0
  read -r writable lease hb_age reply_age <<<"$row"
  if [[ $writable != t ]]; then
    writable_since=
    return 0
  fi
  [[ $lease =~ ^[0-9]+$ && $hb_age =~ ^-?[0-9]+$ ]] || return 0
  age=$hb_age
  if ((!GUARD_ONCE)); then
    now_ms=$(date +%s%3N)
    [[ -n $writable_since ]] || writable_since=$now_ms
    ((now_ms - writable_since >= age)) || age=$((now_ms - writable_since))
  fi
  ((lease > 0 && age > lease)) || return 0
  if [[ -n ${reply_age:-} ]] && ((reply_age <= lease)); then return 0; fi
  fence "$lease" "no heartbeat from pgfailover for ${age} ms and no reply from a streaming replica for $([[ -n ${reply_age:-} ]] && echo "${reply_age} ms" || echo "as long (none streams)"): the ${lease} ms lease ran out" &&
    return 3
  return 0
}

if ((GUARD_ONCE)); then
  check_once
  exit $?
fi
log "guarding node $NODE_NAME (port $NODE_PORT, $GUARD_DBNAME.$GUARD_TABLE, every ${GUARD_INTERVAL}s)"
trap 'log "stopped"; exit 0' TERM INT
while true; do
  check_once || true
  sleep "$GUARD_INTERVAL" &
  wait $! || true
done
