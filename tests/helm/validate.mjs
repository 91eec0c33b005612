// Offline checks of the objects `helm template` renders from helm/pgfailover, for
// tests/helm/run.sh. No cluster is involved.
//
//   node validate.mjs objects RENDER.yaml [--external-secret NAME=KEY,KEY]...
//       Every object against the Kubernetes schemas (kubernetes-models: required fields, types,
//       enums, formats; @kubernetes-models/prometheus-operator for ServiceMonitor and
//       PrometheusRule), unknown fields anywhere in a built-in object (the field lists of
//       @kubernetes/client-node's generated models: what `kubectl apply --validate=strict`
//       refuses), names and labels, and how the objects refer to each other: Service selectors
//       and target ports, volumes and their keys, probe ports, PDB and NetworkPolicy selectors,
//       the ServiceMonitor's port, and the chart's security settings.
//   node validate.mjs materialize RENDER.yaml ROOT OUT.json
//       Lays out, under ROOT, the files the pgfailover container would see (its projected
//       volume, from the rendered ConfigMaps and Secrets; placeholders for existing Secrets,
//       which the chart does not render) and writes pgfailover.json to OUT.json with every path
//       under a mount prefixed by ROOT, for `pgfailover check-config`.
//   node validate.mjs rules RENDER.yaml ALERTS.yml      PrometheusRule groups == the file's
//   node validate.mjs dashboards RENDER.yaml DIR        dashboard ConfigMap == DIR/*.json, bytes
//   node validate.mjs ssh RENDER.yaml OUTDIR            writes the generated keys, known_hosts,
//       authorized_keys and the node names/hosts (nodes.txt) for the ssh checks
//   node validate.mjs notes RENDER.yaml                 NOTES.txt (rendered into a ConfigMap by
//       run.sh) gives the instructions and names no secret value
//   node validate.mjs schema-keys SCHEMA.json EFFECTIVE.json [EFFECTIVE_WITH_ETCD.json]
//       Every key pgfailover reports in its effective configuration (check-config) for the
//       sections the chart passes through is a key the values schema accepts; every key of its
//       etcd section comes from an etcd.* value or is left to pgfailover's default on purpose.
//   node validate.mjs defaults EFFECTIVE_CHART.json EFFECTIVE_MINIMAL.json
//       The chart's default values give pgfailover's own defaults (except the listed choices).
//   node validate.mjs netpol-default RENDER.yaml
//       With the default values, exactly HAProxy, the nodes, the test pod and Prometheus pods
//       reach pgfailover's 8008, and only Prometheus pods HAProxy's statistics page (8404).
//   node validate.mjs tls RENDER.yaml
//       pgfailover connects with verify-full, the chart's CA and its client certificate (CN =
//       the superuser, signed by that CA); the nodes get the CA and must ask for the certificate.
//   node validate.mjs node-env RENDER.yaml
//       Prints the node container's environment (NAME=VALUE lines) for run.sh's pg_hba check.
//   node validate.mjs instances RENDER.yaml single
//   node validate.mjs instances RENDER.yaml several VALUES.yaml REPLICAS soft|hard
//       One pgfailover exactly as without etcd; or several coordinated through etcd as the
//       values file's etcd.* asks (replicas, rolling update, anti-affinity, PDB, the etcd
//       section, its TLS and password files mounted from the user's Secrets, no secret in the
//       environment, arguments or ConfigMap, no state file).
//
// NODE_PATH-style lookup: the npm packages are found in $HELM_TEST_NPM (a folder with
// node_modules), installed by run.sh.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { isDeepStrictEqual } from "node:util";

const npmDir = process.env.HELM_TEST_NPM;
if (!npmDir) {
  console.error("validate.mjs: set HELM_TEST_NPM to the folder holding node_modules");
  process.exit(2);
}
const require = createRequire(path.join(npmDir, "package.json"));
const YAML = require("yaml");

const errors = [];
const externalServiceAccounts = new Set();
const fail = (where, message) => errors.push(`${where}: ${message}`);
const finish = (what) => {
  if (errors.length) {
    for (const e of errors) console.log(`  FAIL ${e}`);
    console.log(`${what}: ${errors.length} problem(s)`);
    process.exit(1);
  }
  console.log(`${what}: ok`);
};

function loadRender(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  const objects = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`${file}: YAML error: ${doc.errors[0].message}`);
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    objects.push(value);
  }
  return objects;
}
const id = (o) => `${o?.kind ?? "?"}/${o?.metadata?.name ?? "?"}`;
const pgfailoverConfig = (objects) => JSON.parse(objects.find((o) => o.kind === "ConfigMap" && o.data?.["pgfailover.json"]).data["pgfailover.json"]);
const find = (objects, kind, name) => objects.find((o) => o.kind === kind && o.metadata?.name === name);
const decode = (b64) => Buffer.from(b64, "base64").toString("utf8");

// ----- schemas --------------------------------------------------------------------------------

const builtIn = {
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap", "V1ConfigMap"],
  "v1/Secret": ["kubernetes-models/v1/Secret", "V1Secret"],
  "v1/Service": ["kubernetes-models/v1/Service", "V1Service"],
  "v1/ServiceAccount": ["kubernetes-models/v1/ServiceAccount", "V1ServiceAccount"],
  "v1/Pod": ["kubernetes-models/v1/Pod", "V1Pod"],
  "v1/PersistentVolumeClaim": ["kubernetes-models/v1/PersistentVolumeClaim", "V1PersistentVolumeClaim"],
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment", "V1Deployment"],
  "apps/v1/StatefulSet": ["kubernetes-models/apps/v1/StatefulSet", "V1StatefulSet"],
  "policy/v1/PodDisruptionBudget": ["kubernetes-models/policy/v1/PodDisruptionBudget", "V1PodDisruptionBudget"],
  "networking.k8s.io/v1/NetworkPolicy": ["kubernetes-models/networking.k8s.io/v1/NetworkPolicy", "V1NetworkPolicy"],
};
const custom = {
  "monitoring.coreos.com/v1/ServiceMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "monitoring.coreos.com/v1/PrometheusRule": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
};

// kubernetes-models is CommonJS; @kubernetes-models/prometheus-operator is ES modules only.
async function modelClass(modulePath) {
  const name = modulePath.split("/").pop();
  let mod;
  if (modulePath.startsWith("@")) {
    mod = await import(pathToFileURL(path.join(npmDir, "node_modules", `${modulePath}.js`)));
  } else {
    mod = require(modulePath);
  }
  return mod[name] ?? mod.default;
}

