# shellcheck shell=bash
# Which node has a role now, for the NODE arguments of every lab (scripts/lib/lab-common.sh for
# the loopback and namespace labs, scripts/lab-compose.sh): pg1 and pg2 are themselves, primary
# and replica are asked from pgfailover's /status, or from pg_is_in_recovery() on each node
# when pgfailover does not answer. The sourcing script defines say, die and how it reaches
# pgfailover and the nodes:
#   lab_status_json          pgfailover's /status body; nothing when it does not answer
#   lab_node_recovery NODE   the node's pg_is_in_recovery() (t or f); nothing when it does not answer

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
  json=$(lab_status_json 2>/dev/null || true)
  if [[ -n $json ]] && command -v jq >/dev/null; then
    name=$(jq -r --arg role "$want" '[.nodes[]? | select(.role == $role) | .name][0] // empty' \
      <<<"$json" 2>/dev/null || true)
    if [[ $name == pg1 || $name == pg2 ]]; then
      printf '%s\n' "$name"
      return
    fi
  fi
  for node in pg1 pg2; do
    recovery=$(lab_node_recovery "$node" 2>/dev/null || true)
    if [[ ($want == primary && $recovery == f) || ($want == replica && $recovery == t) ]]; then
      say "pgfailover did not name the $want; pg_is_in_recovery() says $node"
      printf '%s\n' "$node"
      return
    fi
  done
  die "no node is the $want now (neither pgfailover's /status nor pg_is_in_recovery() names one)"
}
