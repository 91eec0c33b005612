#!/usr/bin/python3
"""Kill -9 of the primary -> first acknowledged write, through HAProxy and through a multi-host
libpq client, in the same run (docs/benchmarks.md, "Kill -> first write: HAProxy and libpq").

Every run: the loopback lab (scripts/lab.sh, its own folder and ports), HAProxy 2.6 with the
configuration of docs/haproxy.md (port 5000's section: checks against pgfailover's
/primary/<server name>, inter 1s downinter 250ms fastinter 250ms fall 2 rise 1,
on-marked-down shutdown-sessions), and two writers started at once (bench/writer.py, one INSERT
every 20-50 ms, reconnecting after every error):

  haproxy  host=127.0.0.1 port=<HAProxy's primary port> connect_timeout=1
  libpq    host=127.0.0.1,127.0.0.1 port=P1,P2 target_session_attrs=read-write connect_timeout=1

At a random moment 2-6 s after both have 20 acknowledged writes, the primary's postmaster gets
SIGKILL. Measured from that moment: each writer's first acknowledged write on the new primary
(the first after its first error: see first_write_on_new_primary), and (polled every
20 ms from here) when pgfailover's /primary/<new> first answers 200. Runs as root (lab.sh runs
PostgreSQL as postgres); everything listens on 127.0.0.1; every process is stopped by PID.

    bench/haproxy_failover.py [--runs 5] [--port-base 27400] [--out bench/results/haproxy_failover.json]

PGFAILOVER_BIN picks the binary (default build/pgfailover); it is copied first, so a rebuild
during the runs changes nothing.
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
STARTED = []

HAPROXY_CFG = """global
    maxconn 200

defaults
    mode tcp
    timeout connect 4s
    timeout client 30m
    timeout server 30m
    timeout check 2s
    default-server inter 1s downinter 250ms fastinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions

listen primary
    bind 127.0.0.1:{listen}
    option httpchk
    http-check send meth GET uri-lf /primary/%[srv_name]
    http-check expect status 200
    server pg1 127.0.0.1:{p1} check port {http} addr 127.0.0.1
    server pg2 127.0.0.1:{p2} check port {http} addr 127.0.0.1
