#!/usr/bin/python3
"""pgfailover benchmarks. Usage: bench/run [--quick] [--runs N] [PART...]

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
WORK = os.path.join(BENCH, ".work")
RESULTS = os.path.join(BENCH, "results")
DOC = os.path.join(REPO, "docs", "benchmarks.md")
IMG = os.path.join(REPO, "docs", "img")
PGBIN = "/usr/lib/postgresql/15/bin"
BUILD_DIR = os.path.join(REPO, "build-bench")
PGF_BIN = os.environ.get("PGFAILOVER_BIN", os.path.join(BUILD_DIR, "pgfailover"))
PACKAGES = ["wrk", "gnuplot-nox", "patroni", "etcd-server", "python3-etcd", "python3-psycopg2",
            "postgresql-15-auto-failover", "jq", "postgresql-15", "postgresql-client-15"]

# Ports (loopback only), away from the lab's defaults (6432/6433/8008).
PGF_PORTS = (25432, 25433)
PGF_HTTP = 25008
PAT_PORTS = (25532, 25533)
PAT_REST = (25108, 25109)
ETCD_PORTS = (25379, 25380)

STARTED = []  # Popen objects we started; stopped by PID at exit


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
        return
    log(f"building pgfailover in {BUILD_DIR}")
    sh(["cmake", "-S", REPO, "-B", BUILD_DIR, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
        "-DPGFAILOVER_BUILD_TESTS=OFF"], timeout=600)
    sh(["cmake", "--build", BUILD_DIR, "--target", "pgfailover", "-j2"], timeout=3600)


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


def part_failover(args):
    runs = 1 if args.quick else args.runs
    configs = {}
    fast = {"probe": {"interval_ms": 500}, "failover": {"confirmed_down_timeout_ms": 1500}}
    prev = load_result("failover")
    if args.only and prev:
        configs = prev.get("configs", {})  # keep the configurations not rerun

    def want(name):
        # saves what is done so far, so an interrupted run keeps its finished configurations
        save("failover", {"quick": args.quick, "configs": configs, "pgfailover_fast_overrides": fast})
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
    save("failover", {"quick": args.quick, "configs": configs, "pgfailover_fast_overrides": fast})


# ----- rejoin ---------------------------------------------------------------------------------

def part_rejoin(args):
    sizes = [("100 MB", 7)] if args.quick else [("100 MB", 7), ("1 GB", 68)]
    results = []
    for label, scale in sizes:
        lab = Lab()
        try:
            log(f"rejoin {label}: setting up (load {loadavg()})")
            lab.up()
            sh(["pgbench", "-i", "-q", "-s", str(scale), "-d", lab.dsn(PGF_PORTS[0])], timeout=1800)
            db_size = int(lab.psql(PGF_PORTS[0], "SELECT pg_database_size('postgres')"))
            wait_for(lambda: lab.psql(PGF_PORTS[0], "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)),1) FROM pg_stat_replication") == "0",
                     300, "replica caught up")
            pid = postmaster_pid(lab.data_dir("pg1"))
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: lab.status().get("primary") == "pg2" and
                     lab.psql(PGF_PORTS[1], "SELECT pg_is_in_recovery()") == "f", 120, "failover to pg2")
            lsn0 = lab.psql(PGF_PORTS[1], "SELECT pg_current_wal_lsn()")
            lab.psql(PGF_PORTS[1], "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 30000; CHECKPOINT")
            changed = int(lab.psql(PGF_PORTS[1], f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn0}')"))
            # pg_rewind as pgfailover runs it (src/lifecycle/rejoin.cc): the old primary crashed,
            # pg_rewind recovers it in single-user mode itself, then rewinds from the new primary.
            passfile = os.path.join(WORK, "rejoin.pgpass")
            with open(os.path.join(lab.dir, "replication.password")) as f:
                rp = f.read().strip()
            with open(os.path.join(lab.dir, "pgfailover.password")) as f:
                sp = f.read().strip()
            with open(passfile, "w") as f:
                f.write(f"127.0.0.1:*:*:replicator:{rp}\n127.0.0.1:*:*:pgfailover:{sp}\n")
            os.chmod(passfile, 0o600)
            shutil.chown(passfile, "postgres", "postgres")
            dd = lab.data_dir("pg1")
            src = f"host=127.0.0.1 port={PGF_PORTS[1]} user=pgfailover dbname=postgres passfile={passfile}"
            t0 = time.time()
            sh([*setpriv_postgres(), "sh", "-c",
                f"rm -f {dd}/standby.signal {dd}/recovery.signal && {PGBIN}/pg_rewind --target-pgdata={dd} --source-server='{src}'"],
               timeout=3600)
            t_rewind = time.time() - t0
            clone = os.path.join(lab.dir, "clone")
            os.makedirs(clone)
            shutil.chown(clone, "postgres", "postgres")
            src_repl = f"host=127.0.0.1 port={PGF_PORTS[1]} user=replicator passfile={passfile}"
            t0 = time.time()
            sh([*setpriv_postgres(), f"{PGBIN}/pg_basebackup", "-D", os.path.join(clone, "data"), "-X", "stream",
                "-c", "fast", "-d", src_repl], timeout=3600)
            t_clone = time.time() - t0
            r = {"size": label, "pgbench_scale": scale, "db_bytes": db_size, "changed_wal_bytes": changed,
                 "pg_rewind_s": round(t_rewind, 2), "pg_basebackup_s": round(t_clone, 2), "load": loadavg()}
            log(f"  -> {r}")
            results.append(r)
            save("rejoin", {"quick": args.quick, "results": results})
        finally:
            lab.down()
    save("rejoin", {"quick": args.quick, "results": results})


# ----- footprint & http ---------------------------------------------------------------------

def part_footprint_http(args, do_footprint, do_http):
    window = 20 if args.quick else args.window
    lab = Lab()
    fp, ht = {}, {}
    try:
        log(f"footprint/http: setting up (load {loadavg()})")
        lab.up()
        pid = lab.daemon_pid()
        time.sleep(3)
        if do_footprint:
            def measure(label, load_cmd=None):
                p1 = PGF_PORTS[0]
                conns = {n: int(lab.psql(lab.port(n), "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgfailover%'"))
                         for n in ("pg1", "pg2")}
                xq = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'postgres'"
                x0 = {n: int(lab.psql(lab.port(n), xq)) for n in ("pg1", "pg2")}
                lsn0 = lab.psql(p1, "SELECT pg_current_wal_lsn()")
                ticks0 = lab.metric("pgfailover_ticks_total")
                bg = None
                if load_cmd:
                    bg = subprocess.Popen(load_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    STARTED.append(bg)
                c0, _ = proc_cpu_rss(pid)
                t0 = time.time()
                rss_samples = []
                while time.time() - t0 < window:
                    rss_samples.append(proc_cpu_rss(pid)[1])
                    time.sleep(1)
                c1, rss = proc_cpu_rss(pid)
                el = time.time() - t0
                ticks1 = lab.metric("pgfailover_ticks_total")
                lsn1 = lab.psql(p1, "SELECT pg_current_wal_lsn()")
                x1 = {n: int(lab.psql(lab.port(n), xq)) for n in ("pg1", "pg2")}
                wal = int(lab.psql(p1, f"SELECT pg_wal_lsn_diff('{lsn1}', '{lsn0}')"))
                if bg:
                    stop_pid(bg.pid)
                    bg.wait()
                    STARTED.remove(bg)
                r = {"window_s": round(el, 1), "rss_kb_max": max(rss_samples + [rss]), "rss_kb_end": rss,
                     "cpu_s": round(c1 - c0, 3), "cpu_pct": round(100 * (c1 - c0) / el, 3),
                     "connections": conns,
                     # 3 psql calls of ours per node land inside the window (xact counter is per database)
                     "xact_per_s": {n: round((x1[n] - x0[n] - 3) / el, 2) for n in x0},
                     "ticks_per_s": round((ticks1 - ticks0) / el, 3) if ticks0 is not None else None,
                     "load": loadavg()}
                if not load_cmd:
                    r["heartbeat_wal_bytes_per_s"] = round(wal / el, 1)
                else:
                    r["wal_bytes_per_s_with_pgbench"] = round(wal / el, 1)
                log(f"  footprint {label}: {r}")
                return r
            fp["idle"] = measure("idle")
            sh(["pgbench", "-i", "-q", "-s", "5", "-d", lab.dsn(PGF_PORTS[0])], timeout=900)
            fp["pgbench"] = measure("pgbench", ["pgbench", "-n", "-c", "4", "-j", "2", "-T", str(window + 5),
                                                "-d", lab.dsn(PGF_PORTS[0])])
            fp["pgbench"]["pgbench"] = "-c 4 -j 2 (TPC-B-like) on the primary"
            fp["probe_interval_ms"] = 1000
            save("footprint", {"quick": args.quick, "pgfailover": fp})
        if do_http:
            dur = 5 if args.quick else 10
            for path in ("/primary/pg1", "/status", "/metrics"):
                t0 = time.time()
                ticks0 = lab.metric("pgfailover_ticks_total")
                r = sh(["wrk", "-t2", "-c16", f"-d{dur}s", "--latency", lab.url + path], timeout=dur + 60)
                el = time.time() - t0
                ticks1 = lab.metric("pgfailover_ticks_total")
                ht[path] = parse_wrk(r.stdout)
                ht[path]["ticks_per_s_during"] = round((ticks1 - ticks0) / el, 3)
                ht[path]["load"] = loadavg()
                ht[path]["duration_s"] = dur
                log(f"  http {path}: {ht[path]}")
            ht["tick_duration_histogram_after"] = tick_hist(lab)
            save("http", {"quick": args.quick, "pgfailover": ht})
    finally:
        lab.down()


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


def plot_failover(fo):
    if not shutil.which("gnuplot"):
        return None
    os.makedirs(IMG, exist_ok=True)
    datf = os.path.join(WORK, "failover.dat")
    os.makedirs(WORK, exist_ok=True)
    names = []
    with open(datf, "w") as f:
        for i, (name, runs) in enumerate(fo["configs"].items()):
            names.append(name.split(" (")[0])
            for r in runs:
                if r.get("max_gap_s") is not None:
                    f.write(f"{i} {r['max_gap_s']} {r['kill_to_first_write_s']}\n")
    png = os.path.join(IMG, "failover-downtime.png")
    xt = ", ".join(f'"{n}" {i}' for i, n in enumerate(names))
    script = f"""set terminal pngcairo size 900,450
