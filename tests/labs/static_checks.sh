#!/usr/bin/env bash
# Static checks of the container and monitoring files; needs no Docker daemon and no network
# beyond installing Debian packages (idempotent: nothing is installed when all are there).
#   - docker-compose config -q: docker-compose.yml alone and with docker-compose.ci.yml
#   - Dockerfiles: tests/labs/dockerfile_lint.py (a subset of hadolint's rules, which is not
#     packaged in Debian; see that file), and haproxy -c on docker/haproxy/haproxy.cfg
#   - promtool check config / check rules / test rules (Debian's prometheus package)
#   - Grafana: provisioning YAML parses, the dashboard JSON parses, has unique panel ids, and
#     every pgfailover_* metric its queries (and the alert rules) use is documented in
#     docs/metrics.md and registered in src/metrics/metrics.cc
# (shellcheck runs over every script of the repo in scripts/check-sources.sh.)
#   - the bench package (bench/pgfailover_bench) imports and renders its report from bench/results
#     (tests/bench/report_check.py; docs/benchmarks.md is left alone)
# Exit status: 0 when everything passes; the last line says how many checks passed and failed.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
PY=/usr/bin/python3 # Debian's python3 (python3-yaml), whatever else is first on PATH

say() { printf 'static_checks: %s\n' "$*" >&2; }

packages=(docker-compose prometheus haproxy python3 python3-yaml jq)
missing=()
for p in "${packages[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  ((EUID == 0)) || {
    say "missing packages ${missing[*]}: run as root to install them"
    exit 1
  }
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
    {
      apt-get -o DPkg::Lock::Timeout=300 update -qq
      apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
    }
fi

passed=0
failed=0
check() { # description command...
  local what=$1 output
  shift
  if output=$("$@" 2>&1); then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$what"
  else
    failed=$((failed + 1))
    # shellcheck disable=SC2001
    printf 'FAIL  %s\n%s\n' "$what" "$(sed 's/^/      /' <<<"$output")"
  fi
}

check "docker-compose config (docker-compose.yml)" docker-compose -f docker-compose.yml config -q
check "docker-compose config (with docker-compose.ci.yml)" \
  docker-compose -f docker-compose.yml -f docker-compose.ci.yml config -q
check "docker-compose config (profile grafana, BASE_IMAGE=debian:bookworm)" \
  env BASE_IMAGE=debian:bookworm docker-compose --profile grafana -f docker-compose.yml config -q
check "Dockerfiles lint (tests/labs/dockerfile_lint.py)" "$PY" tests/labs/dockerfile_lint.py \
  Dockerfile:. docker/postgres/Dockerfile:.:root-ok \
  docker/haproxy/Dockerfile:docker/haproxy docker/prometheus/Dockerfile:docker/prometheus \
  docker/etcd/Dockerfile:docker/etcd
check "haproxy -c docker/haproxy/haproxy.cfg" \
  env PGFAILOVER_ADDR=127.0.0.1 PG1_ADDR=127.0.0.1 PG2_ADDR=127.0.0.1 \
  PGFAILOVER_CA_FILE=/etc/ssl/certs/ca-certificates.crt haproxy -c -f docker/haproxy/haproxy.cfg
check "promtool check config monitoring/prometheus.yml" promtool check config monitoring/prometheus.yml
check "promtool check rules monitoring/alerts.yml" promtool check rules monitoring/alerts.yml
check "promtool test rules monitoring/alerts_test.yml" promtool test rules monitoring/alerts_test.yml

check "Grafana provisioning, dashboard JSON, metric names" "$PY" - <<'EOF'
import glob, json, re, sys, yaml

problems = []
for path in glob.glob("monitoring/grafana/provisioning/*/*.yml") + ["docker-compose.yml", "monitoring/alerts.yml"]:
    with open(path) as f:
        yaml.safe_load(f)

documented = set(re.findall(r"`(pgfailover_[a-z0-9_]+)`", open("docs/metrics.md").read()))
registered = set(re.findall(r'Name\("(pgfailover_[a-z0-9_]+)"\)', open("src/metrics/metrics.cc").read()))
histograms = {"pgfailover_probe_duration_seconds", "pgfailover_tick_duration_seconds"}

def base_name(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            return name[: -len(suffix)]
    return name

def check_names(where, expr):
    names = set(re.findall(r"\bpgfailover_[a-z0-9_]+", expr))
    for name in names:
        base = base_name(name)
        if base not in documented:
            problems.append(f"{where}: {name} is not documented in docs/metrics.md")
        if base not in registered:
            problems.append(f"{where}: {name} is not registered in src/metrics/metrics.cc")
    return names

dash = json.load(open("monitoring/grafana/dashboards/pgfailover.json"))
ids, used = set(), set()
for panel in dash["panels"]:
    if panel["id"] in ids:
        problems.append(f"panel id {panel['id']} twice")
    ids.add(panel["id"])
    for key in ("title", "type", "gridPos"):
        if key not in panel:
            problems.append(f"panel {panel['id']} has no {key}")
    for target in panel.get("targets", []):
        used |= check_names(f"panel '{panel['title']}'", target["expr"])
    if panel["type"] != "row" and not panel.get("targets"):
        problems.append(f"panel '{panel['title']}' has no query")
for annotation in dash["annotations"]["list"]:
    if "expr" in annotation:
        used |= check_names(f"annotation '{annotation['name']}'", annotation["expr"])
for variable in dash["templating"]["list"]:
    if variable["type"] == "query":
        used |= check_names(f"variable '{variable['name']}'", variable["definition"])

rules = yaml.safe_load(open("monitoring/alerts.yml"))
for group in rules["groups"]:
    for rule in group["rules"]:
        used |= check_names(f"alert {rule['alert']}", rule["expr"])

wanted = ["pgfailover_cluster_state", "pgfailover_node_role", "pgfailover_replication_lag_bytes",
          "pgfailover_probe_duration_seconds_bucket", "pgfailover_failovers_total",
          "pgfailover_vetoed_failovers_total", "pgfailover_split_brain", "pgfailover_node_up"]
for name in wanted:
    if name not in used:
        problems.append(f"the dashboard or the alerts do not use {name}")
for p in problems:
    print(p)
print(f"{len(dash['panels'])} panels, {len(used)} metric names used, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
EOF

check "bench package imports, its report renders (tests/bench/report_check.py)" "$PY" tests/bench/report_check.py
# The systemd units as systemd itself reads them (unknown keys, bad values), where it is
# installed; that /usr/bin/pgfailover is not installed here is no finding.
verify_units() {
  local out
  out=$(systemd-analyze verify --man=no packaging/systemd/pgfailover.service \
    packaging/systemd/pgfailover-lease-guard@.service 2>&1 | grep -v 'Command /usr/bin/pgfailover is not executable' || true)
  [[ -z $out ]] || {
    printf '%s\n' "$out"
    return 1
  }
}
if command -v systemd-analyze >/dev/null; then
  check "systemd units (systemd-analyze verify)" verify_units
fi
check "bench/haproxy_failover.py's HAProxy configuration (haproxy -c)" "$PY" bench/haproxy_failover.py --check-config
check "bench/compose_writer.py parses" "$PY" -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' bench/compose_writer.py

printf '%s passed, %s failed\n' "$passed" "$failed"
((failed == 0))