// The generated model classes, loaded one file per type as the walk needs them (importing the
// whole package costs seconds).
const clientModels = {};
const modelsDir = path.join(path.dirname(require.resolve("@kubernetes/client-node/package.json")), "dist/gen/models");
async function loadModel(type) {
  const m = /^Array<(.+)>$/.exec(type) ?? /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) return loadModel(m[1]);
  if (type in clientModels || !/^[A-Z][A-Za-z0-9]+$/.test(type)) return;
  const file = path.join(modelsDir, `${type}.js`);
  clientModels[type] = null;
  if (!fs.existsSync(file)) return;
  const cls = (await import(pathToFileURL(file)))[type];
  clientModels[type] = cls;
  for (const a of cls?.attributeTypeMap ?? []) await loadModel(a.type);
}
async function strictModels(rootTypes) {
  for (const t of rootTypes) await loadModel(t);
  return clientModels;
}

// Unknown fields, walking the generated models' attribute lists (the OpenAPI field names).
function walkStrict(models, value, type, where) {
  if (value === null || value === undefined) return;
  if (type === "any" || type === "object" || type === "IntOrString") return;
  if (type === "string") {
    if (typeof value !== "string") fail(where, `must be a string, got ${JSON.stringify(value)}`);
    return;
  }
  if (type === "number") {
    if (typeof value !== "number") fail(where, `must be a number, got ${JSON.stringify(value)}`);
    return;
  }
  if (type === "boolean") {
    if (typeof value !== "boolean") fail(where, `must be true or false, got ${JSON.stringify(value)}`);
    return;
  }
  if (type === "Date") return;
  let m = /^Array<(.+)>$/.exec(type);
  if (m) {
    if (!Array.isArray(value)) return fail(where, "must be a list");
    value.forEach((item, i) => walkStrict(models, item, m[1], `${where}[${i}]`));
    return;
  }
  m = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) {
    if (typeof value !== "object" || Array.isArray(value)) return fail(where, "must be a map");
    for (const [k, v] of Object.entries(value)) walkStrict(models, v, m[1], `${where}.${k}`);
    return;
  }
  const cls = models[type];
  if (!cls || !cls.attributeTypeMap) return; // a type without a field list: nothing to check
  if (typeof value !== "object" || Array.isArray(value)) return fail(where, `must be an object (${type})`);
  const fields = new Map(cls.attributeTypeMap.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) {
      fail(where, `unknown field "${k}" (${type} has: ${[...fields.keys()].join(", ")})`);
      continue;
    }
    walkStrict(models, v, fields.get(k), `${where}.${k}`);
  }
}

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function checkMeta(o) {
  const where = id(o);
  const name = o.metadata?.name ?? "";
  const labelNamed = ["Service", "StatefulSet", "Pod"].includes(o.kind);
  if (labelNamed ? !(dns1123Label.test(name) && name.length <= 63) : !(dns1123Subdomain.test(name) && name.length <= 253))
    fail(where, `invalid name "${name}"`);
  if (o.kind === "StatefulSet" && name.length > 52)
    fail(where, `a StatefulSet name over 52 characters makes invalid controller-revision-hash labels`);
  const labelSets = [["metadata.labels", o.metadata?.labels], ["template labels", o.spec?.template?.metadata?.labels]];
  for (const [what, labels] of labelSets)
    for (const [k, v] of Object.entries(labels ?? {})) {
      if (typeof v !== "string" || v.length > 63 || !labelValue.test(v)) fail(where, `${what}: invalid label value ${k}=${JSON.stringify(v)}`);
    }
  for (const [k, v] of Object.entries(o.metadata?.annotations ?? {}))
    if (typeof v !== "string") fail(where, `annotation ${k} must be a string`);
  if (o.kind === "ConfigMap" || o.kind === "Secret") {
    for (const [k, v] of Object.entries(o.data ?? {})) {
      if (!/^[-._a-zA-Z0-9]+$/.test(k)) fail(where, `invalid data key "${k}"`);
      if (typeof v !== "string") fail(where, `data.${k} must be a string`);
      if (o.kind === "Secret" && !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) fail(where, `data.${k} is not base64`);
    }
  }
}

async function validateSchemas(objects) {
  const models = await strictModels(objects.map((o) => builtIn[`${o.apiVersion}/${o.kind}`]?.[1]).filter(Boolean));
  const kinds = new Map();
  for (const o of objects) {
    const key = `${o.apiVersion}/${o.kind}`;
    kinds.set(key, (kinds.get(key) ?? 0) + 1);
    const where = id(o);
    if (!o.metadata?.name) fail(where, "no metadata.name");
    checkMeta(o);
    const spec = builtIn[key];
    const crd = custom[key];
    if (!spec && !crd) {
      fail(where, `unexpected apiVersion/kind ${key}: add it to validate.mjs if it is meant to be there`);
      continue;
    }
    const Cls = await modelClass(spec ? spec[0] : crd);
    try {
      new Cls(structuredClone(o)).validate();
    } catch (e) {
      const details = (e.errors ?? []).map((x) => `${x.instancePath || "/"} ${x.message}${x.params ? " " + JSON.stringify(x.params) : ""}`);
      fail(where, `schema: ${details.length ? details.join("; ") : e.message}`);
    }
    if (spec) walkStrict(models, o, spec[1], where);
  }
  return kinds;
}

// ----- how the objects refer to each other ----------------------------------------------------

function podTemplates(objects) {
  const out = [];
  for (const o of objects) {
    if (o.kind === "Deployment" || o.kind === "StatefulSet") out.push({ owner: o, labels: o.spec.template.metadata?.labels ?? {}, spec: o.spec.template.spec });
    if (o.kind === "Pod") out.push({ owner: o, labels: o.metadata?.labels ?? {}, spec: o.spec });
  }
  return out;
}
const matches = (selector, labels) => Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

