"""Footprint: memory and CPU of each failover manager's processes over an idle window and one
under pgbench, and what the manager costs its PostgreSQL nodes (connections, transactions, WAL)."""
import re
import subprocess
import time

from .. import env
from ..procs import group_sample, stop_pid
from ..systems import SYSTEMS
from ..util import load_result, loadavg, log, save, sh
from .http import measure_http


def measure_system(cluster, window, label, load_cmd=None, extra=None, wal_detail=None):
    """RSS/PSS/CPU of each process group of a cluster over the window, plus what the manager costs
    PostgreSQL."""
    ports = cluster.ports
    me = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    xq = "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database"
    conns = {p: int(cluster.psql(p, me)) for p in ports}
    x0 = {p: int(cluster.psql(p, xq)) for p in ports}
    lsn0 = cluster.psql(ports[0], "SELECT pg_current_wal_lsn()")
    e0 = extra() if extra else None
    bg = None
    if load_cmd:
        bg = subprocess.Popen(load_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env.STARTED.append(bg)
    pids = {g: f() for g, f in cluster.footprint_groups().items()}
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
    lsn1 = cluster.psql(ports[0], "SELECT pg_current_wal_lsn()")
    x1 = {p: int(cluster.psql(p, xq)) for p in ports}
    e1 = extra() if extra else None
    wal = int(cluster.psql(ports[0], f"SELECT pg_wal_lsn_diff('{lsn1}', '{lsn0}')"))
    if bg:
        stop_pid(bg.pid)
        bg.wait()
        env.STARTED.remove(bg)
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
    log(f"  footprint {cluster.name} {label}: {r}")
    return r


def measure_footprint(cluster, window, pgbench_cmd):
    """The idle window, then pgbench's tables and the window under pgbench."""
    counters = cluster.footprint_counters()
    res = {"idle": measure_system(cluster, window, "idle", extra=counters, wal_detail=cluster.footprint_wal_detail())}
    primary = cluster.dsn(cluster.ports[0])
    sh(["pgbench", "-i", "-q", "-s", "5", "-d", primary], timeout=900)
    res["pgbench"] = measure_system(cluster, window, "pgbench", pgbench_cmd(primary), extra=counters)
    res.update(cluster.footprint_details())
    return res


def part_footprint_http(args, do_footprint, do_http):
    """Both parts on one cluster per system (each at its defaults): set up once, measure the footprint,
    then hammer the API, where the system has one the bench measures."""
    window = args.window or (20 if args.quick else 120)
    dur = args.http_duration or (5 if args.quick else 10)
    fp = {"window_s": window, "systems": {}}
    ht = {"systems": {}}
    pgbench_cmd = lambda dsn: ["pgbench", "-n", "-c", "4", "-j", "2", "-T", str(window + 5), "-d", dsn]  # noqa: E731
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

    for system in SYSTEMS:
        http = do_http and bool(system.http_paths)
        if not want_sys(system.name) or not (do_footprint or http):
            continue
        cl = system.at_defaults()
        try:
            log(f"{'footprint/http' if system.http_paths else 'footprint'} {system.title}: setting up (load {loadavg()})")
            cl.up()
            time.sleep(warmup)
            if do_footprint:
                fp["systems"][cl.name] = measure_footprint(cl, window, pgbench_cmd)
                save("footprint", {"quick": args.quick, **fp})
            if http:
                ht["systems"][cl.name] = measure_http(cl, dur)
                ht.update(cl.http_details())
                save("http", {"quick": args.quick, **ht})
        finally:
            cl.down()
