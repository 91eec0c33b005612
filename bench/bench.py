#!/usr/bin/python3
"""pgfailover benchmarks against Patroni and pg_auto_failover. Usage: bench/run [--quick] [--runs N] [PART...]

Parts: failover rejoin footprint http (and report, which only regenerates docs/benchmarks.md).
Raw results go to bench/results/<part>.json; docs/benchmarks.md is regenerated from every
results file present. Nothing here asserts on timings: a part fails only when something is
broken (a cluster does not come up, a tool is missing, no failover happens at all).
Processes are stopped by the PID this script started or read from a pid file, never by name.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
# BENCH_WORK / BENCH_RESULTS / BENCH_DOC / BENCH_PORT_BASE let a trial run beside a real one.
WORK = os.environ.get("BENCH_WORK", os.path.join(BENCH, ".work"))
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(BENCH, "results"))
DOC = os.environ.get("BENCH_DOC", os.path.join(REPO, "docs", "benchmarks.md"))
IMG = os.environ.get("BENCH_IMG", os.path.join(REPO, "docs", "img"))
PGBIN = "/usr/lib/postgresql/15/bin"
BUILD_DIR = os.path.join(REPO, "build-bench")
PGF_BIN = os.environ.get("PGFAILOVER_BIN", os.path.join(BUILD_DIR, "pgfailover"))
PACKAGES = ["wrk", "gnuplot-nox", "patroni", "etcd-server", "python3-etcd", "python3-psycopg2",
            "postgresql-15-auto-failover", "pg-auto-failover-cli", "jq", "postgresql-15", "postgresql-client-15"]

# Ports (loopback only), away from the lab's defaults (6432/6433/8008).
PB = int(os.environ.get("BENCH_PORT_BASE", "26000"))
PGF_PORTS = (PB + 432, PB + 433)
PGF_HTTP = PB + 8
PAT_PORTS = (PB + 532, PB + 533)
PAT_REST = (PB + 108, PB + 109)
ETCD_PORTS = (PB + 379, PB + 380)
PAF_MONITOR_PORT = PB + 632
PAF_PORTS = (PB + 633, PB + 634)
ALL_PORTS = (PGF_HTTP, *PAT_REST, *ETCD_PORTS, *PGF_PORTS, *PAT_PORTS, PAF_MONITOR_PORT, *PAF_PORTS)

STARTED = []  # Popen objects we started; stopped by PID at exit
PROVENANCE = {}  # what the pgfailover binary was built from


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, check=True, env=None, capture=True, timeout=None, **kw):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), env=env, timeout=timeout,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.STDOUT if capture else None, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{(r.stdout or '')[-3000:]}")
    return r


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "mem_mb": mem, "kernel": os.uname().release, "cpu": model,
            "load": loadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def port_free(port):
    r = sh(["ss", "-Hltn", f"sport = :{port}"], check=False)
    return not r.stdout.strip()


def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return {"runs": 0, "median": None, "min": None, "max": None}
    return {"runs": len(v), "median": statistics.median(v), "min": min(v), "max": max(v)}


def save(part, data):
    os.makedirs(RESULTS, exist_ok=True)
    data["machine"] = machine()
    data["pgfailover_build"] = PROVENANCE
    with open(os.path.join(RESULTS, f"{part}.json"), "w") as f:
        json.dump(data, f, indent=1)


def http_get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except Exception:  # noqa: BLE001
        return None, ""


def wait_for(pred, timeout, what, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception:  # noqa: BLE001
            pass
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def proc_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid, grace=10):
    """SIGTERM a PID we started, SIGKILL after grace seconds."""
    if not proc_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace
    while time.time() < deadline and proc_alive(pid):
        time.sleep(0.1)
    if proc_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cleanup_started():
    for p in reversed(STARTED):
        if p.poll() is None:
            stop_pid(p.pid)
            try:
                p.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass
    STARTED.clear()


def postmaster_pid(data_dir):
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            pid = int(f.readline())
    except (OSError, ValueError):
        return None
    try:
        if os.readlink(f"/proc/{pid}/cwd") != os.path.realpath(data_dir):
            return None
    except OSError:
        return None
    return pid if proc_alive(pid) else None


def proc_cpu_rss(pid):
    """(utime+stime seconds, VmRSS kB) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().split(")")[-1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss


# ----- setup ----------------------------------------------------------------------------------

def install_deps():
    missing = []
    for p in PACKAGES:
        r = sh(["dpkg-query", "-W", "-f=${Status}", p], check=False)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    if not missing:
        log("all packages already installed")
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"missing packages {missing}: run as root so apt-get can install them")
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh(["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=600", "--no-install-recommends", *missing],
       env=env, timeout=1800)