function checkReferences(objects, external) {
  const pods = podTemplates(objects);
  const configMaps = new Map(objects.filter((o) => o.kind === "ConfigMap").map((o) => [o.metadata.name, o]));
  const secrets = new Map(objects.filter((o) => o.kind === "Secret").map((o) => [o.metadata.name, o]));
  const pvcs = new Set(objects.filter((o) => o.kind === "PersistentVolumeClaim").map((o) => o.metadata.name));
  const sa = new Set(objects.filter((o) => o.kind === "ServiceAccount").map((o) => o.metadata.name));

  for (const o of objects.filter((x) => x.kind === "Deployment" || x.kind === "StatefulSet")) {
    if (!matches(o.spec.selector.matchLabels, o.spec.template.metadata.labels))
      fail(id(o), "selector does not match its own pod template");
  }
  for (const s of objects.filter((o) => o.kind === "StatefulSet")) {
    const svc = find(objects, "Service", s.spec.serviceName);
    if (!svc) fail(id(s), `serviceName ${s.spec.serviceName} is not rendered`);
    else if (svc.spec.clusterIP !== "None") fail(id(s), `serviceName ${s.spec.serviceName} is not headless`);
  }
  for (const svc of objects.filter((o) => o.kind === "Service")) {
    const targets = pods.filter((p) => p.owner.kind !== "Pod" && matches(svc.spec.selector, p.labels));
    if (targets.length !== 1) fail(id(svc), `selector matches ${targets.length} workloads (want exactly 1)`);
    for (const port of svc.spec.ports ?? []) {
      for (const t of targets) {
        const named = typeof port.targetPort === "string";
        const found = t.spec.containers.some((c) => (c.ports ?? []).some((p) => (named ? p.name === port.targetPort : p.containerPort === (port.targetPort ?? port.port))));
        if (!found) fail(id(svc), `port ${port.name}: targetPort ${port.targetPort} is no container port of ${id(t.owner)}`);
      }
    }
  }
  for (const p of pods) {
    const where = id(p.owner);
    const volumes = new Map((p.spec.volumes ?? []).map((v) => [v.name, v]));
    if (p.spec.serviceAccountName && !sa.has(p.spec.serviceAccountName) && !externalServiceAccounts.has(p.spec.serviceAccountName)) fail(where, `ServiceAccount ${p.spec.serviceAccountName} is not rendered`);
    const claimTemplates = new Set((p.owner.spec?.volumeClaimTemplates ?? []).map((t) => t.metadata.name));
    for (const c of [...(p.spec.initContainers ?? []), ...p.spec.containers]) {
      const portNames = new Set((c.ports ?? []).map((x) => x.name));
      for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
        const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
        if (typeof port === "string" && !portNames.has(port)) fail(where, `${c.name}.${probe}: port ${port} is not a named port`);
      }
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name) && !claimTemplates.has(m.name)) fail(where, `${c.name}: volumeMount ${m.name} has no volume`);
      }
    }
    const checkItems = (kind, name, items, optional) => {
      const map = kind === "ConfigMap" ? configMaps : secrets;
      const obj = map.get(name);
      let keys;
      if (obj) keys = new Set(Object.keys(obj.data ?? {}));
      else if (kind === "Secret" && external.has(name)) keys = external.get(name);
      else if (optional) return;
      else return fail(where, `${kind} ${name} is neither rendered nor an existing Secret of this scenario`);
      for (const item of items ?? []) if (!keys.has(item.key)) fail(where, `${kind} ${name} has no key "${item.key}"`);
    };
    for (const v of p.spec.volumes ?? []) {
      if (v.configMap) checkItems("ConfigMap", v.configMap.name, v.configMap.items, v.configMap.optional);
      if (v.secret) checkItems("Secret", v.secret.secretName, v.secret.items, v.secret.optional);
      if (v.persistentVolumeClaim && !pvcs.has(v.persistentVolumeClaim.claimName)) fail(where, `PVC ${v.persistentVolumeClaim.claimName} is not rendered`);
      const paths = new Set();
      for (const src of v.projected?.sources ?? []) {
        if (src.configMap) checkItems("ConfigMap", src.configMap.name, src.configMap.items, src.configMap.optional);
        if (src.secret) checkItems("Secret", src.secret.name, src.secret.items, src.secret.optional);
        for (const item of (src.configMap ?? src.secret)?.items ?? []) {
          if (paths.has(item.path)) fail(where, `projected volume ${v.name}: two files at ${item.path}`);
          paths.add(item.path);
        }
      }
    }
    for (const e of p.spec.containers.flatMap((c) => c.env ?? [])) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) checkItems("Secret", ref.name, [{ key: ref.key }], ref.optional);
    }
  }
  for (const pdb of objects.filter((o) => o.kind === "PodDisruptionBudget")) {
    const n = pods.filter((p) => p.owner.kind !== "Pod" && matches(pdb.spec.selector.matchLabels, p.labels)).length;
    if (n !== 1) fail(id(pdb), `selector matches ${n} workloads (want 1)`);
  }
  for (const np of objects.filter((o) => o.kind === "NetworkPolicy")) {
    const n = pods.filter((p) => p.owner.kind !== "Pod" && matches(np.spec.podSelector.matchLabels, p.labels)).length;
    if (n !== 1) fail(id(np), `podSelector matches ${n} workloads (want 1)`);
    for (const rule of np.spec.ingress ?? [])
      for (const peer of rule.from ?? [])
        if (peer.podSelector && !peer.namespaceSelector && Object.keys(peer.podSelector.matchLabels ?? {}).some((k) => k.startsWith("app.kubernetes.io/"))) {
          const hit = pods.some((p) => matches(peer.podSelector.matchLabels, p.labels));
          if (!hit) fail(id(np), `a peer selects no pod of the chart: ${JSON.stringify(peer.podSelector.matchLabels)}`);
        }
  }
  for (const sm of objects.filter((o) => o.kind === "ServiceMonitor")) {
    const svcs = objects.filter((o) => o.kind === "Service" && matches(sm.spec.selector.matchLabels, o.metadata.labels ?? {}));
    if (svcs.length !== 1) fail(id(sm), `selector matches ${svcs.length} Services (want 1)`);
    for (const ep of sm.spec.endpoints)
      for (const svc of svcs) if (!svc.spec.ports.some((p) => p.name === ep.port)) fail(id(sm), `${id(svc)} has no port named ${ep.port}`);
    for (const svc of svcs) {
      const job = svc.metadata.labels?.[sm.spec.jobLabel];
      if (job !== "pgfailover") fail(id(sm), `job label would be ${JSON.stringify(job)}; monitoring/alerts.yml expects up{job="pgfailover"}`);
    }
  }
}

