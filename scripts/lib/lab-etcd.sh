# shellcheck shell=bash
# Several pgfailover instances in the loopback and namespace labs (docs/coordination.md): a
# three-member etcd cluster started by the lab (Debian's etcd-server, its data under
# $LAB_DIR/etcd) and LAB_INSTANCES pgfailover instances, of which the one holding
# <prefix>/leader acts. Sourced by scripts/lib/lab-common.sh; with LAB_INSTANCES=1 (the default)
# nothing here runs and the lab is the single instance it always was. Every process is found by
# its pid file, checked against /proc (binary and command line), and signalled by PID only.
#
# A front end that allows LAB_INSTANCES > 1 defines, besides lab-common's functions:
#   inst_host I                 the lab host instance I runs on (on_host)
#   inst_addr I, inst_port I    where instance I's API listens
#   etcd_host M                 the lab host etcd member M (1..3) runs on
#   etcd_addr M, etcd_client_port M, etcd_peer_port M
# and ETCD_PREFIX (the etcd.prefix the configuration gets).

ETCD_BIN=/usr/bin/etcd
ETCDCTL_BIN=/usr/bin/etcdctl
ETCD_MEMBERS=(1 2 3)

multi_instance() { ((${LAB_INSTANCES:-1} > 1)); }

# ----- instances ------------------------------------------------------------------------------

inst_name() { printf 'pgf%s\n' "$1"; }

# Instance 1 keeps the lab's own files (CONFIG, PID_FILE, LOG_FILE); instance I > 1 has the same
# names with "-I" before the extension (pgfailover-2.json, pgfailover-2.pid...).
inst_file() { # instance path
  local path=$2
  if (($1 == 1)); then
    printf '%s\n' "$path"
  else
    printf '%s-%s.%s\n' "${path%.*}" "$1" "${path##*.}"
  fi
}
inst_config() { inst_file "$1" "$CONFIG"; }
inst_pid_file() { inst_file "$1" "$PID_FILE"; }
inst_log_file() { inst_file "$1" "$LOG_FILE"; }
inst_url() {
  if multi_instance; then
    printf 'http://%s:%s\n' "$(inst_addr "$1")" "$(inst_port "$1")"
  else
    printf '%s\n' "$URL"
  fi
}
instances() { seq 1 "${LAB_INSTANCES:-1}"; }

# ----- etcd members ---------------------------------------------------------------------------

etcd_dir() { printf '%s\n' "$LAB_DIR/etcd/etcd$1"; }
etcd_client_url() { printf 'http://%s:%s\n' "$(etcd_addr "$1")" "$(etcd_client_port "$1")"; }
etcd_peer_url() { printf 'http://%s:%s\n' "$(etcd_addr "$1")" "$(etcd_peer_port "$1")"; }
etcd_endpoints() { # comma-separated client URLs of every member
  local m out=''
  for m in "${ETCD_MEMBERS[@]}"; do out+=${out:+,}$(etcd_client_url "$m"); done
  printf '%s\n' "$out"
}

# A member's PID when the process in its pid file runs etcd on that member's data directory.
etcd_pid() { # member
  local dir pid=''
  dir=$(etcd_dir "$1")
  [[ -f $dir.pid ]] && read -r pid <"$dir.pid"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null || true) == "$ETCD_BIN" ]] || return 0
  [[ $(proc_state "$pid") != Z ]] || return 0
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- " --data-dir=$dir/data " || return 0
  printf '%s\n' "$pid"
}

# Starts a member unless it runs. With its data directory from before, etcd ignores the
# --initial-* flags and comes back with its state and membership.
etcd_start_member() { # member
  local m=$1 dir cluster='' other pid
  [[ -z $(etcd_pid "$m") ]] || return 0
  dir=$(etcd_dir "$m")
  install -d -m 0700 "$dir" "$dir/data"
  for other in "${ETCD_MEMBERS[@]}"; do cluster+=${cluster:+,}etcd$other=$(etcd_peer_url "$other"); done
  host_exec_words "$(etcd_host "$m")"
  nohup "${HOST_EXEC[@]}" "$ETCD_BIN" --name "etcd$m" --data-dir="$dir/data" \
    --listen-client-urls "$(etcd_client_url "$m")" --advertise-client-urls "$(etcd_client_url "$m")" \
    --listen-peer-urls "$(etcd_peer_url "$m")" --initial-advertise-peer-urls "$(etcd_peer_url "$m")" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    --initial-cluster-token "pgfailover-$LAB_TAG" --logger zap --log-outputs stderr \
    >>"$dir.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$dir.pid"
  wait_for 10 "etcd member etcd$m to start" etcd_member_running "$m"
}
etcd_member_running() { [[ -n $(etcd_pid "$1") ]]; }

# etcdctl (v3 API) from the client host against every member.
lab_etcdctl() {
  on_host client env ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="$(etcd_endpoints)" \
    --dial-timeout=1s --command-timeout=2s "$@"
}

etcd_healthy() { lab_etcdctl endpoint health >/dev/null 2>&1; }

etcd_up() {
  local m
  for m in "${ETCD_MEMBERS[@]}"; do etcd_start_member "$m"; done
  say "waiting up to ${LAB_TIMEOUT}s for the etcd cluster ($(etcd_endpoints))"
  wait_for "$LAB_TIMEOUT" "every etcd member healthy" etcd_healthy
  say "etcd: 3 members healthy, pids $(for m in "${ETCD_MEMBERS[@]}"; do printf '%s ' "$(etcd_pid "$m")"; done)"
}