def build():
    if os.environ.get("PGFAILOVER_BIN"):
        log(f"using PGFAILOVER_BIN={PGF_BIN} (no build)")
        freeze_binary()
        return
    log(f"building pgfailover in {BUILD_DIR}")
    sh(["cmake", "-S", REPO, "-B", BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_TESTING=OFF"], timeout=600)
    sh(["cmake", "--build", BUILD_DIR, "--target", "pgfailover", "-j2"], timeout=3600)
    freeze_binary()


def freeze_binary():
    """Copy the binary into the work folder, so a rebuild by someone else mid-run changes nothing,
    and remember what it was built from."""
    global PGF_BIN
    os.makedirs(os.path.join(WORK, "bin"), exist_ok=True)
    frozen = os.path.join(WORK, "bin", "pgfailover")
    shutil.copy2(PGF_BIN, frozen)
    os.chmod(frozen, 0o755)
    rev = sh(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    dirty = sh(["git", "-C", REPO, "status", "--porcelain", "--", "src", "CMakeLists.txt"], check=False).stdout.strip()
    sha = sh(["sha256sum", frozen], check=False).stdout.split()[0][:16]
    PROVENANCE.update({"git": rev + (" + uncommitted changes in src/" if dirty else ""), "binary_sha256": sha,
                       "binary_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.path.getmtime(PGF_BIN)))})
    log(f"pgfailover binary: {PROVENANCE}")
    PGF_BIN = frozen


# ----- pgfailover lab (scripts/lab.sh with LAB_* env) ----------------------------------------

class Lab:
    def __init__(self, name="pgf"):
        self.dir = os.path.join(WORK, name)
        self.env = dict(os.environ, LAB_DIR=self.dir, LAB_PG_PORTS=f"{PGF_PORTS[0]},{PGF_PORTS[1]}",
                        LAB_HTTP_PORT=str(PGF_HTTP), LAB_SKIP_DEPS="1", LAB_SKIP_BUILD="1",
                        PGFAILOVER_BIN=PGF_BIN, LAB_TIMEOUT="120")
        self.url = f"http://127.0.0.1:{PGF_HTTP}"
        self.pgpass = os.path.join(self.dir, "pgpass")

    def lab(self, *args, check=True):
        return sh(["bash", os.path.join(REPO, "scripts", "lab.sh"), *args], env=self.env, check=check,
                  timeout=600)

    def up(self, config_overrides=None):
        self.down()
        for p in (*PGF_PORTS, PGF_HTTP):
            if not port_free(p):
                raise RuntimeError(f"port {p} is taken")
        self.lab("up")
        if config_overrides:
            self.restart_daemon(config_overrides)
        wait_for(lambda: self.status().get("state") == "healthy", 60, "pgfailover state healthy")

    def daemon_pid(self):
        with open(os.path.join(self.dir, "pgfailover.pid")) as f:
            return int(f.read().strip())

    def restart_daemon(self, overrides):
        cfg_path = os.path.join(self.dir, "pgfailover.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        for section, values in overrides.items():
            cfg.setdefault(section, {}).update(values)
        stop_pid(self.daemon_pid())
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        sh([PGF_BIN, "check-config", "--config", cfg_path])
        logf = open(os.path.join(self.dir, "pgfailover.log"), "a")
        p = subprocess.Popen([PGF_BIN, "run", "--config", cfg_path], stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        with open(os.path.join(self.dir, "pgfailover.pid"), "w") as f:
            f.write(f"{p.pid}\n")
        wait_for(lambda: http_get(self.url + "/readyz")[0] == 200, 60, "pgfailover /readyz")

    def status(self):
        code, body = http_get(self.url + "/status")
        return json.loads(body) if code else {}

    def down(self):
        if os.path.exists(self.dir):
            keep = os.path.join(WORK, "logs")
            os.makedirs(keep, exist_ok=True)
            src = os.path.join(self.dir, "pgfailover.log")
            if os.path.exists(src):
                shutil.copy(src, os.path.join(keep, f"pgfailover-{time.strftime('%H%M%S')}.log"))
            self.lab("down", check=False)

    def data_dir(self, node):
        return os.path.join(self.dir, node, "data")

    def port(self, node):
        return PGF_PORTS[0] if node == "pg1" else PGF_PORTS[1]

    def dsn(self, port=None):
        if port:
            return f"host=127.0.0.1 port={port} dbname=postgres user=pgfailover passfile={self.pgpass} connect_timeout=2"
        return (f"host=127.0.0.1,127.0.0.1 port={PGF_PORTS[0]},{PGF_PORTS[1]} dbname=postgres user=pgfailover "
                f"passfile={self.pgpass} target_session_attrs=read-write connect_timeout=1")

    def psql(self, port, sql, check=True):
        return sh(["psql", "-X", "-A", "-t", "-q", "-d", self.dsn(port), "-c", sql], check=check).stdout.strip()

    def metric(self, name):
        _, body = http_get(self.url + "/metrics")
        total = 0.0
        found = False
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else None


# ----- failover -------------------------------------------------------------------------------

def run_writer_and_kill(dsn, kill_fn, sql_final, work, timeout):
    """Start the writer, kill at a random moment, wait for writes on another port, stop.
    Returns the per-run measurements."""
    out = os.path.join(work, "writer.jsonl")
    w = subprocess.Popen(["/usr/bin/python3", os.path.join(BENCH, "writer.py"), dsn, out])
    STARTED.append(w)

    def acks():
        res = []
        with open(out) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r.get("ok"):
                    res.append(r)
        return res

    wait_for(lambda: len(acks()) > 20, 60, "the writer's first acknowledged writes")
    time.sleep(random.uniform(2.0, 6.0))
    old_port = acks()[-1]["port"]
    t_kill = time.time()
    kill_fn()
    new = None
    deadline = time.time() + timeout
    while time.time() < deadline:
        after = [r for r in acks() if r["t"] > t_kill and r["port"] != old_port]
        if after:
            new = after[0]
            break
        time.sleep(0.2)
    time.sleep(2.0 if new else 0)
    stop_pid(w.pid)
    w.wait()
    STARTED.remove(w)
    all_acks = acks()
    attempts = sum(1 for _ in open(out))
    res = {"acked": len(all_acks), "attempts": attempts, "old_port": old_port, "load": loadavg()}
    if not new:
        res["error"] = f"no write on a new primary within {timeout}s"
        return res
    ts = [r["t"] for r in all_acks]
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    res["max_gap_s"] = round(max(gaps), 3)
    res["kill_to_first_write_s"] = round(new["t"] - t_kill, 3)
    res["new_port"] = new["port"]
    present = set(int(x) for x in sql_final(new["port"]).split() if x)
    lost = [r["id"] for r in all_acks if r["id"] not in present]
    before = [r["id"] for r in all_acks if r["t"] <= t_kill]
    res["last_acked_id_before_kill"] = before[-1] if before else None
    res["lost_acked_writes"] = len(lost)
    res["lost_ids_sample"] = lost[:20]
    return res


def failover_pgfailover(config_name, overrides, runs):
    out = []
    for i in range(runs):
        lab = Lab()
        work = os.path.join(WORK, "failover")
        os.makedirs(work, exist_ok=True)
        try:
            log(f"failover {config_name} run {i + 1}/{runs}: setting up (load {loadavg()})")
            lab.up(overrides)
            lab.psql(PGF_PORTS[0], "CREATE TABLE bench_writes(id bigint PRIMARY KEY, t timestamptz DEFAULT now())")
            primary_dd = lab.data_dir("pg1")
            pid = postmaster_pid(primary_dd)
            if not pid:
                raise RuntimeError("no postmaster for pg1")

            def kill():
                os.kill(pid, signal.SIGKILL)

            res = run_writer_and_kill(lab.dsn(), kill,
                                      lambda port: lab.psql(port, "SELECT id FROM bench_writes"), work, 90)
            res["last_failover_duration_metric_s"] = lab.metric("pgfailover_last_failover_duration_seconds")
            log(f"  -> {res}")
            out.append(res)
        finally:
            lab.down()
    return out


# Patroni ---------------------------------------------------------------------------------------

def setpriv_postgres():
    return ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups"]


class PatroniCluster:
    def __init__(self, ttl, loop_wait, retry_timeout):
        self.dir = os.path.join(WORK, "patroni")
        self.dcs = {"ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry_timeout}
        self.procs = {}
        self.etcd = None
        self.pgpass = os.path.join(self.dir, "client.pgpass")

    def up(self):
        self.down()
        for p in (*PAT_PORTS, *PAT_REST, *ETCD_PORTS):
            if not port_free(p):
                raise RuntimeError(f"port {p} is taken")
        os.makedirs(self.dir)
        shutil.chown(self.dir, "postgres", "postgres")
        etcd_dir = os.path.join(self.dir, "etcd")
        logf = open(os.path.join(self.dir, "etcd.log"), "w")
        self.etcd = subprocess.Popen(
            ["etcd", "--name", "bench", "--data-dir", etcd_dir,
             "--listen-client-urls", f"http://127.0.0.1:{ETCD_PORTS[0]}",
             "--advertise-client-urls", f"http://127.0.0.1:{ETCD_PORTS[0]}",
             "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PORTS[1]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PORTS[1]}",
             "--initial-cluster", f"bench=http://127.0.0.1:{ETCD_PORTS[1]}", "--enable-v2=true"],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        STARTED.append(self.etcd)
        wait_for(lambda: http_get(f"http://127.0.0.1:{ETCD_PORTS[0]}/health")[0] == 200, 60, "etcd health")
        with open(self.pgpass, "w") as f:
            f.write("127.0.0.1:*:*:postgres:benchpw\n")
        os.chmod(self.pgpass, 0o600)
        for i, name in enumerate(("p1", "p2")):
            self.start_node(i, name)
            if i == 0:
                wait_for(lambda: self.role(0) in ("primary", "master"), 120, "patroni p1 primary")
        wait_for(lambda: self.role(1) == "replica" and self.streaming(), 180, "patroni p2 streaming")

    def start_node(self, i, name):
        ndir = os.path.join(self.dir, name)
        os.makedirs(ndir, exist_ok=True)
        shutil.chown(ndir, "postgres", "postgres")
        cfg = f"""scope: bench
name: {name}
restapi:
  listen: 127.0.0.1:{PAT_REST[i]}
  connect_address: 127.0.0.1:{PAT_REST[i]}
etcd3:
  hosts: 127.0.0.1:{ETCD_PORTS[0]}
bootstrap:
  dcs:
    ttl: {self.dcs['ttl']}
    loop_wait: {self.dcs['loop_wait']}
    retry_timeout: {self.dcs['retry_timeout']}
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: 'on'
  initdb:
  - encoding: UTF8
  - auth: scram-sha-256
  pg_hba:
  - local all all trust
  - host replication replicator 127.0.0.1/32 scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:{PAT_PORTS[i]}
  connect_address: 127.0.0.1:{PAT_PORTS[i]}
  data_dir: {ndir}/data
  bin_dir: {PGBIN}
  pgpass: {ndir}/pgpass
  authentication:
    superuser: {{username: postgres, password: benchpw}}
    replication: {{username: replicator, password: benchrep}}
  parameters:
    unix_socket_directories: '{ndir}'
"""
        path = os.path.join(ndir, "patroni.yml")
        with open(path, "w") as f:
            f.write(cfg)
        shutil.chown(path, "postgres", "postgres")
        logf = open(os.path.join(ndir, "patroni.log"), "a")
        p = subprocess.Popen([*setpriv_postgres(), "/usr/bin/patroni", path], stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ndir)
        STARTED.append(p)
        self.procs[name] = p

    def role(self, i):
        code, body = http_get(f"http://127.0.0.1:{PAT_REST[i]}/patroni")
        return json.loads(body).get("role") if code else None

    def streaming(self):
        r = self.psql(PAT_PORTS[0], "SELECT count(*) FROM pg_stat_replication WHERE state='streaming'", check=False)
        return r.strip() not in ("", "0")

    def dsn(self, port=None):
        if port:
            return f"host=127.0.0.1 port={port} dbname=postgres user=postgres passfile={self.pgpass} connect_timeout=2"
        return (f"host=127.0.0.1,127.0.0.1 port={PAT_PORTS[0]},{PAT_PORTS[1]} dbname=postgres user=postgres "
                f"passfile={self.pgpass} target_session_attrs=read-write connect_timeout=1")

    def psql(self, port, sql, check=True):
        return sh(["psql", "-X", "-A", "-t", "-q", "-d", self.dsn(port), "-c", sql], check=check).stdout.strip()

    def down(self):
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                stop_pid(p.pid, grace=30)
            p.wait()
            if p in STARTED:
                STARTED.remove(p)
        self.procs.clear()
        for name in ("p1", "p2"):
            dd = os.path.join(self.dir, name, "data")
            pid = postmaster_pid(dd)
            if pid:
                sh([*setpriv_postgres(), f"{PGBIN}/pg_ctl", "stop", "-D", dd, "-m", "immediate"], check=False)
                if postmaster_pid(dd):
                    os.kill(pid, signal.SIGKILL)
        if self.etcd and self.etcd.poll() is None:
            stop_pid(self.etcd.pid)
            self.etcd.wait()
            STARTED.remove(self.etcd)
        self.etcd = None
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)


def failover_patroni(config_name, dcs, runs):
    out = []
    for i in range(runs):
        cl = PatroniCluster(**dcs)
        work = os.path.join(WORK, "failover")
        os.makedirs(work, exist_ok=True)
        try:
            log(f"failover {config_name} run {i + 1}/{runs}: setting up (load {loadavg()})")
            cl.up()
            cl.psql(PAT_PORTS[0], "CREATE TABLE bench_writes(id bigint PRIMARY KEY, t timestamptz DEFAULT now())")
            pm = postmaster_pid(os.path.join(cl.dir, "p1", "data"))
            mgr = cl.procs["p1"].pid
            if not pm:
                raise RuntimeError("no postmaster for patroni p1")

            def kill():
                os.kill(mgr, signal.SIGKILL)
                os.kill(pm, signal.SIGKILL)

            res = run_writer_and_kill(cl.dsn(), kill,
                                      lambda port: cl.psql(port, "SELECT id FROM bench_writes"), work, 120)
            log(f"  -> {res}")
            out.append(res)
        finally:
            cl.down()
    return out


# pg_auto_failover ------------------------------------------------------------------------------

def children_of(pid):
    """Direct children of pid (scan of /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children_of(p):
            out.append(c)
            todo.append(c)
    return out


def proc_cmd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


PAF_TIGHT = {"pgautofailover.health_check_period": 1000, "pgautofailover.health_check_timeout": 1000,
             "pgautofailover.health_check_max_retries": 1, "pgautofailover.health_check_retry_delay": 500,
             "pgautofailover.node_considered_unhealthy_timeout": 2000}
# ... and the monitor's wait for the old primary to demote itself (30 s by default) cut too
PAF_FASTEST = dict(PAF_TIGHT, **{"pgautofailover.primary_demote_timeout": 2000})


class PafCluster:
    """pg_auto_failover 2.0 (Debian): a monitor and two nodes, each `pg_autoctl ... --run` as postgres."""

    def __init__(self, monitor_settings=None):
        self.dir = os.path.join(WORK, "paf")
        self.monitor_settings = monitor_settings or {}
        self.procs = {}
        self.monitor_uri = f"postgres://autoctl_node@127.0.0.1:{PAF_MONITOR_PORT}/pg_auto_failover?sslmode=disable"

    def env(self):
        return dict(os.environ, XDG_CONFIG_HOME=os.path.join(self.dir, "xdg", "config"),
                    XDG_DATA_HOME=os.path.join(self.dir, "xdg", "data"),
                    XDG_RUNTIME_DIR=os.path.join(self.dir, "xdg", "run"),
                    PG_CONFIG=f"{PGBIN}/pg_config", PATH=f"{PGBIN}:{os.environ.get('PATH', '')}",
                    HOME=self.dir)

    def spawn(self, name, args):
        logf = open(os.path.join(self.dir, f"{name}.log"), "a")
        p = subprocess.Popen([*setpriv_postgres(), "/usr/bin/pg_autoctl", *args], stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir, env=self.env())
        STARTED.append(p)
        self.procs[name] = p
        return p

    def up(self):
        self.down()
        for p in (PAF_MONITOR_PORT, *PAF_PORTS):
            if not port_free(p):
                raise RuntimeError(f"port {p} is taken")
        os.makedirs(self.dir)
        shutil.chown(self.dir, "postgres", "postgres")
        mon = os.path.join(self.dir, "monitor")
        sh([*setpriv_postgres(), "/usr/bin/pg_autoctl", "create", "monitor", "--pgdata", mon,
            "--pgport", str(PAF_MONITOR_PORT), "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
            "--auth", "trust", "--no-ssl"], env=self.env(), cwd=self.dir, timeout=300)
        if self.monitor_settings:
            with open(os.path.join(mon, "postgresql.auto.conf"), "a") as f:
                for k, v in self.monitor_settings.items():
                    f.write(f"{k} = '{v}'\n")
        self.spawn("monitor", ["run", "--pgdata", mon])
        wait_for(lambda: self.monitor_sql("SELECT 1") == "1", 120, "pg_auto_failover monitor")
        for i, name in enumerate(("n1", "n2")):
            self.spawn(name, ["create", "postgres", "--pgdata", os.path.join(self.dir, name), "--pgport",
                              str(PAF_PORTS[i]), "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
                              "--name", name, "--auth", "trust", "--no-ssl", "--monitor", self.monitor_uri,
                              "--run"])
            want = "single" if i == 0 else "secondary"  # the first node is "single" until a second joins
            wait_for(lambda: self.state(name) == (want, want), 300, f"pg_auto_failover {name} {want}")
        # the primary goes primary -> wait_primary -> primary once n2 is a secondary
        wait_for(lambda: self.state("n1") == ("primary", "primary"), 120, "pg_auto_failover n1 primary")
        got = self.monitor_sql("SELECT string_agg(name || '=' || setting, ' ') FROM pg_settings "
                               "WHERE name LIKE 'pgautofailover.%'")
        self.effective_settings = dict(kv.split("=", 1) for kv in got.split())

    def monitor_sql(self, sql):
        return sh(["psql", "-X", "-A", "-t", "-q", "-h", "127.0.0.1", "-p", str(PAF_MONITOR_PORT),
                   "-U", "autoctl_node", "-d", "pg_auto_failover", "-c", sql], check=False).stdout.strip()

    def state(self, name):
        r = self.monitor_sql(f"SELECT reportedstate || ',' || goalstate FROM pgautofailover.node WHERE nodename = '{name}'")
        return tuple(r.split(",")) if r else None

    def data_dir(self, name):
        return os.path.join(self.dir, name)

    def dsn(self, port=None):
        if port:
            return f"host=127.0.0.1 port={port} dbname=postgres user=postgres connect_timeout=2"
        return (f"host=127.0.0.1,127.0.0.1 port={PAF_PORTS[0]},{PAF_PORTS[1]} dbname=postgres user=postgres "
                f"target_session_attrs=read-write connect_timeout=1")

    def psql(self, port, sql, check=True):
        return sh(["psql", "-X", "-A", "-t", "-q", "-d", self.dsn(port), "-c", sql], check=check).stdout.strip()

    def manager_pids(self, name):
        """pg_autoctl processes of one node/monitor: the supervisor and its pg_autoctl children."""
        p = self.procs.get(name)
        if not p or p.poll() is not None:
            return []
        return [p.pid] + [c for c in descendants(p.pid) if proc_cmd(c).startswith("pg_autoctl")]

    def down(self):
        for name, p in list(self.procs.items())[::-1]:
            if p.poll() is None:
                stop_pid(p.pid, grace=30)
            try:
                p.wait(timeout=10)
            except Exception:  # noqa: BLE001
                pass
            if p in STARTED:
                STARTED.remove(p)
        self.procs.clear()
        for name in ("n1", "n2", "monitor"):
            dd = os.path.join(self.dir, name)
            pid = postmaster_pid(dd)
            if pid:
                sh([*setpriv_postgres(), f"{PGBIN}/pg_ctl", "stop", "-D", dd, "-m", "immediate"], check=False)
                if postmaster_pid(dd):
                    os.kill(pid, signal.SIGKILL)
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)


def failover_paf(config_name, settings, runs):
    out = []
    for i in range(runs):
        cl = PafCluster(settings)
        work = os.path.join(WORK, "failover")
        os.makedirs(work, exist_ok=True)
        try:
            log(f"failover {config_name} run {i + 1}/{runs}: setting up (load {loadavg()})")
            cl.up()
            cl.psql(PAF_PORTS[0], "CREATE TABLE bench_writes(id bigint PRIMARY KEY, t timestamptz DEFAULT now())")
            pm = postmaster_pid(cl.data_dir("n1"))
            mgr = cl.manager_pids("n1")
            if not pm or not mgr:
                raise RuntimeError("no postmaster or pg_autoctl for pg_auto_failover n1")

            def kill():
                for pid in [*mgr, pm]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

            res = run_writer_and_kill(cl.dsn(), kill,
                                      lambda port: cl.psql(port, "SELECT id FROM bench_writes"), work, 180)
            res["monitor_settings"] = cl.effective_settings
            log(f"  -> {res}")
            out.append(res)
        finally:
            cl.down()
    return out


def part_failover(args):
    runs = 1 if args.quick else args.runs
    configs = {}
    fast = {"probe": {"interval_ms": 500}, "failover": {"confirmed_down_timeout_ms": 1500}}
    prev = load_result("failover")
    if args.only and prev:
        configs = prev.get("configs", {})  # keep the configurations not rerun

    def want(name):
        # saves what is done so far, so an interrupted run keeps its finished configurations
        save("failover", {"quick": args.quick, "configs": configs, "pgfailover_fast_overrides": fast,
                          "paf_tight_settings": PAF_TIGHT, "paf_fastest_settings": PAF_FASTEST})
        return not args.only or re.search(args.only, name)
    if want("pgfailover-defaults"):
        configs["pgfailover defaults (probe 1 s, confirmed_down 3 s)"] = failover_pgfailover("pgfailover-defaults", None, runs)
    if want("pgfailover-fast"):
        configs["pgfailover fast (probe 0.5 s, confirmed_down 1.5 s)"] = failover_pgfailover("pgfailover-fast", fast, runs)
    if not args.skip_patroni and want("patroni-defaults"):
        configs["Patroni defaults (ttl 30, loop_wait 10, retry_timeout 10)"] = failover_patroni(
            "patroni-defaults", {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}, runs)
    if not args.skip_patroni and want("patroni-fast"):
        configs["Patroni fast (ttl 10, loop_wait 2, retry_timeout 4)"] = failover_patroni(
            "patroni-fast", {"ttl": 10, "loop_wait": 2, "retry_timeout": 4}, runs)
    if want("paf-defaults"):
        configs["pg_auto_failover defaults (health check every 5 s, unhealthy after 20 s)"] = failover_paf(
            "paf-defaults", None, runs)
    if want("paf-tight"):
        configs["pg_auto_failover tight (health check every 1 s, unhealthy after 2 s)"] = failover_paf(
            "paf-tight", PAF_TIGHT, runs)
    if want("paf-fastest"):
        configs["pg_auto_failover fastest (tight + primary_demote_timeout 2 s)"] = failover_paf(
            "paf-fastest", PAF_FASTEST, runs)
    save("failover", {"quick": args.quick, "configs": configs, "pgfailover_fast_overrides": fast,
                      "paf_tight_settings": PAF_TIGHT, "paf_fastest_settings": PAF_FASTEST})


# ----- rejoin ---------------------------------------------------------------------------------

def node_status(lab, name):
    for n in lab.status().get("nodes", []):
        if n.get("name") == name:
            return n
    return {}


def rejoin_diverged(lab, p_replica, p_primary):
    """pg1 (replica) stops receiving, pg2 (primary) commits rows only it has, pg2 is killed,
    pgfailover promotes pg1 and rejoins pg2 by itself (rejoin on): the path where pg_rewind is
    really needed. Returns pgfailover's rejoin report of pg2 and the time from the kill."""
    wait_for(lambda: (node_status(lab, "pg1").get("wal_receiver") or {}).get("status") == "streaming",
             120, "pg1 streaming before the diverged round")
    lab.psql(p_primary, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 2000")
    wait_for(lambda: lab.psql(p_primary, "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)),1) "
                                         "FROM pg_stat_replication") == "0", 300, "pg1 caught up")
    # the replica's WAL receiver stops (an empty primary_conninfo), so nothing more reaches it
    lab.psql(p_replica, "ALTER SYSTEM SET primary_conninfo = ''")
    lab.psql(p_replica, "SELECT pg_reload_conf()")
    wait_for(lambda: lab.psql(p_primary, "SELECT count(*) FROM pg_stat_replication") == "0", 60,
             "pg1's WAL receiver gone")
    lab.psql(p_primary, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100")
    before = node_status(lab, "pg2").get("rejoin") or {}
    attempts = before.get("attempts", 0)
    t0 = time.time()
    os.kill(postmaster_pid(lab.data_dir("pg2")), signal.SIGKILL)
    wait_for(lambda: lab.status().get("primary") == "pg1" and
             lab.psql(p_replica, "SELECT pg_is_in_recovery()") == "f", 180, "failover to pg1")
    lab.psql(p_replica, "ALTER SYSTEM RESET primary_conninfo")
    t_promoted = round(time.time() - t0, 2)

    def finished():
        rj = node_status(lab, "pg2").get("rejoin") or {}
        last = rj.get("last") or {}
        return last if rj.get("attempts", 0) > attempts and not rj.get("running") else None
    last = wait_for(finished, 3600, "pgfailover's rejoin of pg2", interval=0.25)
    out = {"rejoin": last, "promoted_after_s": t_promoted, "rejoined_after_s": round(time.time() - t0, 2),
           "load": loadavg()}
    log(f"  diverged -> {out}")
    return out


def part_rejoin(args):
    sizes = [("100 MB", 7)] if args.quick else [("100 MB", 7), ("1 GB", 68), ("4 GB", 273)]
    results = []
    for label, scale in sizes:
        free_gb = shutil.disk_usage(WORK).free / 2**30
        # two nodes + the clone + retained WAL: about 5 times the data, plus headroom
        need_gb = 5 * scale * 15 / 2**10 + 5
        if free_gb < need_gb:
            log(f"rejoin {label}: skipped, {free_gb:.0f} GB free on {WORK}, want {need_gb:.0f} GB")
            results.append({"size": label, "pgbench_scale": scale, "skipped": f"{free_gb:.0f} GB free, want {need_gb:.0f} GB"})
            continue
        lab = Lab()
        try:
            log(f"rejoin {label}: setting up (load {loadavg()})")
            # the lab's pgfailover rejoins by itself (local executor); held back until the data changed
            lab.up({"failover": {"rejoin": False}})
            p1, p2 = PGF_PORTS
            # WAL retention as in the lab (scripts/node/common.sh: wal_keep_size 256MB on both nodes):
            # pg_rewind reads the old primary's WAL back to its last checkpoint before the fork.
            wal_keep = lab.psql(p1, "SHOW wal_keep_size")
            t0 = time.time()
            sh(["pgbench", "-i", "-q", "-I", "dtGvp", "-s", str(scale), "-d", lab.dsn(p1)], timeout=3600)
            t_load = time.time() - t0
            db_size = int(lab.psql(p1, "SELECT pg_database_size('postgres')"))
            wait_for(lambda: lab.psql(p1, "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)),1) FROM pg_stat_replication") == "0",
                     900, "replica caught up")
            # steady state: the data was loaded long before the crash, a checkpoint has passed since
            lab.psql(p1, "CHECKPOINT")
            lab.psql(p1, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 2000")
            time.sleep(2)
            pid = postmaster_pid(lab.data_dir("pg1"))
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: lab.status().get("primary") == "pg2" and
                     lab.psql(p2, "SELECT pg_is_in_recovery()") == "f", 180, "failover to pg2")
            lsn0 = lab.psql(p2, "SELECT pg_current_wal_lsn()")
            lab.psql(p2, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 30000")
            changed = int(lab.psql(p2, f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn0}')"))
            src_wal = int(lab.psql(p2, "SELECT sum(size) FROM pg_ls_waldir()"))
            # pgfailover's own rejoin (src/lifecycle/rejoin.cc): stop, pre-flight, CHECKPOINT the
            # source, pg_rewind (which first crash-recovers the killed node in single-user mode),
            # follow, start, verify streaming on the new timeline; a re-clone if that fails.
            t0 = time.time()
            lab.restart_daemon({"failover": {"rejoin": True}})

            def finished():
                rj = node_status(lab, "pg1").get("rejoin") or {}
                last = rj.get("last") or {}
                return last if last.get("finished_at") and not rj.get("running") else None
            last = wait_for(finished, 3600, "pgfailover's rejoin of pg1", interval=0.25)
            t_done = time.time() - t0

            def streams():
                n = node_status(lab, "pg1")
                return (n.get("wal_receiver") or {}).get("status") == "streaming" and n.get("in_recovery")
            try:
                wait_for(streams, 120, "pg1 streaming again")
                t_stream = round(time.time() - t0, 2)
            except RuntimeError:
                t_stream = None
            # the re-clone for comparison: pg_basebackup of the whole new primary
            passfile = os.path.join(WORK, "rejoin.pgpass")
            with open(os.path.join(lab.dir, "replication.password")) as f:
                rp = f.read().strip()
            with open(passfile, "w") as f:
                f.write(f"127.0.0.1:*:*:replicator:{rp}\n")
            os.chmod(passfile, 0o600)
            shutil.chown(passfile, "postgres", "postgres")
            clone = os.path.join(lab.dir, "clone")
            os.makedirs(clone)
            shutil.chown(clone, "postgres", "postgres")
            # the lab's nodes take TLS only (hostssl), verified against the CA it made
            src_repl = (f"host=127.0.0.1 port={p2} user=replicator passfile={passfile} sslmode=verify-full "
                        f"sslrootcert={os.path.join(lab.dir, 'ca', 'ca.crt')}")
            t0 = time.time()
            sh([*setpriv_postgres(), f"{PGBIN}/pg_basebackup", "-D", os.path.join(clone, "data"), "-X", "stream",
                "-c", "fast", "-d", src_repl], timeout=3600,
               env=dict(os.environ, HOME="/var/lib/postgresql"))  # libpq looks for ~/.postgresql
            t_clone = time.time() - t0
            shutil.rmtree(clone, ignore_errors=True)
            r = {"size": label, "pgbench_scale": scale, "db_bytes": db_size, "changed_wal_bytes": changed,
                 "load_s": round(t_load, 1), "wal_keep_size": wal_keep, "source_pg_wal_bytes": src_wal,
                 "rejoin": last, "rejoin_wall_s": round(t_done, 2), "streaming_after_s": t_stream,
                 "pg_basebackup_s": round(t_clone, 2), "load": loadavg()}
            # Round 2, the same data the other way: the primary (pg2) writes what its replica (pg1)
            # never receives, then dies. pg2's WAL goes past the fork, so its rejoin must rewind.
            try:
                r["diverged"] = rejoin_diverged(lab, p1, p2)
            except Exception as e:  # a failed second round leaves the first one's figures
                log(f"  diverged round failed: {e}")
                r["diverged"] = {"error": str(e)}
            log(f"  -> {r}")
            results.append(r)
            save("rejoin", {"quick": args.quick, "results": results})
        finally:
            lab.down()
    save("rejoin", {"quick": args.quick, "results": results})


# ----- footprint & http ---------------------------------------------------------------------

def proc_mem(pid):
    """VmRSS, RssAnon, RssFile (kB) from status and Pss (kB) from smaps_rollup; utime+stime+cutime+cstime (s)."""
    m = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                m[k] = int(v.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    m["Pss"] = int(line.split()[1])
    except OSError:
        pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    m["cpu_s"] = sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    return m


def group_sample(pids):
    tot = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "Pss": 0, "cpu_s": 0.0, "procs": 0}
    for pid in pids:
        try:
            m = proc_mem(pid)
        except (OSError, IndexError, ValueError):
            continue
        for k in ("VmRSS", "RssAnon", "RssFile", "Pss", "cpu_s"):
            tot[k] += m.get(k, 0)
        tot["procs"] += 1
    return tot


class System:
    """What the footprint part needs of a cluster: its process groups and SQL on its nodes."""

    def __init__(self, name, cluster, ports, groups, dsn_for_pgbench):
        self.name, self.cluster, self.ports, self.groups, self.pgbench_dsn = name, cluster, ports, groups, dsn_for_pgbench

    def psql(self, port, sql):
        return self.cluster.psql(port, sql)


def measure_system(system, window, label, load_cmd=None, extra=None, wal_detail=None):
    """RSS/PSS/CPU of each process group over the window, plus what the manager costs PostgreSQL."""
    ports = system.ports
    me = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    xq = "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database"
    conns = {p: int(system.psql(p, me)) for p in ports}
    x0 = {p: int(system.psql(p, xq)) for p in ports}
    lsn0 = system.psql(ports[0], "SELECT pg_current_wal_lsn()")
    e0 = extra() if extra else None
    bg = None
    if load_cmd:
        bg = subprocess.Popen(load_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.append(bg)
    pids = {g: f() for g, f in system.groups.items()}
    s0 = {g: group_sample(p) for g, p in pids.items()}
    t0 = time.time()
    peak = {g: dict(s0[g]) for g in pids}
    while time.time() - t0 < window:
        time.sleep(1)
        for g, p in pids.items():
            s = group_sample(p)
            for k in ("VmRSS", "Pss", "RssAnon", "RssFile"):
                peak[g][k] = max(peak[g][k], s[k])
    s1 = {g: group_sample(p) for g, p in pids.items()}
    el = time.time() - t0
    lsn1 = system.psql(ports[0], "SELECT pg_current_wal_lsn()")
    x1 = {p: int(system.psql(p, xq)) for p in ports}
    e1 = extra() if extra else None
    wal = int(system.psql(ports[0], f"SELECT pg_wal_lsn_diff('{lsn1}', '{lsn0}')"))
    if bg:
        stop_pid(bg.pid)
        bg.wait()
        STARTED.remove(bg)
    r = {"window_s": round(el, 1), "load": loadavg(), "groups": {}}
    for g in pids:
        r["groups"][g] = {"procs": s1[g]["procs"], "rss_kb_max": peak[g]["VmRSS"], "pss_kb_max": peak[g]["Pss"],
                          "rss_anon_kb_max": peak[g]["RssAnon"], "rss_file_kb_max": peak[g]["RssFile"],
                          "cpu_s": round(s1[g]["cpu_s"] - s0[g]["cpu_s"], 3),
                          "cpu_pct": round(100 * (s1[g]["cpu_s"] - s0[g]["cpu_s"]) / el, 3)}
    # our own psql calls inside the window: 2 per node (x0 is read before, x1 after), 2 more on the primary
    r["client_connections"] = {str(p): conns[p] for p in ports}
    r["xact_per_s"] = {str(p): round((x1[p] - x0[p] - (4 if p == ports[0] else 2)) / el, 2) for p in ports}
    r["wal_bytes_per_s"] = round(wal / el, 1)
    if wal_detail:
        d = wal_detail(lsn0, lsn1)
        d["heartbeat_bytes_per_s"] = round(d["heartbeat_bytes"] / el, 1)
        r["wal_detail"] = d
    if extra:
        r["extra"] = {k: (e1[k] - e0[k]) / el for k in e0}
    log(f"  footprint {system.name} {label}: {r}")
    return r


def heartbeat_wal(lab, lsn0, lsn1):
    """WAL of pgfailover's heartbeat between two LSNs on pg1, from pg_waldump: every record on the
    heartbeat table (full-page images included) plus the commit records of those transactions."""
    fn = lab.psql(PGF_PORTS[0], "SELECT pg_relation_filenode('pgfailover.heartbeat')")
    r = sh([*setpriv_postgres(), f"{PGBIN}/pg_waldump", "-p", os.path.join(lab.data_dir("pg1"), "pg_wal"),
            "-s", lsn0, "-e", lsn1], check=False)
    recs = []
    for line in r.stdout.splitlines():
        m = re.search(r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+)", line)
        if m:
            recs.append((int(m.group(1)), int(m.group(2)), line))
    xids = {tx for tot, tx, line in recs if f"/{fn} " in line or line.rstrip().endswith(f"/{fn}") or f"/{fn} blk" in line}
    xids.discard(0)
    hb = sum(tot for tot, tx, line in recs if tx in xids or f"/{fn} " in line or f"/{fn} blk" in line)
    return {"heartbeat_bytes": hb, "all_bytes": sum(t for t, _, _ in recs), "heartbeat_xacts": len(xids),
            "records": len(recs)}


def smaps_breakdown(pid):
    """Resident kB by kind of mapping: what pgfailover's RSS consists of."""
    kinds = {}
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = parts[5] if len(parts) > 5 else "[anon]"
                if name.startswith("/"):
                    name = os.path.basename(name).split(".so")[0] + (".so" if ".so" in name else "")
                cur = name
            elif parts and parts[0] == "Rss:" and cur:
                kinds[cur] = kinds.get(cur, 0) + int(parts[1])
    return dict(sorted(((k, v) for k, v in kinds.items() if v), key=lambda kv: -kv[1]))


def wrk(url, dur, conns=16):
    r = sh(["wrk", "-t2", f"-c{conns}", f"-d{dur}s", "--latency", url], timeout=dur + 60, check=False)
    out = parse_wrk(r.stdout)
    out["duration_s"] = dur
    out["connections"] = conns
    return out


class TickWatcher:
    """Polls pgfailover's last tick timestamp every 100 ms in a thread: the longest gap between ticks."""

    def __init__(self, url):
        import threading
        self.url, self.stamps, self.stop, self.not_ok = url, [], False, []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            code, body = http_get(self.url + "/primary", timeout=5)
            if code != 200:
                try:
                    reason = json.loads(body).get("reason") if body else f"no answer ({code})"
                except ValueError:
                    reason = body[:200]
                self.not_ok.append(reason)
            code, body = http_get(self.url + "/metrics", timeout=5)
            for line in body.splitlines():
                if line.startswith("pgfailover_last_tick_timestamp_seconds "):
                    v = float(line.split()[1])
                    if not self.stamps or v != self.stamps[-1]:
                        self.stamps.append(v)
            time.sleep(0.1)

    def finish(self):
        self.stop = True
        self.t.join()
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        reasons = {}
        for r in self.not_ok:
            key = re.sub(r"[\d.]+ ?(ms|s)\b", "N", str(r))[:160]
            reasons[key] = reasons.get(key, 0) + 1
        return {"primary_not_ok_samples": len(self.not_ok), "primary_not_ok_reasons": reasons,
                "ticks_seen": len(self.stamps), "max_tick_gap_s": round(max(gaps), 3) if gaps else None,
                "median_tick_gap_s": round(statistics.median(gaps), 3) if gaps else None}


def probe_failures(lab):
    """pgfailover_probe_failures_total by node and reason."""
    _, body = http_get(lab.url + "/metrics")
    out = {}
    for line in body.splitlines():
        if line.startswith("pgfailover_probe_failures_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out[f"{labels.get('node')}/{labels.get('reason')}"] = float(line.rsplit(" ", 1)[1])
    return out


def pgf_hist(lab, name):
    """(count, sum, max finite bucket with observations above the previous bucket) of a histogram."""
    _, body = http_get(lab.url + "/metrics")
    count = total = 0.0
    buckets = {}
    for line in body.splitlines():
        if line.startswith(name + "_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_bucket"):
            le = re.search(r'le="([^"]+)"', line).group(1)
            buckets[le] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
    return {"count": count, "sum": total, "buckets": buckets}


def hist_delta(a, b):
    d = {"count": b["count"] - a["count"], "sum": b["sum"] - a["sum"]}
    d["mean_ms"] = round(1000 * d["sum"] / d["count"], 2) if d["count"] else None
    # smallest bucket holding every observation of the interval: an upper bound of the slowest one
    les = sorted((float(k) if k != "+Inf" else float("inf"), k) for k in b["buckets"])
    for v, k in les:
        if b["buckets"][k] - a["buckets"].get(k, 0) >= d["count"]:
            d["max_le_s"] = v
            break
    return d


def part_footprint_http(args, do_footprint, do_http):
    window = args.window or (20 if args.quick else 120)
    dur = args.http_duration or (5 if args.quick else 10)
    fp = {"window_s": window, "systems": {}}
    ht = {"systems": {}}
    pgbench_cmd = lambda dsn: ["pgbench", "-n", "-c", "4", "-j", "2", "-T", str(window + 5), "-d", dsn]
    fp["pgbench"] = "pgbench -n -c 4 -j 2 (TPC-B-like, scale 5) on the primary"
    # after set-up, wait until the first-touch full-page writes after the clone's checkpoint are over
    warmup = 5 if args.quick else 30
    fp["warmup_s"] = warmup

    def want_sys(name):
        return not args.systems or re.search(args.systems, name)
    if args.systems:  # keep the other systems' earlier results
        for part, d in (("footprint", fp), ("http", ht)):
            prev = load_result(part) or {}
            for name, res in (prev.get("systems") or {}).items():
                if not want_sys(name):
                    d["systems"][name] = res
            if part == "http" and prev.get("pgfailover_memory_after_kb") and not want_sys("pgfailover"):
                ht["pgfailover_memory_after_kb"] = prev["pgfailover_memory_after_kb"]

    # pgfailover
    if want_sys("pgfailover"):
        lab = Lab()
        try:
            log(f"footprint/http pgfailover: setting up (load {loadavg()})")
            lab.up()
            pid = lab.daemon_pid()
            time.sleep(warmup)
            system = System("pgfailover", lab, list(PGF_PORTS), {"pgfailover": lambda: [pid]}, lab.dsn(PGF_PORTS[0]))
            ticks = lambda: {"ticks": lab.metric("pgfailover_ticks_total")}
            if do_footprint:
                res = {"idle": measure_system(system, window, "idle", extra=ticks,
                                              wal_detail=lambda a, b: heartbeat_wal(lab, a, b))}
                sh(["pgbench", "-i", "-q", "-s", "5", "-d", lab.dsn(PGF_PORTS[0])], timeout=900)
                res["pgbench"] = measure_system(system, window, "pgbench", pgbench_cmd(lab.dsn(PGF_PORTS[0])), extra=ticks)
                res["smaps_rss_kb"] = smaps_breakdown(pid)
                with open(f"/proc/{pid}/status") as f:
                    res["threads"] = int(next(ln for ln in f if ln.startswith("Threads:")).split()[1])
                res["binary"] = PGF_BIN
                res["binary_size_bytes"] = os.path.getsize(PGF_BIN)
                res["probe_interval_ms"] = 1000
                fp["systems"]["pgfailover"] = res
                save("footprint", {"quick": args.quick, **fp})
            if do_http:
                res = {}
                for path in ("/primary", "/status", "/metrics"):
                    t0 = time.time()
                    ticks0 = lab.metric("pgfailover_ticks_total")
                    th0, ph0 = pgf_hist(lab, "pgfailover_tick_duration_seconds"), pgf_hist(lab, "pgfailover_probe_duration_seconds")
                    pf0 = probe_failures(lab)
                    watcher = TickWatcher(lab.url)
                    r = wrk(lab.url + path, dur)
                    r.update(watcher.finish())
                    el = time.time() - t0
                    r["ticks_per_s_during"] = round((lab.metric("pgfailover_ticks_total") - ticks0) / el, 3)
                    r["tick_duration"] = hist_delta(th0, pgf_hist(lab, "pgfailover_tick_duration_seconds"))
                    r["probe_duration"] = hist_delta(ph0, pgf_hist(lab, "pgfailover_probe_duration_seconds"))
                    pf1 = probe_failures(lab)
                    r["probe_failures"] = {k: v - pf0.get(k, 0) for k, v in pf1.items() if v - pf0.get(k, 0)}
                    r["load"] = loadavg()
                    res[path] = r
                    log(f"  http pgfailover {path}: {r}")
                ht["systems"]["pgfailover"] = res
                # does hammering the API grow pgfailover's memory (per-thread malloc arenas, stacks)?
                ht["pgfailover_memory_after_kb"] = {k: v for k, v in proc_mem(pid).items() if k != "cpu_s"}
                log(f"  pgfailover memory after wrk: {ht['pgfailover_memory_after_kb']}")
                save("http", {"quick": args.quick, **ht})
        finally:
            lab.down()

    # Patroni at its defaults, with etcd
    if want_sys("patroni"):
        cl = PatroniCluster(30, 10, 10)
        try:
            log(f"footprint/http Patroni: setting up (load {loadavg()})")
            cl.up()
            time.sleep(warmup)
            groups = {"patroni (primary)": lambda: [cl.procs["p1"].pid], "patroni (replica)": lambda: [cl.procs["p2"].pid],
                      "etcd": lambda: [cl.etcd.pid]}
            system = System("patroni", cl, list(PAT_PORTS), groups, cl.dsn(PAT_PORTS[0]))
            if do_footprint:
                res = {"idle": measure_system(system, window, "idle")}
                sh(["pgbench", "-i", "-q", "-s", "5", "-d", cl.dsn(PAT_PORTS[0])], timeout=900)
                res["pgbench"] = measure_system(system, window, "pgbench", pgbench_cmd(cl.dsn(PAT_PORTS[0])))
                res["settings"] = "ttl 30, loop_wait 10, retry_timeout 10 (defaults)"
                fp["systems"]["patroni"] = res
                save("footprint", {"quick": args.quick, **fp})
            if do_http:
                res = {}
                base = f"http://127.0.0.1:{PAT_REST[0]}"
                for path in ("/primary", "/patroni", "/metrics"):
                    r = wrk(base + path, dur)
                    r["load"] = loadavg()
                    res[path] = r
                    log(f"  http patroni {path}: {r}")
                ht["systems"]["patroni"] = res
                save("http", {"quick": args.quick, **ht})
        finally:
            cl.down()

    # pg_auto_failover at its defaults
    if do_footprint and want_sys("pg_auto_failover"):
        cl = PafCluster()
        try:
            log(f"footprint pg_auto_failover: setting up (load {loadavg()})")
            cl.up()
            time.sleep(warmup)
            mon_dd = cl.data_dir("monitor")
            groups = {"pg_autoctl (primary)": lambda: cl.manager_pids("n1"),
                      "pg_autoctl (secondary)": lambda: cl.manager_pids("n2"),
                      "pg_autoctl (monitor)": lambda: cl.manager_pids("monitor"),
                      "monitor's PostgreSQL": lambda: [postmaster_pid(mon_dd)] + descendants(postmaster_pid(mon_dd))}
            system = System("pg_auto_failover", cl, list(PAF_PORTS), groups, cl.dsn(PAF_PORTS[0]))
            res = {"idle": measure_system(system, window, "idle")}
            sh(["pgbench", "-i", "-q", "-s", "5", "-d", cl.dsn(PAF_PORTS[0])], timeout=900)
            res["pgbench"] = measure_system(system, window, "pgbench", pgbench_cmd(cl.dsn(PAF_PORTS[0])))
            res["settings"] = "defaults"
            fp["systems"]["pg_auto_failover"] = res
            save("footprint", {"quick": args.quick, **fp})
        finally:
            cl.down()


def tick_hist(lab):
    _, body = http_get(lab.url + "/metrics")
    return [ln for ln in body.splitlines() if ln.startswith("pgfailover_tick_duration_seconds")]


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        return None
    v, u = float(m.group(1)), m.group(2)
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[u]


def parse_wrk(text):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["requests_per_s"] = float(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        r[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:.*", text)
    r["socket_errors"] = m.group(0) if m else ""
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else None
    return r


# ----- report ---------------------------------------------------------------------------------

def load_result(part):
    try:
        with open(os.path.join(RESULTS, f"{part}.json")) as f:
            return json.load(f)
    except OSError:
        return None


def fmt(v, nd=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def gnuplot(script, png):
    if not shutil.which("gnuplot"):
        return None
    os.makedirs(IMG, exist_ok=True)
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        log(f"gnuplot failed for {png}: {r.stderr[-500:]}")
        return None
    return "img/" + os.path.basename(png)


def fmt_mb(b):
    return "–" if b is None else f"{b / 2**20:.0f} MB"


def short(name):
    return name.split(" (")[0]


def plot_failover(fo):
    os.makedirs(WORK, exist_ok=True)
    datf = os.path.join(WORK, "failover.dat")
    names = []
    with open(datf, "w") as f:
        for i, (name, runs) in enumerate(fo["configs"].items()):
            names.append(short(name).replace("pg_auto_failover", "pg\\\\_auto\\\\_failover").replace(" ", "\\n"))
            gaps = [r["max_gap_s"] for r in runs if r.get("max_gap_s") is not None]
            for r in runs:
                if r.get("max_gap_s") is not None:
                    f.write(f"{i} {r['max_gap_s']} {statistics.median(gaps)}\n")
    png = os.path.join(IMG, "bench-failover.png")
    xt = ", ".join(f'"{n}" {i}' for i, n in enumerate(names))
    return gnuplot(f"""set terminal pngcairo size 1150,480 font ',10'
set output '{png}'
set bmargin 5
set title 'Longest gap between acknowledged writes after kill -9 of the primary (each point one run; bar = median)'
set ylabel 'seconds'
set xtics ({xt})
set xrange [-0.5:{len(names) - 0.5}]
set yrange [0:*]
set grid ytics
set key outside right top vertical
plot '{datf}' using 1:2 with points pt 7 ps 1.1 lc rgb '#1f77b4' title 'one run', \\
     '{datf}' using 1:3:(0.3):(0) with vectors nohead lw 3 lc rgb '#d62728' title 'median', \\
     '{datf}' using ($1-0.15):3:(0.3):(0) with vectors nohead lw 3 lc rgb '#d62728' notitle
""", png)


def plot_rejoin(rj):
    rows = [r for r in rj["results"] if r.get("pg_basebackup_s") is not None]
    if not rows:
        return None
    datf = os.path.join(WORK, "rejoin.dat")
    with open(datf, "w") as f:
        for r in rows:
            d = (r.get("rejoin") or {}).get("duration_ms")
            f.write(f"{r['db_bytes'] / 2**30:.3f} {d / 1000 if d is not None else 'NaN'} {r['pg_basebackup_s']}\n")
    png = os.path.join(IMG, "bench-rejoin.png")
    return gnuplot(f"""set terminal pngcairo size 800,450 font ',10'
set output '{png}'
set title 'Rejoin of the old primary after a failover, a few MB changed since'
set xlabel 'database size (GiB)'
set ylabel 'seconds'
set grid
set yrange [0:*]
set key top left
plot '{datf}' using 1:2 with linespoints pt 7 lw 2 title 'pgfailover rejoin (pg\\_rewind, start, verify)', \\
     '{datf}' using 1:3 with linespoints pt 5 lw 2 title 'pg\\_basebackup (full re-clone)'
""", png)


def fp_totals(sysres, window):
    g = sysres[window]["groups"]
    return (sum(v["pss_kb_max"] for v in g.values()) / 1024, sum(v["rss_kb_max"] for v in g.values()) / 1024,
            sum(v["cpu_pct"] for v in g.values()))


def plot_footprint(fp):
    datf = os.path.join(WORK, "footprint.dat")
    names = []
    with open(datf, "w") as f:
        for i, (name, res) in enumerate(ordered(fp["systems"])):
            pss, _, cpu = fp_totals(res, "idle")
            _, _, cpu_l = fp_totals(res, "pgbench")
            names.append(name.replace("_", "\\\\_"))
            f.write(f"{i} {pss:.2f} {cpu:.3f} {cpu_l:.3f}\n")
    png = os.path.join(IMG, "bench-footprint.png")
    xt = ", ".join(f'"{n}" {i}' for i, n in enumerate(names))
    return gnuplot(f"""set terminal pngcairo size 1000,420 font ',10'
set output '{png}'
set multiplot layout 1,2 title 'Failover manager processes (Patroni incl. etcd, pg\\_auto\\_failover incl. the monitor and its PostgreSQL)'
set style fill solid 0.7
set boxwidth 0.35
set xtics ({xt})
set xrange [-0.6:{len(names) - 0.4}]
set yrange [0:*]
set grid ytics
set title 'memory: sum of PSS (MB), idle'
plot '{datf}' using 1:2 with boxes notitle lc rgb '#1f77b4'
set title 'CPU (% of one core)'
set key top left
plot '{datf}' using ($1-0.18):3 with boxes title 'idle' lc rgb '#2ca02c', \\
     '{datf}' using ($1+0.18):4 with boxes title 'primary under pgbench' lc rgb '#ff7f0e'
unset multiplot
""", png)


def plot_http(ht):
    datf = os.path.join(WORK, "http.dat")
    labels = []
    with open(datf, "w") as f:
        i = 0
        for name, res in ordered(ht["systems"]):
            for path, r in res.items():
                esc = name.replace("_", "\\\\_")
                labels.append(f"{esc}\\n{path}")
                f.write(f"{i} {r['requests_per_s'] or 0}\n")
                i += 1
    png = os.path.join(IMG, "bench-http.png")
    xt = ", ".join(f'"{n}" {i}' for i, n in enumerate(labels))
    return gnuplot(f"""set terminal pngcairo size 900,460 font ',10'
set output '{png}'
set title 'HTTP API: requests/s under wrk -t2 -c16 (log scale)'
set bmargin 5
set style fill solid 0.7
set boxwidth 0.6
set logscale y
set xtics ({xt})
set xrange [-0.6:{len(labels) - 0.4}]
set grid ytics
plot '{datf}' using 1:2 with boxes notitle lc rgb '#1f77b4'
""", png)


def diverged_cells(d):
    """The three diverged-round cells of a rejoin row."""
    if not d:
        return "– | – | –"
    if d.get("error"):
        return f"not measured ({d['error']}) | – | –"
    last = d.get("rejoin") or {}
    method = last.get("method") or "–"
    if not last.get("succeeded"):
        method += f" (**failed**: {last.get('error')})"
    dur = last.get("duration_ms")
    return f"{method} | {fmt(dur / 1000 if dur is not None else None)} | {fmt(d.get('rejoined_after_s'))}"


def judge_rejoin(ok):
    """Nearly independent of size: the largest at most 1.5 times the smallest, never slower than a re-clone."""
    d = [r["rejoin"]["duration_ms"] / 1000 for r in ok]
    slower = [r["size"] for r in ok if r["rejoin"]["duration_ms"] / 1000 > r["pg_basebackup_s"]]
    if d[-1] <= 1.5 * d[0] and not slower:
        return "yes"
    why = []
    if d[-1] > 1.5 * d[0]:
        why.append(f"grows {d[-1] / d[0]:.1f}×")
    if slower:
        why.append("slower than the re-clone at " + ", ".join(slower))
    return "**partly**: seconds, but " + "; ".join(why) + " (see notes)"


def ordered(systems):
    order = {"pgfailover": 0, "patroni": 1, "pg_auto_failover": 2}
    return sorted(systems.items(), key=lambda kv: order.get(kv[0], 9))


def goals_table(fo, rj, fp, ht):
    L = ["| goal | measured | met? |", "|---|---|---|"]
    if fo:
        for name, runs in fo["configs"].items():
            if name.startswith("pgfailover defaults"):
                s = stats([r.get("max_gap_s") for r in runs])
                if s["median"] is not None:
                    L.append(f"| write downtime at pgfailover's defaults: median ≤ 5 s | median {s['median']:.2f} s "
                             f"(min {s['min']:.2f}, max {s['max']:.2f}, {s['runs']} runs) | {'yes' if s['median'] <= 5 else '**no**'} |")
        meds = {short(n): stats([r.get("max_gap_s") for r in runs])["median"] for n, runs in fo["configs"].items()}
        pd = meds.get("pgfailover defaults")
        others = {k: v for k, v in meds.items() if not k.startswith("pgfailover") and v is not None}
        if pd and others:
            best = min(others, key=others.get)
            L.append(f"| … shorter than the incumbents even at their fastest | pgfailover defaults {pd:.2f} s; fastest other: "
                     f"{best} {others[best]:.2f} s | {'yes' if pd < others[best] else '**no**'} |")
    if rj:
        ok = [r for r in rj["results"] if (r.get("rejoin") or {}).get("succeeded")]
        if ok:
            lo, hi = ok[0], ok[-1]
            dl, dh = lo["rejoin"]["duration_ms"] / 1000, hi["rejoin"]["duration_ms"] / 1000
            L.append(f"| rejoin with a few MB changed: seconds, nearly independent of size | {dl:.1f} s ({lo['rejoin']['method']}) at "
                     f"{lo['size']}, {dh:.1f} s ({hi['rejoin']['method']}) at {hi['size']}; pg_basebackup {lo['pg_basebackup_s']} → "
                     f"{hi['pg_basebackup_s']} s | {judge_rejoin(ok)} |")
    if fp and "pgfailover" in fp.get("systems", {}):
        p = fp["systems"]["pgfailover"]
        g = p["idle"]["groups"]["pgfailover"]
        rss = max(g["rss_kb_max"], p["pgbench"]["groups"]["pgfailover"]["rss_kb_max"]) / 1024
        L.append(f"| resident memory < 10 MB | RSS {rss:.1f} MB (of which anonymous {g['rss_anon_kb_max'] / 1024:.1f} MB, "
                 f"file-backed {g['rss_file_kb_max'] / 1024:.1f} MB); PSS {g['pss_kb_max'] / 1024:.1f} MB | "
                 f"{'yes' if rss < 10 else '**no** (RSS); see notes'} |")
        cpu = max(g["cpu_pct"], p["pgbench"]["groups"]["pgfailover"]["cpu_pct"])
        L.append(f"| CPU well under 1 % of a core at a 1 s interval | {g['cpu_pct']} % idle, "
                 f"{p['pgbench']['groups']['pgfailover']['cpu_pct']} % under pgbench | {'yes' if cpu < 0.5 else '**no**'} |")
    if ht and "pgfailover" in ht.get("systems", {}):
        for path in ("/primary", "/metrics"):
            r = ht["systems"]["pgfailover"].get(path)
            if r:
                ok = (r["requests_per_s"] or 0) >= 1000 and (r["p99_ms"] or 1e9) < 10
                L.append(f"| `{path}`: thousands of req/s, p99 in ms (≤ 10 ms) | {fmt(r['requests_per_s'], 0)} req/s, p99 {fmt(r['p99_ms'])} ms | "
                         f"{'yes' if ok else '**no**' if (r['requests_per_s'] or 0) < 1000 else 'req/s yes, p99 **no**'} |")
        gaps = [r.get("max_tick_gap_s") for r in ht["systems"]["pgfailover"].values() if r.get("max_tick_gap_s")]
        if gaps:
            L.append(f"| probing unaffected while the API is hammered | longest gap between ticks {max(gaps):.2f} s (interval 1 s) | "
                     f"{'yes' if max(gaps) <= 1.2 else '**no**'} |")
    return L


def report():
    m = machine()
    fo, rj, fp, ht = (load_result(p) for p in ("failover", "rejoin", "footprint", "http"))
    L = ["# Benchmarks", "",
         "Generated by `bench/run` from the raw results in `bench/results/*.json` (the notes at the end come from "
         "`bench/NOTES.md`); do not edit by hand.", "",
         "## Reproduce", "",
         "```sh",
         "bench/run --window 90         # everything, as root: installs packages, builds build-bench/ (Release), runs every part",
         "bench/run --quick             # smoke test: 1 run per configuration, 100 MB only, 20 s windows",
         "bench/run failover http       # only some parts (failover rejoin footprint http report)",
         "bench/run --only 'paf' failover                       # rerun some failover configurations, keep the others",
         "bench/run --window 90 --systems pgfailover footprint http   # rerun one system's footprint/API, keep the others",
         "```", "",
         "The tables below come from `bench/run --window 90` run part by part on a loaded machine: failover "
         "(7 configurations × 5 runs) 36 min, rejoin (100 MB, 1 GB, 4 GB) 8 min, footprint and HTTP 14 min (then "
         "`--systems pgfailover footprint http` again, 5 min, after adding the heartbeat-WAL and probe-failure "
         "instrumentation): about an hour in all, plus package installation and the build. Without `--window` the "
         "footprint windows are 120 s (+3 min).", "",
         f"Everything listens on 127.0.0.1 only, on ports {PB}+8, +108/109 (Patroni REST), +379/380 (etcd), +432/433 (pgfailover's "
         "nodes), +532/533 (Patroni's), +632..634 (pg_auto_failover monitor and nodes) with base `BENCH_PORT_BASE` "
         "(26000), and lives under `bench/.work/`, which is removed again. Processes are stopped by PID, never by name. "
         "PostgreSQL, Patroni, pg_autoctl and pg_rewind run as `postgres`.", "",
         "## Machine and load", "",
         f"Report generated {m['date']}: {m['nproc']} CPUs ({m['cpu']}), {m['mem_mb']} MB RAM, kernel {m['kernel']}, "
         f"load average at generation {m['load']}. PostgreSQL 15 (Debian 12), Patroni 3.0.2 with etcd 3.4, "
         "pg_auto_failover 2.0, wrk 4.1. **The machine is shared:** other sessions build and test on the same 2 CPUs, "
         "so every run records the load average (1/5/15 min) next to its figures. A load above 2 means processes "
         "were waiting for a CPU; absolute times are then pessimistic, and all systems ran under comparable load.", ""]
    L += ["## Goals", ""] + goals_table(fo, rj, fp, ht) + [""]

    L += ["## 1. Failover: write downtime on a primary crash", ""]
    if fo:
        L += [f"Results from {fo['machine']['date']}{' (--quick: 1 run per configuration)' if fo.get('quick') else ''}.", "",
              "A writer (`bench/writer.py`, psycopg2) INSERTs a numbered row every 20–50 ms through "
              "`host=127.0.0.1,127.0.0.1 port=P1,P2 target_session_attrs=read-write connect_timeout=1`, reconnecting "
              "after every error. At a random moment 2–6 s after its first 20 acknowledged writes, the primary is "
              "killed with SIGKILL. **pgfailover:** one pgfailover process manages both nodes (as on a third host), so "
              "only the primary's postmaster is killed. **Patroni:** the primary's `patroni` process and its postmaster "
              "together (a host crash). **pg_auto_failover:** the primary node's `pg_autoctl` processes (supervisor, "
              "`node active`, `start/stop postgres`) and its postmaster together; the monitor keeps running. Every run "
              "starts from a fresh cluster. Downtime = the longest gap between two acknowledged writes.", "",
              "| configuration | runs | gap median (s) | gap min | gap max | kill → first write on new primary, median (s) | acked writes lost (total) | load (1 min) per run |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, runs in fo["configs"].items():
            g = stats([r.get("max_gap_s") for r in runs])
            k = stats([r.get("kill_to_first_write_s") for r in runs])
            lost = sum(r.get("lost_acked_writes") or 0 for r in runs)
            loads = ", ".join(r.get("load", "?").split()[0] for r in runs)
            errs = [r["error"] for r in runs if "error" in r]
            L.append(f"| {name} | {g['runs']}{f' (+{len(errs)} failed)' if errs else ''} | {fmt(g['median'])} | {fmt(g['min'])} | "
                     f"{fmt(g['max'])} | {fmt(k['median'])} | {lost} | {loads} |")
        png = plot_failover(fo)
        if png:
            L += ["", f"![failover downtime]({png})"]
        L += ["", "Settings beyond the defaults:", "",
              f"- pgfailover fast: `{json.dumps(fo.get('pgfailover_fast_overrides'))}`.",
              "- Patroni fast: `ttl 10, loop_wait 2, retry_timeout 4` (its rule `ttl >= loop_wait + 2 * retry_timeout` holds).",
              f"- pg_auto_failover tight (the monitor's health checks): `{json.dumps(fo.get('paf_tight_settings'))}`.",
              f"- pg_auto_failover fastest: tight plus `primary_demote_timeout` 2 s: `{json.dumps(fo.get('paf_fastest_settings'))}`.",
              ""]
        errs = [(n, r["error"]) for n, runs in fo["configs"].items() for r in runs if "error" in r]
        for n, e in errs:
            L.append(f"- failed run of {n}: {e}")
        L += ["Lost writes are acknowledged INSERT ids absent from the final primary. pgfailover and Patroni replicate "
              "asynchronously here (both default); pg_auto_failover runs its default, synchronous replication with two "
              "nodes (`number_sync_standbys` 0, so a primary without its secondary goes on alone in `wait_primary`).", ""]
    else:
        L += ["Not run yet (`bench/run failover`).", ""]

    L += ["## 2. Rejoin of the old primary: follow, pg_rewind, and a full pg_basebackup", ""]
    if rj:
        L += [f"Results from {rj['machine']['date']}{' (--quick)' if rj.get('quick') else ''}. One run per size. "
              "Data: `pgbench -i -I dtGvp -s N` on pgfailover's lab cluster (both nodes on this host, rejoined by "
              "pgfailover itself through its `local` executor), replica caught up, CHECKPOINT (steady state: the data "
              "was there long before the crash), a few rows updated, then kill -9 of pg1's postmaster and pgfailover "
              "fails over to pg2. Automatic rejoin is held back (`failover.rejoin` false) until ~4 MB of "
              "pgbench_accounts (rows 1–30000) have been updated on the new primary; then pgfailover is restarted "
              "with rejoin on and does the real thing (docs/lifecycle.md): stop, pre-flight, find where the node's WAL "
              "ends and where the new timeline forked; a node that holds nothing the new primary lacks (its replica "
              "had every record) is started as a standby that follows the new timeline (`follow`), one that diverged "
              "is rewound (CHECKPOINT the source, `pg_rewind`, follow, start). **rejoin** is pgfailover's own "
              "`duration_ms` of that operation (/status `rejoin.last`); **until streaming** is measured from "
              "pgfailover's restart, so it also holds its start-up and `rejoin_grace_ms` (5 s). **pg_basebackup** is "
              "the re-clone the old runbook does, timed directly (`-X stream -c fast` of the whole new primary into an "
              "empty directory; starting that copy is not included). Both nodes keep the lab's `wal_keep_size = "
              "256MB`; *source pg_wal* is what the new primary's pg_wal held when the rejoin started.", "",
              "A second round on the same data measures the path where the old primary did diverge: the new "
              "primary's replica stops receiving (an empty `primary_conninfo`), 100 rows are updated on the primary "
              "alone, its postmaster is killed, pgfailover promotes the replica and rejoins the old primary by itself "
              "(rejoin on, `rejoin_grace_ms` 5 s). **diverged: rejoin** is that rejoin's `duration_ms`, **from the "
              "kill** the time until it finished.", "",
              "| data | database size | load time (s) | WAL written after failover | source pg_wal | pgfailover rejoin: method | rejoin (s) | until streaming (s) | pg_basebackup (s) | diverged: method | diverged: rejoin (s) | diverged: from the kill (s) | load (1/5/15) |",
              "|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---|"]
        for r in rj["results"]:
            if r.get("skipped"):
                L.append(f"| {r['size']} | skipped: {r['skipped']} | | | | | | | | | | | |")
                continue
            last = r.get("rejoin") or {}
            method = last.get("method") or "–"
            if not last.get("succeeded"):
                method += f" (**failed**: {last.get('error')})"
            dur = last.get("duration_ms")
            L.append(f"| {r['size']} (pgbench -s {r['pgbench_scale']}) | {r['db_bytes'] / 1e6:.0f} MB | {r.get('load_s', '–')} | "
                     f"{r['changed_wal_bytes'] / 1e6:.1f} MB | {fmt_mb(r.get('source_pg_wal_bytes'))} | {method} | "
                     f"{fmt(dur / 1000 if dur is not None else None)} | {fmt(r.get('streaming_after_s'))} | "
                     f"{fmt(r['pg_basebackup_s'])} | {diverged_cells(r.get('diverged'))} | {r['load']} |")
        png = plot_rejoin(rj)
        if png:
            L += ["", f"![rejoin time vs size]({png})"]
        L.append("")
    else:
        L += ["Not run yet (`bench/run rejoin`).", ""]

    L += ["## 3. Footprint", ""]
    if fp and fp.get("systems"):
        L += [f"Results from {fp['machine']['date']}{' (--quick)' if fp.get('quick') else ''}; one window of "
              f"{fp['window_s']} s per row, after a {fp.get('warmup_s', 3)} s warm-up once the cluster is up. Idle = nothing but the failover manager talks to PostgreSQL; pgbench = "
              f"`{fp['pgbench']}`. Each system at its defaults (pgfailover: probe every 1 s, heartbeat on; Patroni: "
              "loop_wait 10; pg_auto_failover: health check every 5 s). RSS = VmRSS, PSS = proportional set size "
              "(shared pages divided among the processes sharing them: the fair figure for a sum over processes), "
              "maximum over 1 s samples; CPU = utime+stime (+ reaped children) over the window. CPU s/hour = CPU % × 36.", "",
              "| system | process(es) | RSS (MB) | PSS (MB) | anon RSS (MB) | CPU idle (%) | CPU idle (s/hour) | CPU under pgbench (%) |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
        for name, res in ordered(fp["systems"]):
            for g, v in res["idle"]["groups"].items():
                vl = res["pgbench"]["groups"].get(g, {})
                L.append(f"| {name} | {g} ({v['procs']} proc.) | {v['rss_kb_max'] / 1024:.1f} | {v['pss_kb_max'] / 1024:.1f} | "
                         f"{v['rss_anon_kb_max'] / 1024:.1f} | {v['cpu_pct']:.3f} | {v['cpu_pct'] * 36:.1f} | {vl.get('cpu_pct', 0):.3f} |")
            pss, rss, cpu = fp_totals(res, "idle")
            _, _, cpu_l = fp_totals(res, "pgbench")
            if len(res["idle"]["groups"]) > 1:
                L.append(f"| **{name}** | **total** | {rss:.1f} | **{pss:.1f}** | | **{cpu:.3f}** | {cpu * 36:.1f} | **{cpu_l:.3f}** |")
        L += ["", "What each manager costs its PostgreSQL nodes (idle window; client connections other than the "
              "measurement's own, transactions/s over all databases, all WAL written on the primary during the "
              "idle window — of a cluster a few minutes old, so it includes autovacuum/autoanalyze of the fresh "
              "catalog and first-touch full-page images; pgfailover's own share, from pg_waldump, is given below):", "",
              "| system | client connections primary/replica | xact/s primary/replica | all WAL on idle primary (bytes/s) | load (1/5/15) idle; pgbench |",
              "|---|---|---|---:|---|"]
        for name, res in ordered(fp["systems"]):
            i = res["idle"]
            c = "/".join(str(v) for v in i["client_connections"].values())
            x = "/".join(str(v) for v in i["xact_per_s"].values())
            L.append(f"| {name} | {c} | {x} | {fmt(i['wal_bytes_per_s'], 0)} | {i['load']}; {res['pgbench']['load']} |")
        p = fp["systems"].get("pgfailover")
        if p:
            ticks = p["idle"].get("extra", {}).get("ticks")
            wd = p["idle"].get("wal_detail")
            if wd:
                L += ["", f"**pgfailover's heartbeat WAL: {wd['heartbeat_bytes_per_s']:.0f} bytes/s** ({wd['heartbeat_bytes']} bytes in "
                      f"{wd['heartbeat_xacts']} heartbeat transactions over the idle window; pg_waldump of pg1 between the "
                      "window's LSNs, counting every record on `pgfailover.heartbeat`, full-page images included, and "
                      f"those transactions' commit records; all WAL in the window: {wd['all_bytes']} bytes)."]
            L += ["", f"pgfailover ticked {fmt(ticks, 3)}/s idle (one heartbeat row updated per tick); "
                  "Patroni and pg_auto_failover write no heartbeat. Its threads: "
                  f"{p.get('threads')}; binary `{os.path.relpath(p['binary'], REPO)}` ({p['binary_size_bytes'] / 1e6:.1f} MB).", "",
                  "Where pgfailover's resident memory is (kB, from /proc/PID/smaps, largest first):", "", "| mapping | RSS (kB) |", "|---|---:|"]
            for k, v in list(p["smaps_rss_kb"].items())[:14]:
                L.append(f"| `{k}` | {v} |")
        png = plot_footprint(fp)
        if png:
            L += ["", f"![footprint]({png})"]
        L.append("")
    else:
        L += ["Not run yet (`bench/run footprint`).", ""]

    L += ["## 4. HTTP API", ""]
    if ht and ht.get("systems"):
        L += [f"Results from {ht['machine']['date']}{' (--quick)' if ht.get('quick') else ''}: `wrk -t2 -c16 -d10s --latency` "
              "on the same 2 CPUs as the server, PostgreSQL and the other work. pgfailover probes every 1 s all along; "
              "while wrk runs a thread polls `pgfailover_last_tick_timestamp_seconds` every 100 ms (longest gap between "
              "ticks), and the tick and probe duration histograms are compared before and after. Patroni (defaults) is "
              "hammered on its leader's REST API.", "",
              "| system | path | req/s | p50 (ms) | p90 (ms) | p99 (ms) | non-2xx | wrk socket errors | ticks/s | longest tick gap (s) | tick mean (ms) | probe mean (ms) | load (1/5/15) |",
              "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
        for name, res in ordered(ht["systems"]):
            for path, r in res.items():
                se = r["socket_errors"].replace("Socket errors: ", "") or "none"
                L.append(f"| {name} | `{path}` | {fmt(r['requests_per_s'], 0)} | {fmt(r['p50_ms'])} | {fmt(r['p90_ms'])} | "
                         f"{fmt(r['p99_ms'])} | {r['non_2xx']} | {se} | {fmt(r.get('ticks_per_s_during'), 3)} | "
                         f"{fmt(r.get('max_tick_gap_s'), 3)} | {fmt((r.get('tick_duration') or {}).get('mean_ms'))} | "
                         f"{fmt((r.get('probe_duration') or {}).get('mean_ms'))} | {r['load']} |")
        for path, r in (ht["systems"].get("pgfailover") or {}).items():
            if r.get("probe_failures") or r.get("primary_not_ok_samples") or r.get("non_2xx"):
                reasons = "; ".join(f"{k} ({v}×)" for k, v in (r.get("primary_not_ok_reasons") or {}).items())
                L += ["", f"- pgfailover `{path}` run: probe failures during it: "
                      f"`{json.dumps(r.get('probe_failures'))}`; /primary polled every 100 ms answered non-200 "
                      f"{r.get('primary_not_ok_samples', '?')} times" + (f": {reasons}" if reasons else "") + "."]
        mem = ht.get("pgfailover_memory_after_kb")
        if mem:
            L += ["", f"pgfailover's memory after these runs: RSS {mem['VmRSS'] / 1024:.1f} MB (anonymous "
                  f"{mem['RssAnon'] / 1024:.1f} MB, file-backed {mem['RssFile'] / 1024:.1f} MB), PSS "
                  f"{mem.get('Pss', 0) / 1024:.1f} MB, {mem.get('Threads')} threads."]
        png = plot_http(ht)
        if png:
            L += ["", f"![http]({png})"]
        L.append("")
    else:
        L += ["Not run yet (`bench/run http`).", ""]

    hostile = load_result("http_hostile")
    if hostile:
        sys.path.insert(0, BENCH)
        import http_hostile  # bench/http_hostile.py renders its own section
        L += http_hostile.render(hostile)

    notes_path = os.path.join(BENCH, "NOTES.md")
    L += ["## Reading and notes", ""]
    if os.path.exists(notes_path):
        with open(notes_path) as f:
            L += [f.read().strip(), ""]
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    with open(DOC, "w") as f:
        f.write("\n".join(L) + "\n")
    log(f"wrote {DOC}")


# ----- main -----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run per configuration, smallest sizes, short windows")
    ap.add_argument("--runs", type=int, default=5, help="failover runs per configuration (full run)")
    ap.add_argument("--window", type=int, help="footprint window in seconds (default 120, --quick 20)")
    ap.add_argument("--http-duration", type=int, help="seconds per wrk run (default 10, --quick 5)")
    ap.add_argument("--skip-patroni", action="store_true", help="failover: pgfailover only")
    ap.add_argument("--only", help="failover: regex on configuration ids (pgfailover-defaults, pgfailover-fast, "
                    "patroni-defaults, patroni-fast, paf-defaults, paf-tight, paf-fastest); other configurations' earlier "
                    "results are kept")
    ap.add_argument("--systems", help="footprint/http: regex on pgfailover, patroni, pg_auto_failover; "
                    "the other systems' earlier results are kept")
    ap.add_argument("--no-install", action="store_true", help="do not run apt-get")
    ap.add_argument("parts", nargs="*", default=[])
    args = ap.parse_args()
    parts = args.parts or ["failover", "rejoin", "footprint", "http"]
    for p in parts:
        if p not in ("failover", "rejoin", "footprint", "http", "report"):
            ap.error(f"unknown part {p}")
    t0 = time.time()
    os.makedirs(WORK, exist_ok=True)
    os.chmod(WORK, 0o755)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    failed = []
    try:
        if set(parts) - {"report"}:
            if not args.no_install:
                install_deps()
            build()
            if not os.access(PGF_BIN, os.X_OK):
                raise RuntimeError(f"{PGF_BIN} missing")
        for p in parts:
            try:
                if p == "failover":
                    part_failover(args)
                elif p == "rejoin":
                    part_rejoin(args)
                elif p in ("footprint", "http"):
                    if p == "http" and "footprint" in parts:
                        continue
                    part_footprint_http(args, "footprint" in parts, "http" in parts)
            except Exception as e:  # noqa: BLE001
                log(f"part {p} FAILED: {e}")
                failed.append(p)
            finally:
                cleanup_started()
        report()
    finally:
        cleanup_started()
        ran = bool(set(parts) - {"report"})  # "report" alone touches no cluster and no work folder
        if ran:
            Lab().down()
        if ran and os.path.isdir(WORK):
            # everything but the daemon logs of each run (bench/.work/logs, git-ignored)
            for name in os.listdir(WORK):
                path = os.path.join(WORK, name)
                if name == "logs":
                    continue
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
    log(f"done in {time.time() - t0:.0f} s (load {loadavg()}); failed parts: {failed or 'none'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