// The chart's security settings, per component (app.kubernetes.io/component).
function checkSecurity(objects) {
  const baseline = new Set(["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]);
  for (const p of podTemplates(objects)) {
    const where = id(p.owner);
    const component = p.labels["app.kubernetes.io/component"];
    if (p.spec.automountServiceAccountToken !== false) fail(where, "automountServiceAccountToken must be false (no pod uses the API)");
    if (p.spec.hostNetwork || p.spec.hostPID || p.spec.hostIPC) fail(where, "host namespaces");
    for (const c of p.spec.containers) {
      const sc = c.securityContext ?? {};
      const drop = sc.capabilities?.drop ?? [];
      if (!drop.includes("ALL")) fail(where, `${c.name}: capabilities.drop must include ALL`);
      if (sc.allowPrivilegeEscalation !== false) fail(where, `${c.name}: allowPrivilegeEscalation must be false`);
      if (sc.privileged) fail(where, `${c.name}: privileged`);
      for (const cap of sc.capabilities?.add ?? []) if (!baseline.has(cap)) fail(where, `${c.name}: capability ${cap} is beyond the baseline Pod Security Standard`);
      if (!c.resources?.limits?.memory) fail(where, `${c.name}: no memory limit`);
      if (component !== "postgres") {
        const runAsNonRoot = sc.runAsNonRoot ?? p.spec.securityContext?.runAsNonRoot;
        const uid = sc.runAsUser ?? p.spec.securityContext?.runAsUser;
        if (runAsNonRoot !== true || !(uid > 0)) fail(where, `${c.name}: must run as a non-root numeric user (runAsNonRoot, runAsUser)`);
        if (sc.readOnlyRootFilesystem !== true) fail(where, `${c.name}: readOnlyRootFilesystem must be true`);
        if (sc.capabilities?.add?.length) fail(where, `${c.name}: adds capabilities`);
      }
      if (component === "postgres" && p.spec.securityContext?.fsGroup !== undefined)
        fail(where, "fsGroup on the PostgreSQL pods would make the data directory group-writable, which PostgreSQL refuses");
    }
  }
  const dep = objects.find((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === "pgfailover");
  if (!dep) fail("pgfailover", "no pgfailover Deployment");
  else if (!pgfailoverConfig(objects).etcd) {
    if (dep.spec.replicas !== 1) fail(id(dep), "pgfailover without etcd must run exactly one replica");
    if (dep.spec.strategy?.type !== "Recreate") fail(id(dep), "strategy must be Recreate: two uncoordinated pgfailovers must never run at once");
  }
  if (dep) {
    const c = dep.spec.template.spec.containers[0];
    if (c.livenessProbe?.httpGet?.path !== "/healthz") fail(id(dep), "liveness probe must be /healthz");
    if (c.readinessProbe?.httpGet?.path !== "/readyz") fail(id(dep), "readiness probe must be /readyz");
  }
  const sts = objects.find((o) => o.kind === "StatefulSet");
  if (!sts || sts.spec.replicas !== 2) fail("postgres", "a StatefulSet of two PostgreSQL pods is expected");
  const headless = sts && find(objects, "Service", sts.spec.serviceName);
  if (headless && headless.spec.publishNotReadyAddresses !== true)
    fail(id(headless), "publishNotReadyAddresses must be true: pgfailover must reach a node whose PostgreSQL is down");
}

// NetworkPolicy semantics: who reaches PostgreSQL's and sshd's ports.
// Who may reach `port` of the pods `policy` selects: component names of the chart's pods,
// "name=<app.kubernetes.io/name>" (plus "@any-namespace" with an empty namespaceSelector),
// "*" for everyone, else the peer as JSON.
function peersOf(policy, port) {
  const who = new Set();
  for (const rule of policy.spec.ingress ?? []) {
    if (!(rule.ports ?? []).some((p) => p.port === port)) continue;
    if (!rule.from || rule.from.length === 0) who.add("*");
    for (const peer of rule.from ?? []) {
      const labels = peer.podSelector?.matchLabels ?? {};
      if (labels["app.kubernetes.io/component"] && !peer.namespaceSelector) who.add(labels["app.kubernetes.io/component"]);
      else if (labels["app.kubernetes.io/name"] && Object.keys(labels).length === 1)
        who.add(`name=${labels["app.kubernetes.io/name"]}${peer.namespaceSelector && Object.keys(peer.namespaceSelector).length === 0 ? "@any-namespace" : ""}`);
      else who.add(JSON.stringify(peer));
    }
  }
  return who;
}

function cmdNetpolDefault(file) {
  const objects = loadRender(file);
  const nps = objects.filter((o) => o.kind === "NetworkPolicy");
  const policy = (c) => nps.find((np) => np.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === c);
  const expect = (c, port, wanted) => {
    const p = policy(c);
    if (!p) return fail("NetworkPolicy", `none selects the ${c} pods`);
    const got = [...peersOf(p, port)].sort();
    if (!isDeepStrictEqual(got, [...wanted].sort())) fail(id(p), `port ${port} reachable from ${got.join(", ")}; expected ${wanted.join(", ")}`);
  };
  expect("pgfailover", 8008, ["haproxy", "postgres", "test", "name=prometheus@any-namespace"]);
  expect("haproxy", 8404, ["name=prometheus@any-namespace"]);
  finish("default NetworkPolicies: 8008 from HAProxy, the nodes, the test pod and Prometheus; 8404 from Prometheus");
}

function cmdTls(file) {
  const crypto = require("node:crypto");
  const objects = loadRender(file);
  const config = JSON.parse(objects.find((o) => o.kind === "ConfigMap" && o.data?.["pgfailover.json"]).data["pgfailover.json"]);
  for (const [i, n] of config.nodes.entries()) {
    if (n.sslmode !== "verify-full") fail("pgfailover.json", `nodes[${i}].sslmode is ${n.sslmode}, not verify-full`);
    for (const k of ["sslrootcert", "sslcert", "sslkey"]) if (!n[k]) fail("pgfailover.json", `nodes[${i}].${k} is not set`);
  }
  if (config.replication?.sslmode !== "verify-full" || !config.replication?.sslrootcert)
    fail("pgfailover.json", `replication connections do not verify the primary: ${JSON.stringify(config.replication)}`);
  const secret = objects.find((o) => o.kind === "Secret" && o.metadata.name.endsWith("-tls"));
  if (!secret) fail("Secret", "no TLS Secret rendered");
  else {
    const ca = new crypto.X509Certificate(decode(secret.data["ca.crt"]));
    const client = new crypto.X509Certificate(decode(secret.data["client.crt"]));
    const key = crypto.createPrivateKey(decode(secret.data["client.key"]));
    if (!ca.ca) fail(id(secret), "ca.crt is not a CA certificate");
    if (!client.verify(ca.publicKey)) fail(id(secret), "client.crt is not signed by ca.crt");
    if (!client.checkPrivateKey(key)) fail(id(secret), "client.key does not match client.crt");
    if (!client.subject.split("\n").includes(`CN=${config.nodes[0].user}`))
      fail(id(secret), `client.crt's subject (${client.subject}) does not name the superuser ${config.nodes[0].user}`);
    if (!crypto.createPrivateKey(decode(secret.data["ca.key"])))
      fail(id(secret), "ca.key is not a private key");
  }
  const sts = objects.find((o) => o.kind === "StatefulSet");
  const c = sts.spec.template.spec.containers[0];
  if (!(c.env ?? []).some((e) => e.name === "NODE_SUPERUSER_CLIENTCERT" && e.value === "1"))
    fail(id(sts), "the nodes do not require pgfailover's client certificate (NODE_SUPERUSER_CLIENTCERT)");
  const items = sts.spec.template.spec.volumes.find((v) => v.name === "secrets").projected.sources
    .flatMap((src) => (src.secret && src.secret.name === secret?.metadata.name ? src.secret.items : [])).map((it) => it.path).sort();
  if (!isDeepStrictEqual(items, ["ca/ca.crt", "ca/ca.key"])) fail(id(sts), `the nodes get ${items.join(", ")} of the TLS Secret, not ca/ca.crt and ca/ca.key`);
  finish("TLS: verify-full with the chart's CA, a client certificate for the superuser, the CA on the nodes");
}

function cmdNodeEnv(file) {
  const sts = loadRender(file).find((o) => o.kind === "StatefulSet");
  for (const e of sts.spec.template.spec.containers[0].env ?? []) if (typeof e.value === "string") console.log(`${e.name}=${e.value}`);
}

function checkNetworkPolicy(objects) {
  const nps = objects.filter((o) => o.kind === "NetworkPolicy");
  if (!nps.length) return;
  const comp = (c) => ({ "app.kubernetes.io/component": c });
  const pgPolicy = nps.find((np) => matches(comp("postgres"), np.spec.podSelector.matchLabels));
  if (!pgPolicy) return fail("NetworkPolicy", "none selects the PostgreSQL pods");
  const allowed = (port) => {
    const who = new Set();
    for (const rule of pgPolicy.spec.ingress ?? []) {
      if (!(rule.ports ?? []).some((p) => p.port === port)) continue;
      if (!rule.from) who.add("*");
      for (const peer of rule.from ?? []) who.add(peer.podSelector?.matchLabels?.["app.kubernetes.io/component"] ?? JSON.stringify(peer));
    }
    return who;
  };
  // pgfailover's API and HAProxy's statistics page are never open to every pod.
  for (const [component, port] of [["pgfailover", 8008], ["haproxy", 8404]]) {
    const policy = nps.find((np) => matches(comp(component), np.spec.podSelector.matchLabels));
    if (!policy) {
      fail("NetworkPolicy", `none selects the ${component} pods`);
      continue;
    }
    const who = peersOf(policy, port);
    if (who.has("*")) fail(id(policy), `${component}'s port ${port} is open to every pod`);
    if (component === "pgfailover" && !who.has("haproxy")) fail(id(policy), "HAProxy cannot reach pgfailover's checks (8008)");
  }
  const ssh = [...allowed(22)];
  if (ssh.length !== 1 || ssh[0] !== "pgfailover") fail(id(pgPolicy), `sshd (22) must be reachable from pgfailover only, got ${ssh.join(", ")}`);
  const pg = allowed(5432);
  for (const c of ["pgfailover", "haproxy", "postgres"]) if (!pg.has(c)) fail(id(pgPolicy), `PostgreSQL (5432) must be reachable from ${c}`);
  if (pg.has("*")) fail(id(pgPolicy), "PostgreSQL (5432) is open to everyone");
}

// ----- several pgfailover instances (etcd) ------------------------------------------------------

// `single`: exactly the one-instance shape (one pod, Recreate, a state file on its own volume, no
// etcd section, no PDB, no anti-affinity among instances). `several VALUES.yaml REPLICAS ANTI`:
// the instances coordinated through etcd as VALUES.yaml's etcd.* asks.
function cmdInstances(file, mode, valuesFile, replicas, anti) {
  const objects = loadRender(file);
  const component = (o, c) => o.metadata.labels?.["app.kubernetes.io/component"] === c;
  const dep = objects.find((o) => o.kind === "Deployment" && component(o, "pgfailover"));
  if (!dep) return finish(fail("pgfailover", "no Deployment") ?? "instances");
  const spec = dep.spec.template.spec;
  const c = spec.containers[0];
  const config = pgfailoverConfig(objects);
  const pdb = objects.find((o) => o.kind === "PodDisruptionBudget" && component(o, "pgfailover"));
  const selfTerm = (t) => t.topologyKey === "kubernetes.io/hostname" && isDeepStrictEqual(t.labelSelector?.matchLabels, dep.spec.selector.matchLabels);
  const aa = spec.affinity?.podAntiAffinity ?? {};
  const required = (aa.requiredDuringSchedulingIgnoredDuringExecution ?? []).some(selfTerm);
  const preferred = (aa.preferredDuringSchedulingIgnoredDuringExecution ?? []).some((w) => selfTerm(w.podAffinityTerm));
  const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  // The mount and projected item (Secret name, key) a configured file comes from.
  const source = (filePath) => {
    const m = (c.volumeMounts ?? []).find((x) => filePath.startsWith(x.mountPath + "/"));
    if (!m) return null;
    const rel = filePath.slice(m.mountPath.length + 1);
    for (const src of volumes.get(m.name)?.projected?.sources ?? []) {
      const ref = src.secret ?? src.configMap;
      const item = (ref.items ?? []).find((it) => it.path === rel);
      if (item) return { kind: src.secret ? "Secret" : "ConfigMap", name: ref.name, key: item.key };
    }
    return { volume: m.name };
  };
  if (spec.hostname || spec.subdomain || spec.setHostnameAsFQDN)
    fail(id(dep), "the pod sets its host name: pgfailover's default etcd.name (the host name) would no longer be the pod name");

  if (mode === "single") {
    if (dep.spec.replicas !== 1) fail(id(dep), `replicas ${dep.spec.replicas}, want 1`);
    if (dep.spec.strategy?.type !== "Recreate") fail(id(dep), `strategy ${dep.spec.strategy?.type}, want Recreate`);
    if (dep.metadata.annotations?.["pgfailover/coordination"]) fail(id(dep), "marked as coordinated");
    if (pdb) fail(id(pdb), "a single pgfailover must have no PodDisruptionBudget (it would block every drain)");
    if ("etcd" in config) fail("pgfailover.json", `has an etcd section: ${JSON.stringify(config.etcd)}`);
    if (!config.state_file) fail("pgfailover.json", "no state_file");
    else if (source(config.state_file)?.volume !== "state") fail(id(dep), `state_file ${config.state_file} is not on the state volume`);
    if (required || preferred) fail(id(dep), "anti-affinity among pgfailover pods with a single one");
    return finish(`one pgfailover: 1 replica, Recreate, state file on its volume, no etcd section, no PDB`);
  }

  const values = YAML.parse(fs.readFileSync(valuesFile, "utf8"));
  const e = values.etcd;
  const want = Number(replicas);
  if (dep.spec.replicas !== want) fail(id(dep), `replicas ${dep.spec.replicas}, want ${want}`);
  // One at a time: with several, one stops while the others watch (no surge pod that required
  // anti-affinity could leave unschedulable); a lone one is replaced by a ready one first.
  const ru = dep.spec.strategy?.rollingUpdate;
  const [surge, unavailable] = want > 1 ? [0, 1] : [1, 0];
  if (dep.spec.strategy?.type !== "RollingUpdate" || ru?.maxUnavailable !== unavailable || ru?.maxSurge !== surge)
    fail(id(dep), `strategy ${JSON.stringify(dep.spec.strategy)}: want RollingUpdate, maxSurge ${surge}, maxUnavailable ${unavailable}`);
  if (dep.metadata.annotations?.["pgfailover/coordination"] !== "etcd") fail(id(dep), "not annotated pgfailover/coordination: etcd");
  if (want > 1 && anti === "hard" && !required) fail(id(dep), "no required anti-affinity among the pgfailover pods (kubernetes.io/hostname)");
  if (want > 1 && anti === "soft" && !preferred) fail(id(dep), "no preferred anti-affinity among the pgfailover pods (kubernetes.io/hostname)");
  if ((want === 1 || anti === "soft") && required) fail(id(dep), "required anti-affinity among the pgfailover pods where none or preferred was asked");
  if (want === 1) {
    if (pdb) fail(id(pdb), "a PodDisruptionBudget for a single pgfailover would block every drain");
  } else if (!pdb) fail("PodDisruptionBudget", "none for the pgfailover pods");
  else {
    if (!matches(pdb.spec.selector.matchLabels, dep.spec.template.metadata.labels)) fail(id(pdb), "does not select the pgfailover pods");
    if (pdb.spec.maxUnavailable !== 1 || pdb.spec.minAvailable !== undefined) fail(id(pdb), `want maxUnavailable 1, got ${JSON.stringify(pdb.spec)}`);
  }
  // The API Service keeps selecting every instance: each answers the health and role checks.
  const svc = objects.find((o) => o.kind === "Service" && component(o, "pgfailover"));
  if (!svc || !matches(svc.spec.selector, dep.spec.template.metadata.labels) || Object.keys(svc.spec.selector).some((k) => !(k in dep.spec.selector.matchLabels)))
    fail(id(svc ?? dep), "the API Service does not select all pgfailover pods alike");
  const np = objects.find((o) => o.kind === "NetworkPolicy" && component(o, "pgfailover"));
  if (want > 1 && np && !peersOf(np, 8008).has("pgfailover")) fail(id(np), "the pgfailover instances cannot reach each other's API (8008): an admin request redirected to the acting one would fail");

  const ec = config.etcd;
  if (!ec) return finish(fail("pgfailover.json", "no etcd section") ?? "instances");
  if ("state_file" in config) fail("pgfailover.json", `state_file ${config.state_file} with etcd: the state lives in etcd`);
  if (volumes.has("state") || objects.some((o) => o.kind === "PersistentVolumeClaim")) fail(id(dep), "a state volume with etcd");
  if ("name" in ec) fail("pgfailover.json", `etcd.name ${ec.name} is the same for every pod; it must be left to each pod's host name`);
  const expect = (k, got, wanted) => {
    if (!isDeepStrictEqual(got, wanted)) fail("pgfailover.json", `etcd.${k} is ${JSON.stringify(got)}, want ${JSON.stringify(wanted)}`);
  };
  expect("endpoints", ec.endpoints, e.endpoints);
  expect("prefix", ec.prefix, e.prefix || undefined);
  expect("lease_ttl_ms", ec.lease_ttl_ms, e.leaseTtlMs ?? 5000);
  expect("request_timeout_ms", ec.request_timeout_ms, e.requestTimeoutMs ?? 1000);
  expect("user", ec.user, e.user || undefined);
  const tlsSecret = e.tls?.existingSecret;
  const client = tlsSecret && e.tls?.clientCertificate !== false;
  const files = [
    ["tls.ca_file", ec.tls?.ca_file, tlsSecret, "ca.crt"],
    ["tls.cert_file", ec.tls?.cert_file, client && tlsSecret, "tls.crt"],
    ["tls.key_file", ec.tls?.key_file, client && tlsSecret, "tls.key"],
    ["password_file", ec.password_file, e.user && e.password?.existingSecret, e.password?.secretKey ?? "password"],
  ];
  for (const [k, file, secret, key] of files) {
    if (!secret) {
      if (file) fail("pgfailover.json", `etcd.${k} is ${file}, but the values ask for none`);
      continue;
    }
    const src = file && source(file);
    if (!src || src.kind !== "Secret" || src.name !== secret || src.key !== key)
      fail(id(dep), `etcd.${k} (${file}) is not mounted from Secret ${secret} key ${key}: ${JSON.stringify(src)}`);
  }
  // No secret in the environment, the arguments or the ConfigMap.
  const secretNames = new Set([tlsSecret, e.password?.existingSecret].filter(Boolean));
  for (const x of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (x.envFrom?.length) fail(id(dep), `${x.name}: envFrom`);
    for (const v of x.env ?? []) if (v.valueFrom?.secretKeyRef) fail(id(dep), `${x.name}: env ${v.name} from Secret ${v.valueFrom.secretKeyRef.name}`);
    const argv = [...(x.command ?? []), ...(x.args ?? [])].join(" ");
    if (/password|secret|token|BEGIN/i.test(argv)) fail(id(dep), `${x.name}: argv names a secret: ${argv}`);
  }
  const cmText = JSON.stringify(objects.filter((o) => o.kind === "ConfigMap").map((o) => o.data));
  if ("password" in ec || /"password"\s*:/.test(cmText)) fail("ConfigMap", "holds a password");
  for (const s of objects.filter((o) => o.kind === "Secret"))
    for (const [k, v] of Object.entries(s.data ?? {})) if (decode(v).length >= 8 && cmText.includes(JSON.stringify(decode(v)).slice(1, -1))) fail("ConfigMap", `holds ${id(s)} key ${k}`);
  for (const name of secretNames) if (objects.some((o) => o.kind === "Secret" && o.metadata.name === name)) fail(name, "the chart renders the user's own etcd Secret");
  finish(`${want} pgfailover instance(s) through etcd: RollingUpdate one at a time${want > 1 ? `, ${anti} anti-affinity, PDB maxUnavailable 1` : ""}, etcd section with its Secrets as files, no state file`);
}

// ----- commands -------------------------------------------------------------------------------

async function cmdObjects(file, args) {
  const external = new Map();
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--external-secret") {
      const [name, keys] = args[++i].split("=");
      external.set(name, new Set(keys.split(",")));
    } else if (args[i] === "--external-serviceaccount") {
      externalServiceAccounts.add(args[++i]);
    }
  }
  const objects = loadRender(file);
  const kinds = await validateSchemas(objects);
  checkReferences(objects, external);
  checkSecurity(objects);
  checkNetworkPolicy(objects);
  const summary = [...kinds.entries()].map(([k, n]) => `${n} ${k.split("/").pop()}`).join(", ");
  finish(`${objects.length} objects (${summary})`);
}

// The pgfailover container's files, from the rendered objects.
function cmdMaterialize(file, root, out) {
  const objects = loadRender(file);
  const dep = objects.find((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === "pgfailover");
  const spec = dep.spec.template.spec;
  const c = spec.containers[0];
  const volumes = new Map(spec.volumes.map((v) => [v.name, v]));
  const mounts = [];
  let configPath = null;
  for (const m of c.volumeMounts) {
    const v = volumes.get(m.name);
    const dir = path.join(root, m.mountPath);
    fs.mkdirSync(dir, { recursive: true });
    mounts.push({ path: m.mountPath, readOnly: !!m.readOnly, volume: v });
    for (const src of v.projected?.sources ?? []) {
      const ref = src.configMap ?? src.secret;
      const obj = find(objects, src.configMap ? "ConfigMap" : "Secret", ref.name);
      for (const item of ref.items) {
        let content;
        if (obj) content = src.secret ? decode(obj.data[item.key]) : obj.data[item.key];
        else content = `placeholder-for-existing-secret-${ref.name}-${item.key}-0123456789\n`;
        const target = path.join(dir, item.path);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, content, { mode: 0o600 });
        if (item.path.endsWith("pgfailover.json")) configPath = path.join(m.mountPath, item.path);
      }
    }
  }
  const args = c.args ?? [];
  const i = args.indexOf("--config");
  if (i < 0 || args[i + 1] !== configPath) fail(id(dep), `runs with ${JSON.stringify(args)} but the configuration is mounted at ${configPath}`);
  const config = JSON.parse(fs.readFileSync(path.join(root, configPath), "utf8"));
  // Every absolute path in the configuration must lie in a mount; reroot it under ROOT.
  const reroot = (value, where) => {
    if (typeof value === "string" && value.startsWith("/")) {
      const m = mounts.find((x) => value.startsWith(x.path + "/"));
      if (!m) {
        fail("pgfailover.json", `${where} = ${value} is in no volume of the pgfailover container`);
        return value;
      }
      if (where.endsWith("state_file") && (m.readOnly || m.volume.projected))
        fail("pgfailover.json", `${where} = ${value} is on a read-only volume`);
      return path.join(root, value);
    }
    if (Array.isArray(value)) return value.map((x, j) => reroot(x, `${where}[${j}]`));
    if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, x]) => [k, reroot(x, where ? `${where}.${k}` : k)]));
    return value;
  };
  // Paths that name files on the nodes, not in this container, stay as they are.
  const nodeSide = new Set(["data_dir", "bin_dir", "passfile", "start_command"]);
  // A command run in the container (its program comes with the image), not a mounted file.
  const commands = new Set(["fencing_hook"]);
  const rerooted = {};
  for (const [k, v] of Object.entries(config)) {
    if (k === "nodes") rerooted.nodes = v.map((n, j) => Object.fromEntries(Object.entries(n).map(([nk, nv]) => [nk, nodeSide.has(nk) ? nv : reroot(nv, `nodes[${j}].${nk}`)])));
    else if (k === "replication") rerooted.replication = v;
    // etcd's key prefix ("/pgfailover/main") is a key in etcd, not a file.
    else if (k === "etcd") rerooted.etcd = Object.fromEntries(Object.entries(v).map(([ek, ev]) => [ek, ek === "prefix" ? ev : reroot(ev, `etcd.${ek}`)]));
    else if (k === "failover") rerooted.failover = Object.fromEntries(Object.entries(v).map(([fk, fv]) => [fk, commands.has(fk) ? fv : reroot(fv, `failover.${fk}`)]));
    else rerooted[k] = reroot(v, k);
  }
  fs.writeFileSync(out, JSON.stringify(rerooted, null, 2));
  finish(`materialized pgfailover's files under ${root}`);
}