# SIGKILL of every member (the whole etcd cluster crashes); their data stays.
etcd_kill_all() {
  local m pid killed=()
  for m in "${ETCD_MEMBERS[@]}"; do
    pid=$(etcd_pid "$m")
    [[ -n $pid ]] || continue
    kill -KILL "$pid" 2>/dev/null || true
    killed+=("etcd$m=$pid")
  done
  for m in "${ETCD_MEMBERS[@]}"; do wait_for 10 "etcd$m to exit" etcd_member_gone "$m"; done
  ((${#killed[@]} > 0)) || say "no etcd member was running"
  ((${#killed[@]} == 0)) || say "killed the etcd cluster with SIGKILL: ${killed[*]}"
}
etcd_member_gone() { [[ -z $(etcd_pid "$1") ]]; }

# SIGTERM, then SIGKILL after 10 s (cmd_down).
etcd_stop_all() {
  local m pid deadline
  for m in "${ETCD_MEMBERS[@]}"; do
    pid=$(etcd_pid "$m")
    [[ -n $pid ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [[ -n $(etcd_pid "$m") ]] && ((SECONDS < deadline)); do sleep 0.1; done
    [[ -z $(etcd_pid "$m") ]] || kill -KILL "$pid" 2>/dev/null || true
    say "stopped etcd member etcd$m (pid $pid)"
  done
}

# The leader key's value (the acting instance's name), empty when nobody holds it or etcd does
# not answer.
etcd_leader() {
  lab_etcdctl get --print-value-only "$ETCD_PREFIX/leader" 2>/dev/null | head -n1 || true
}

# ----- which instance acts --------------------------------------------------------------------

# The acting instance's number: the only one without etcd; with etcd the leader key's holder,
# empty when nobody holds it.
acting_instance() {
  if ! multi_instance; then
    printf '1\n'
    return
  fi
  local leader i
  leader=$(etcd_leader)
  for i in $(instances); do
    if [[ $leader == "$(inst_name "$i")" ]]; then
      printf '%s\n' "$i"
      return
    fi
  done
}

# The API to ask: the acting instance's when it runs, else the first running one's (every
# instance observes and publishes the same view), else instance 1's.
api_url() {
  multi_instance || {
    printf '%s\n' "$URL"
    return
  }
  local i
  i=$(acting_instance)
  if [[ -n $i ]] && daemon_running "$i"; then
    inst_url "$i"
    return
  fi
  for i in $(instances); do
    if daemon_running "$i"; then
      inst_url "$i"
      return
    fi
  done
  inst_url 1
}

# Each instance's configuration: the front end's (CONFIG) with its own API address, state file
# and the etcd section (api_url: where the others send admin requests meant for the acting
# one). Only with several instances; one instance keeps CONFIG as it is.
write_instance_configs() {
  multi_instance || return 0
  local base i
  base=$(<"$CONFIG")
  for i in $(instances); do
    jq --arg name "$(inst_name "$i")" --arg addr "$(inst_addr "$i")" --argjson port "$(inst_port "$i")" \
      --arg endpoints "$(etcd_endpoints)" --arg prefix "$ETCD_PREFIX" --argjson i "$i" '
      .http.listen_address = $addr | .http.port = $port
      | (if $i == 1 then . else .state_file |= (sub("\\.json$"; "") + "-\($i).json") end)
      | .etcd = {name: $name, endpoints: ($endpoints | split(",")), prefix: $prefix,
                 api_url: "http://\($addr):\($port)"}' \
      <<<"$base" | write_file "$(inst_config "$i")" 0600
  done
}

# Kills (SIGKILL) or stops (SIGTERM) the acting instance, or with one instance the only one.
stop_acting_instance() { # KILL|TERM
  local signal=$1 i pid deadline
  i=$(acting_instance)
  [[ -n $i ]] || die "no instance holds the leader key ($ETCD_PREFIX/leader): nothing acts"
  pid=$(daemon_pid "$i")
  [[ -n $pid ]] || die "pgfailover $(inst_name "$i") holds the leader key but does not run here"
  kill "-$signal" "$pid"
  deadline=$((SECONDS + 15))
  while [[ -n $(daemon_pid "$i") ]] && ((SECONDS < deadline)); do sleep 0.1; done
  [[ -z $(daemon_pid "$i") ]] || die "pgfailover (pid $pid) still runs 15 s after SIG$signal"
  local who=pgfailover
  multi_instance && who="pgfailover $(inst_name "$i"), the acting instance,"
  if [[ $signal == KILL ]]; then
    say "$who (pid $pid) killed with SIGKILL"
  else
    say "$who (pid $pid) stopped"
  fi
}

# Starts every instance that does not run.
start_instances() {
  local i
  for i in $(instances); do start_pgfailover "$i"; done
}

pid_or_down() { if [[ -n $1 ]]; then printf 'pid %s' "$1"; else printf 'not running'; fi; }

# After the API lines of `status`: the instances and the etcd members.
etcd_status_lines() {
  multi_instance || return 0
  local i m pid acting leader
  leader=$(etcd_leader)
  printf '\nInstances (leader key %s/leader: %s):\n' "$ETCD_PREFIX" "${leader:-nobody}"
  for i in $(instances); do
    pid=$(daemon_pid "$i")
    acting=''
    [[ $leader == "$(inst_name "$i")" ]] && acting=' acting'
    printf '  %s %s%s %s%s\n' "$(inst_name "$i")" "$(inst_url "$i")" "$(host_where "$(inst_host "$i")")" \
      "$(pid_or_down "$pid")" "$acting"
  done
  printf 'etcd:\n'
  for m in "${ETCD_MEMBERS[@]}"; do
    pid=$(etcd_pid "$m")
    printf '  etcd%s %s%s %s\n' "$m" "$(etcd_client_url "$m")" "$(host_where "$(etcd_host "$m")")" \
      "$(pid_or_down "$pid")"
  done
}