"""


def log(msg):
    print(f"haproxy_failover [{time.strftime('%H:%M:%S')}]: {msg}", flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def sh(args, env=None, check=True, timeout=600):
    p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}")
    return p


def http_code(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:  # noqa: BLE001
        return 0


def wait_for(pred, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {seconds}s waiting for {what}")


def stop_pid(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def records(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                out.append(r)
    except FileNotFoundError:
        pass
    return out


def acks(path):
    return [r for r in records(path) if r.get("ok")]


def first_write_on_new_primary(path, t_kill):
    """The first acknowledged write after the writer's first error after the kill: a write still
    acknowledged over the old connection (the killed postmaster's backend finishing its INSERT)
    is not one, and after an error the writer always connects again."""
    failed = False
    for r in records(path):
        if r["t"] <= t_kill:
            continue
        if not r.get("ok"):
            failed = True
        elif failed:
            return r["t"]
    return None


class Lab:
    def __init__(self, work, ports, binary):
        self.dir = os.path.join(work, "lab")
        self.ports = ports
        self.env = dict(os.environ, LAB_DIR=self.dir, LAB_PG_PORTS=f"{ports['pg1']},{ports['pg2']}",
                        LAB_HTTP_PORT=str(ports["http"]), LAB_SKIP_DEPS="1", LAB_SKIP_BUILD="1",
                        PGFAILOVER_BIN=binary, LAB_TIMEOUT="120")
        self.url = f"http://127.0.0.1:{ports['http']}"

    def lab(self, *args, check=True):
        return sh(["bash", os.path.join(REPO, "scripts", "lab.sh"), *args], env=self.env, check=check)

    def status(self):
        try:
            with urllib.request.urlopen(self.url + "/status", timeout=2) as r:
                return json.loads(r.read())
        except Exception:  # noqa: BLE001
            return {}

    def dsn(self, port=None):
        tail = (f"dbname=postgres user=pgfailover passfile={self.dir}/pgpass sslmode=verify-full "
                f"sslrootcert={self.dir}/ca/ca.crt connect_timeout=1")
        if port:
            return f"host=127.0.0.1 port={port} {tail}"
        return (f"host=127.0.0.1,127.0.0.1 port={self.ports['pg1']},{self.ports['pg2']} {tail} "
                "target_session_attrs=read-write")

    def psql(self, port, sql):
        return sh(["psql", "-X", "-A", "-t", "-q", "-d", self.dsn(port), "-c", sql]).stdout.strip()

    def postmaster_pid(self, node):
        with open(os.path.join(self.dir, node, "data", "postmaster.pid")) as f:
            return int(f.readline().strip())


def one_run(i, runs, work, ports, binary):
    lab = Lab(work, ports, binary)
    lab.lab("down", check=False)
    procs = []
    try:
        log(f"run {i + 1}/{runs}: lab up (load {loadavg()})")
        lab.lab("up")
        wait_for(lambda: lab.status().get("state") == "healthy", 90, "pgfailover healthy")
        primary = lab.status().get("primary")
        other = "pg2" if primary == "pg1" else "pg1"
        lab.psql(ports[primary], "CREATE TABLE IF NOT EXISTS bench_writes(id bigint, t timestamptz DEFAULT now())")

        cfg = os.path.join(work, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(listen=ports["haproxy"], p1=ports["pg1"], p2=ports["pg2"],
                                       http=ports["http"]))
        sh(["haproxy", "-c", "-q", "-f", cfg])
        hlog = open(os.path.join(work, f"haproxy-{i + 1}.log"), "w")
        hp = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=hlog, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
        procs.append(hp)
        wait_for(lambda: subprocess.run(["psql", "-X", "-A", "-t", "-q", "-d", lab.dsn(ports["haproxy"]),
                                         "-c", "SELECT 1"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL).returncode == 0, 30,
                 "HAProxy routing to the primary")

        outs = {"haproxy": os.path.join(work, f"writer-haproxy-{i + 1}.jsonl"),
                "libpq": os.path.join(work, f"writer-libpq-{i + 1}.jsonl")}
        dsns = {"haproxy": lab.dsn(ports["haproxy"]), "libpq": lab.dsn()}
        for name in ("haproxy", "libpq"):
            w = subprocess.Popen(["/usr/bin/python3", os.path.join(BENCH, "writer.py"), dsns[name], outs[name]],
                                 stdin=subprocess.DEVNULL)
            procs.append(w)
        wait_for(lambda: all(len(acks(p)) > 20 for p in outs.values()), 60, "both writers' first writes")
        time.sleep(random.uniform(2.0, 6.0))

        pid = lab.postmaster_pid(primary)
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        first = {}
        published = None
        deadline = t_kill + 60
        while time.time() < deadline and (len(first) < 2 or published is None):
            if published is None and http_code(f"{lab.url}/primary/{other}") == 200:
                published = time.time()
            for name, path in outs.items():
                if name not in first:
                    t = first_write_on_new_primary(path, t_kill)
                    if t is not None:
                        first[name] = t
            time.sleep(0.02)
        res = {"run": i + 1, "killed": primary, "load": loadavg()}
        for name in outs:
            res[f"{name}_s"] = round(first[name] - t_kill, 3) if name in first else None
        res["published_s"] = round(published - t_kill, 3) if published else None
        if res["haproxy_s"] is not None and res["libpq_s"] is not None:
            res["haproxy_minus_libpq_s"] = round(res["haproxy_s"] - res["libpq_s"], 3)
        log(f"  -> {res}")
        return res
    finally:
        for p in reversed(procs):
            stop_pid(p.pid)
            p.wait()
        lab.lab("down", check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--port-base", type=int, default=27400)
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "haproxy_failover.json"))
    ap.add_argument("--check-config", action="store_true",
                    help="only check the HAProxy configuration the runs use (haproxy -c), then exit")
    args = ap.parse_args()
    b = args.port_base
    ports = {"http": b + 8, "pg1": b + 32, "pg2": b + 33, "haproxy": b + 100}
    if args.check_config:
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".cfg") as f:
            f.write(HAPROXY_CFG.format(listen=ports["haproxy"], p1=ports["pg1"], p2=ports["pg2"],
                                       http=ports["http"]))
            f.flush()
            sys.exit(subprocess.run(["haproxy", "-c", "-q", "-f", f.name]).returncode)
    if args.runs < 1:
        sys.exit("--runs must be at least 1")
    if os.geteuid() != 0:
        sys.exit("run as root: the lab runs PostgreSQL as postgres")
    for tool in ("haproxy", "psql"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install haproxy postgresql-client (scripts/install-deps.sh)")
    work = os.path.join(BENCH, ".work", "haproxy_failover")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.chmod(work, 0o755)
    os.chmod(os.path.dirname(work), 0o755)
    src = os.environ.get("PGFAILOVER_BIN", os.path.join(REPO, "build", "pgfailover"))
    binary = os.path.join(work, "pgfailover")
    shutil.copy2(src, binary)
    os.chmod(binary, 0o755)
    commit = sh(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    haproxy_version = sh(["haproxy", "-v"]).stdout.splitlines()[0]

    results = []
    for i in range(args.runs):
        try:
            results.append(one_run(i, args.runs, work, ports, binary))
        except Exception as e:  # noqa: BLE001
            log(f"  run {i + 1} failed: {e}")
            results.append({"run": i + 1, "error": str(e)[-500:]})

    def med(key):
        vals = [r[key] for r in results if r.get(key) is not None]
        return {"median": round(statistics.median(vals), 3), "min": min(vals), "max": max(vals),
                "n": len(vals)} if vals else None

    summary = {k: med(k) for k in ("haproxy_s", "libpq_s", "haproxy_minus_libpq_s", "published_s")}
    doc = {"generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "commit": commit,
           "haproxy": haproxy_version, "runs": results, "summary": summary}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    log(f"summary: {json.dumps(summary)}")
    log(f"written {args.out}")
    shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in results if "error" in r or r.get("haproxy_s") is None or r.get("libpq_s") is None]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