function cmdRules(file, alertsFile) {
  const objects = loadRender(file);
  const rule = objects.find((o) => o.kind === "PrometheusRule");
  if (!rule) return finish(fail("PrometheusRule", "not rendered") ?? "rules");
  const expected = YAML.parse(fs.readFileSync(alertsFile, "utf8"));
  if (!isDeepStrictEqual(rule.spec.groups, expected.groups)) {
    fail(id(rule), `spec.groups differ from ${alertsFile}`);
  }
  const n = expected.groups.reduce((a, g) => a + g.rules.length, 0);
  finish(`PrometheusRule == ${path.basename(alertsFile)} (${expected.groups.length} group(s), ${n} rules)`);
}

function cmdDashboards(file, dir) {
  const objects = loadRender(file);
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1");
  if (!cm) return finish(fail("dashboard", "no ConfigMap labelled grafana_dashboard=1") ?? "dashboards");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
  const keys = Object.keys(cm.data ?? {}).sort();
  if (!isDeepStrictEqual(files, keys)) fail(id(cm), `keys ${keys} != files ${files}`);
  for (const f of files) {
    const bytes = fs.readFileSync(path.join(dir, f), "utf8");
    if (cm.data[f] !== bytes) fail(id(cm), `${f} differs from ${path.join(dir, f)}`);
    try {
      JSON.parse(cm.data[f] ?? "");
    } catch (e) {
      fail(id(cm), `${f} is not JSON: ${e.message}`);
    }
  }
  finish(`dashboard ConfigMap == ${files.join(", ")} (byte for byte)`);
}

