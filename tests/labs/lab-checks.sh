# shellcheck shell=bash
# Checks the lab tests (tests/labs/netns_test.sh, compose_test.sh) share.

# A failover counted once: given each pgfailover instance's
# pgfailover_failovers_total{result="succeeded"} before and after (space-separated, in the same
# instance order), no instance's count went up by more than one and at least one's did. Every
# instance counts the failover it observes; only the acting one made it.
counted_once() { # counts-before counts-after
  local -a before after
  local i seen=0
  read -r -a before <<<"$1"
  read -r -a after <<<"$2"
  for i in "${!after[@]}"; do
    case $((after[i] - ${before[i]:-0})) in
      0) ;;
      1) seen=1 ;;
      *) return 1 ;;
    esac
  done
  ((seen == 1))
}