set output '{png}'
set title 'Write downtime after kill -9 of the primary (each point one run)'
set ylabel 'seconds'
set xtics ({xt})
set xrange [-0.5:{len(names) - 0.5}]
set yrange [0:*]
set grid ytics
plot '{datf}' using ($1-0.1):2 with points pt 7 ps 1.2 title 'longest gap between acked writes', \\
     '{datf}' using ($1+0.1):3 with points pt 5 ps 1.2 title 'kill to first write on new primary'
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        r = subprocess.run(["gnuplot"], input=script.replace("pngcairo", "png"), text=True, capture_output=True)
    return "img/failover-downtime.png" if r.returncode == 0 else None


def report():
    m = machine()
    L = ["# Benchmarks", "",
         "Generated by `bench/run` from the raw results in `bench/results/*.json`; do not edit by hand.", "",
         "## Reproduce", "",
         "```sh",
         "sudo bench/run                 # everything: installs packages, builds build-bench/; roughly 40 min on a loaded 2-CPU machine",
         "sudo bench/run --quick         # smoke test: 1 run per configuration, smallest sizes (8 min 52 s here, load 12)",
         "sudo bench/run failover http   # only some parts (failover rejoin footprint http report)",
         "sudo bench/run --runs 3 --window 60 failover footprint http rejoin   # what produced the tables below",
         "sudo bench/run --only 'patroni' failover   # rerun some configurations, keep the others' results",
         "```", "",
         "Runs as root (apt-get; PostgreSQL, Patroni and pg_rewind run as `postgres`). Everything listens on",
         "127.0.0.1 only, on ports 25008, 25108-25109, 25379-25380, 25432-25433, 25532-25533, and lives under",
         "`bench/.work/`, which is removed again. Processes are stopped by PID, never by name.", "",
         "## Machine", "",
         f"Report generated {m['date']}: {m['nproc']} CPUs ({m['cpu']}), {m['mem_mb']} MB RAM, kernel {m['kernel']}, "
         f"load average at generation {m['load']}. Each table also gives the load average (1/5/15 min) "
         "measured during the runs: the machine was shared with other builds, so absolute figures are pessimistic "
         "and noisy.", ""]

    fo = load_result("failover")
    L += ["## 1. Failover: write downtime on a primary crash", ""]
    if fo:
        L += [f"Results from {fo['machine']['date']}{' (--quick: 1 run per configuration)' if fo.get('quick') else ''}.", "",
              "A writer (`bench/writer.py`, psycopg2) INSERTs a numbered row every 20–50 ms through "
              "`host=127.0.0.1,127.0.0.1 port=P1,P2 target_session_attrs=read-write connect_timeout=1`, reconnecting "
              "after every error. At a random moment 2–6 s after it starts writing, the primary is killed with "
              "SIGKILL. **pgfailover:** one pgfailover process manages both nodes, so only the primary's "
              "postmaster is killed (pgfailover keeps running, as it would on a third host). **Patroni:** the "
              "primary's `patroni` process and its postmaster are killed together (a host crash). Every run starts "
              "from a fresh cluster.", "",
              "| configuration | metric | runs | median | min | max |", "|---|---|---:|---:|---:|---:|"]
        for name, runs in fo["configs"].items():
            ok = [r for r in runs if "error" in r or r.get("max_gap_s") is not None]
            for key, label in (("max_gap_s", "longest gap between acked writes (s)"),
                               ("kill_to_first_write_s", "kill → first write on new primary (s)"),
                               ("lost_acked_writes", "acknowledged writes lost")):
                s = stats([r.get(key) for r in ok])
                L.append(f"| {name} | {label} | {s['runs']} | {fmt(s['median'])} | {fmt(s['min'])} | {fmt(s['max'])} |")
            errs = [r["error"] for r in runs if "error" in r]
            if errs:
                L.append(f"| {name} | failed runs | {len(errs)} | {errs[0]} | | |")
        L += ["", "Load average during each run (1/5/15 min):", ""]
        for name, runs in fo["configs"].items():
            L.append(f"- {name}: " + "; ".join(r.get("load", "?") for r in runs))
        png = plot_failover(fo)
        if png:
            L += ["", f"![failover downtime]({png})"]
        ov = fo.get("pgfailover_fast_overrides")
        L += ["", f"pgfailover fast settings: `{json.dumps(ov)}`. Why this is still safe: a failover after "
              "`confirmed_down_timeout_ms` needs *proof* the primary is down (connection refused/reset by the "
              "server's host) on every probe for 1.5 s (3 consecutive probes at 0.5 s), **and** the replica must "
              "confirm that its WAL receiver lost the primary too; a silent/hung primary or a broken link still waits "
              "`unresponsive_timeout_ms` (10 s, unchanged), and a primary that answers \"starting up\" gets 30 s. "
              "What it gives up: a primary whose port refuses connections for more than 1.5 s (e.g. a slow "
              "`pg_ctl restart`) can be failed over where the 3 s default would have waited. The probe deadlines "
              "(`connect_timeout_ms`, `query_timeout_ms`) stay at 1000 ms: a first trial with 500 ms deadlines "
              "failed over in 12.3 s instead of ~2.5 s on this loaded machine (presumably probes that time out count as "
              "silence, the 10 s path, not as proof; not verified) — short deadlines did not help. "
              "The 0.5 s probe doubles pgfailover's queries and heartbeat WAL.", ""]
        L += ["Lost writes are acknowledged INSERT ids absent from the final primary. Replication is "
              "asynchronous in all configurations (pgfailover `synchronous.mode` off, Patroni "
              "`synchronous_mode` off), so a crash can lose what the replica had not yet received; on loopback "
              "that window is tiny.", ""]
    else:
        L += ["Not run yet (`bench/run failover`).", ""]

    rj = load_result("rejoin")
    L += ["## 2. Rejoin: pg_rewind vs a full pg_basebackup", ""]
    if rj:
        L += [f"Results from {rj['machine']['date']}{' (--quick)' if rj.get('quick') else ''}. "
              "Not through the daemon: after pgfailover failed over (kill -9 of pg1's postmaster), a few MB are "
              "changed on the new primary (`UPDATE` of pgbench_accounts rows 1–30000, a contiguous ~4 MB of the table, then CHECKPOINT), then the "
              "same commands pgfailover's rejoin runs (src/lifecycle/rejoin.cc) are timed directly: "
              "`pg_rewind --target-pgdata=... --source-server=...` on the crashed old primary (which includes "
              "pg_rewind's own single-user crash recovery), and `pg_basebackup -D ... -X stream -c fast` into an "
              "empty directory. Starting the node and catching up are not included in either. One run per size.", "",
              "| data | database size | WAL changed after failover | pg_rewind (s) | pg_basebackup (s) | load |",
              "|---|---:|---:|---:|---:|---|"]
        for r in rj["results"]:
            L.append(f"| {r['size']} (pgbench -s {r['pgbench_scale']}) | {r['db_bytes'] / 1e6:.0f} MB | "
                     f"{r['changed_wal_bytes'] / 1e6:.1f} MB | {r['pg_rewind_s']} | {r['pg_basebackup_s']} | {r['load']} |")
        L.append("")
    else:
        L += ["Not run yet (`bench/run rejoin`).", ""]

    fp = load_result("footprint")
    L += ["## 3. Footprint", ""]
    if fp:
        p = fp["pgfailover"]
        L += [f"Results from {fp['machine']['date']}{' (--quick)' if fp.get('quick') else ''}; pgfailover at its "
              f"defaults (probe every {p['probe_interval_ms']} ms, heartbeat on), one measurement window per row. "
              "RSS from /proc/PID/status VmRSS (max over 1 s samples), CPU = utime+stime delta / window. "
              "Transactions/s per node from `pg_stat_database` (xact_commit+xact_rollback of database postgres, "
              "minus the 3 of the measurement itself); idle means nothing but pgfailover talks to PostgreSQL.", "",
              "| pgfailover | window (s) | RSS max (MB) | CPU (%) | connections pg1/pg2 | xact/s pg1/pg2 | WAL on primary (bytes/s) | ticks/s | load |",
              "|---|---:|---:|---:|---|---|---:|---:|---|"]
        for k in ("idle", "pgbench"):
            r = p.get(k)
            if not r:
                continue
            wal = r.get("heartbeat_wal_bytes_per_s", r.get("wal_bytes_per_s_with_pgbench"))
            L.append(f"| {k}{' (' + r['pgbench'] + ')' if k == 'pgbench' else ''} | {r['window_s']} | {r['rss_kb_max'] / 1024:.1f} | "
                     f"{r['cpu_pct']} | {r['connections']['pg1']}/{r['connections']['pg2']} | "
                     f"{r['xact_per_s']['pg1']}/{r['xact_per_s']['pg2']} | {fmt(wal, 0)} | {r['ticks_per_s']} | {r['load']} |")
        L += ["", "The idle WAL figure is what pgfailover's heartbeat (one row updated per tick) writes; under "
              "pgbench the WAL column is pgbench's, shown only for scale. RSS includes the shared libraries "
              "mapped (libpq, OpenSSL, libstdc++) of a RelWithDebInfo build. Patroni's and pg_auto_failover's "
              "footprint were not measured (see Notes).", ""]
    else:
        L += ["Not run yet (`bench/run footprint`).", ""]

    ht = load_result("http")
    L += ["## 4. HTTP API", ""]
    if ht:
        p = ht["pgfailover"]
        L += [f"Results from {ht['machine']['date']}{' (--quick)' if ht.get('quick') else ''}: "
              "`wrk -t2 -c16 -dNs --latency` against a running pgfailover (probe every 1 s) on the same 2-CPU "
              "machine as wrk, PostgreSQL and the other work (so wrk competes with pgfailover for the CPUs). "
              "Ticks/s during the run should stay at 1.0 if probing stays on time.", "",
              "| path | duration (s) | requests/s | p50 (ms) | p75 (ms) | p90 (ms) | p99 (ms) | non-2xx | wrk socket errors | ticks/s during | load |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
        for path, r in p.items():
            if not path.startswith("/"):
                continue
            L.append(f"| `{path}` | {r['duration_s']} | {fmt(r['requests_per_s'], 0)} | {fmt(r['p50_ms'])} | {fmt(r['p75_ms'])} | "
                     f"{fmt(r['p90_ms'])} | {fmt(r['p99_ms'])} | {r['non_2xx']} | "
                     f"{r['socket_errors'].replace('Socket errors: ', '') or 'none'} | {r['ticks_per_s_during']} | {r['load']} |")
        hist = p.get("tick_duration_histogram_after")
        if hist:
            L += ["", "Tick duration histogram after the HTTP runs:", "", "```"] + hist + ["```"]
        L.append("")
    else:
        L += ["Not run yet (`bench/run http`).", ""]

    notes_path = os.path.join(BENCH, "NOTES.md")
    L += ["## Notes and caveats", ""]
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
    ap.add_argument("--window", type=int, default=120, help="footprint window in seconds (full run)")
    ap.add_argument("--skip-patroni", action="store_true", help="failover: pgfailover only")
    ap.add_argument("--only", help="failover: regex on configuration ids (pgfailover-defaults, pgfailover-fast, "
                    "patroni-defaults, patroni-fast); other configurations' earlier results are kept")
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