function cmdSsh(file, outDir) {
  const objects = loadRender(file);
  fs.mkdirSync(outDir, { recursive: true });
  const cmData = (name) => objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith(name))?.data;
  const pub = cmData("-ssh-public");
  const secret = objects.find((o) => o.kind === "Secret" && o.metadata.name.endsWith("-ssh"));
  const config = JSON.parse(objects.find((o) => o.kind === "ConfigMap" && o.data?.["pgfailover.json"]).data["pgfailover.json"]);
  const sts = objects.find((o) => o.kind === "StatefulSet");
  const write = (name, content) => fs.writeFileSync(path.join(outDir, name), content, { mode: 0o600 });
  write("known_hosts", pub.known_hosts);
  write("authorized_keys", pub.authorized_keys);
  const secretItems = sts.spec.template.spec.volumes.find((v) => v.name === "secrets").projected.sources.find((s) => s.secret && s.secret.name === secret.metadata.name).secret.items;
  // pgfailover's key: the Secret item mounted where private_key_file points.
  const dep = objects.find((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === "pgfailover");
  const mount = dep.spec.template.spec.containers[0].volumeMounts.find((m) => config.nodes[0].ssh.private_key_file.startsWith(m.mountPath + "/"));
  const rel = config.nodes[0].ssh.private_key_file.slice(mount.mountPath.length + 1);
  const volume = dep.spec.template.spec.volumes.find((v) => v.name === mount.name);
  const item = volume.projected.sources.flatMap((s) => (s.secret && s.secret.name === secret.metadata.name ? s.secret.items : [])).find((it) => it.path === rel);
  if (!item) fail("ssh", `private_key_file ${config.nodes[0].ssh.private_key_file} is not the ssh Secret's key`);
  else write("private_key", decode(secret.data[item.key]));
  const lines = [];
  config.nodes.forEach((n, i) => {
    const item = secretItems.find((it) => it.path.startsWith(`${n.name}/`));
    if (!item) fail("ssh", `no host key is mounted for node ${n.name}`);
    else write(`host_key_${i}`, decode(secret.data[item.key]));
    lines.push(`${n.name} ${n.ssh.host} ${n.ssh.port}`);
  });
  write("nodes.txt", lines.join("\n") + "\n");
  finish(`ssh material of ${config.nodes.length} nodes written to ${outDir}`);
}

