# shellcheck shell=bash
# The labs' handling of the nodes' lease guard (`pgfailover lease-guard`): one per node, for the
# lab's whole life, like a systemd service next to PostgreSQL. Sourced by scripts/lib/lab-common.sh
# (both labs), which defines LAB_DIR, PGFAILOVER_BIN, node_dir and say. The guard is
# found by its pid file and checked by its command line, so a recycled PID is never signalled.
# Started as root, the guard becomes the servers' OS user (postgres) itself.

guard_pid() { # node
  local file=$LAB_DIR/$1/lease-guard.pid pid=''
  [[ -f $file ]] && read -r pid <"$file"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- " lease-guard --dir $(node_dir "$1") " || return 0
  printf '%s\n' "$pid"
}

guard_running() { [[ -n $(guard_pid "$1") ]]; }

# Starts the node's guard unless it runs; the optional words after the node run it (e.g.
# `ip netns exec NS`). Waits up to 10 s for it to be found by its command line.
start_guard() { # node [launcher...]
  local node=$1 waited=0
  shift
  guard_running "$node" && return 0
  nohup "$@" "$PGFAILOVER_BIN" lease-guard --dir "$(node_dir "$node")" --name "$node" \
    >>"$LAB_DIR/$node/lease-guard.log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$LAB_DIR/$node/lease-guard.pid"
  until guard_running "$node"; do
    ((waited++ < 100)) || {
      say "the lease guard of $node did not start (see $LAB_DIR/$node/lease-guard.log)"
      return 1
    }
    sleep 0.1
  done
}

# SIGTERM, then up to 5 s for it to exit (it ends its session and exits within 150 ms).
stop_guard() { # node
  local pid waited=0
  pid=$(guard_pid "$1")
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while [[ -n $(guard_pid "$1") ]] && ((waited++ < 50)); do sleep 0.1; done
  [[ -z $(guard_pid "$1") ]] || kill -KILL "$pid" 2>/dev/null || true
  say "stopped the lease guard of $1 (pid $pid)"
}