// NOTES.txt as rendered into the ConfigMap "notes-under-test" of a copy of the chart (helm
// template does not render NOTES.txt itself).
function cmdNotes(file) {
  const objects = loadRender(file);
  const holder = find(objects, "ConfigMap", "notes-under-test");
  if (!holder) throw new Error(`${file} has no ConfigMap notes-under-test`);
  const notes = holder.data["NOTES.txt"];
  for (const s of objects.filter((o) => o.kind === "Secret"))
    for (const [k, v] of Object.entries(s.data ?? {})) {
      const plain = decode(v);
      for (const line of plain.split("\n").filter((l) => l.trim().length >= 8))
        if (notes.includes(line.trim())) fail("NOTES.txt", `prints the value of ${id(s)} key ${k}`);
      if (notes.includes(v)) fail("NOTES.txt", `prints ${id(s)} key ${k} (base64)`);
    }
  if (/BEGIN [A-Z ]*PRIVATE KEY/.test(notes)) fail("NOTES.txt", "prints a private key");
  for (const must of ["port-forward", "pgfailover status --url http://127.0.0.1:8008", "/metrics"])
    if (!notes.includes(must)) fail("NOTES.txt", `does not say "${must}"`);
  finish(`NOTES.txt (${notes.split("\n").length} lines) names no secret value`);
}

// The etcd section is the chart's, from the etcd.* values: every key pgfailover reports for it
// is either set from one of them or left to pgfailover's default on purpose (and said why).
const etcdKeys = {
  name: { left: "each pod's host name, which is its pod name (the ConfigMap is the same for all pods)" },
  api_url: { left: "the pod IP and HTTP port, where other pods reach this very instance" },
  password: { left: "read from password_file" },
  endpoints: { value: "endpoints" },
  prefix: { value: "prefix" },
  lease_ttl_ms: { value: "leaseTtlMs" },
  request_timeout_ms: { value: "requestTimeoutMs" },
  tls: { value: "tls", keys: { ca_file: "existingSecret", cert_file: "clientCertificate", key_file: "clientCertificate" } },
  user: { value: "user" },
  password_file: { value: "password" },
};

function cmdSchemaKeys(schemaFile, effectiveFile, effectiveEtcdFile) {
  const schema = JSON.parse(fs.readFileSync(schemaFile, "utf8"));
  const effective = JSON.parse(fs.readFileSync(effectiveFile, "utf8"));
  if (effectiveEtcdFile) {
    const etcd = JSON.parse(fs.readFileSync(effectiveEtcdFile, "utf8")).etcd;
    const values = schema.properties.etcd?.properties;
    if (!etcd) fail("schema", `${effectiveEtcdFile} has no etcd section`);
    else if (!values) fail("schema", "values.schema.json has no etcd");
    else
      for (const [key, v] of Object.entries(etcd)) {
        const known = etcdKeys[key];
        if (!known) fail("schema", `pgfailover's etcd.${key} is neither set from an etcd.* value nor left to its default on purpose (etcdKeys in validate.mjs)`);
        else if (known.value && !values[known.value]) fail("schema", `pgfailover's etcd.${key} comes from etcd.${known.value}, which values.schema.json lacks`);
        else if (known.keys)
          for (const sub of Object.keys(v ?? {})) {
            if (!known.keys[sub]) fail("schema", `pgfailover's etcd.${key}.${sub} is not set from any etcd.${known.value}.* value`);
            else if (!values[known.value].properties?.[known.keys[sub]]) fail("schema", `etcd.${known.value}.${known.keys[sub]} is missing from values.schema.json`);
          }
      }
  }
  const config = schema.properties.config.properties;
  // Keys the chart sets itself, not through values.config.
  const chartOwned = new Set(["replication.user", "replication.passfile", "replication.sslmode", "replication.sslrootcert"]);
  for (const section of ["probe", "failover", "replication", "synchronous", "log"]) {
    if (!(section in effective)) {
      if (config[section]) fail("schema", `config.${section} is in the schema but pgfailover reports no such section`);
      continue;
    }
    if (!config[section]) {
      fail("schema", `pgfailover has a section "${section}" the chart cannot set (add config.${section} to values.schema.json)`);
      continue;
    }
    for (const key of Object.keys(effective[section])) {
      if (chartOwned.has(`${section}.${key}`)) continue;
      if (!config[section].properties[key]) fail("schema", `pgfailover's ${section}.${key} is missing from config.${section} in values.schema.json`);
    }
  }
  for (const section of Object.keys(effective)) {
    if (!["cluster_name", "nodes", "http", "admin", "state_file", "etcd"].includes(section) && !config[section])
      fail("schema", `pgfailover's top-level "${section}" is neither set by the chart nor in config.* of the schema`);
  }
  finish("values.schema.json covers every key pgfailover reports");
}

function cmdDefaults(chartFile, minimalFile) {
  const chart = JSON.parse(fs.readFileSync(chartFile, "utf8"));
  const minimal = JSON.parse(fs.readFileSync(minimalFile, "utf8"));
  // Deliberate differences in a cluster: JSON logs for log collectors.
  const chosen = new Set(["log.format"]);
  for (const section of ["probe", "failover", "synchronous", "log"]) {
    for (const [k, v] of Object.entries(minimal[section] ?? {})) {
      if (chosen.has(`${section}.${k}`)) continue;
      if (!isDeepStrictEqual(chart[section]?.[k], v))
        fail("values.yaml", `config.${section}.${k} gives ${JSON.stringify(chart[section]?.[k])}, pgfailover's default is ${JSON.stringify(v)}`);
    }
  }
  for (const k of ["slots", "slot_drop_after_ms"])
    if (!isDeepStrictEqual(chart.replication?.[k], minimal.replication?.[k]))
      fail("values.yaml", `config.replication.${k} gives ${JSON.stringify(chart.replication?.[k])}, pgfailover's default is ${JSON.stringify(minimal.replication?.[k])}`);
  finish("the chart's default config values are pgfailover's own defaults");
}

const [cmd, ...rest] = process.argv.slice(2);
try {
  switch (cmd) {
    case "objects": await cmdObjects(rest[0], rest.slice(1)); break;
    case "materialize": cmdMaterialize(rest[0], rest[1], rest[2]); break;
    case "rules": cmdRules(rest[0], rest[1]); break;
    case "dashboards": cmdDashboards(rest[0], rest[1]); break;
    case "ssh": cmdSsh(rest[0], rest[1]); break;
    case "notes": cmdNotes(rest[0]); break;
    case "schema-keys": cmdSchemaKeys(rest[0], rest[1], rest[2]); break;
    case "defaults": cmdDefaults(rest[0], rest[1]); break;
    case "netpol-default": cmdNetpolDefault(rest[0]); break;
    case "tls": cmdTls(rest[0]); break;
    case "node-env": cmdNodeEnv(rest[0]); break;
    case "instances": cmdInstances(...rest); break;
    default:
      console.error(`validate.mjs: unknown command ${cmd}`);
      process.exit(2);
  }
} catch (e) {
  console.log(`  FAIL ${e.stack ?? e}`);
  process.exit(1);
}
