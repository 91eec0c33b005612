"""Failover: write downtime when the primary is killed with SIGKILL, per system and configuration."""
import json
import os
import random
import re
import subprocess
import time

from .. import env
from ..procs import stop_pid
from ..systems import PafCluster, PatroniCluster, PgfailoverLab
from ..systems.paf import PAF_FASTEST, PAF_TIGHT
from ..util import load_result, loadavg, log, save, wait_for

PGFAILOVER_FAST = {"probe": {"interval_ms": 500}, "failover": {"confirmed_down_timeout_ms": 1500}}

# (id for --only, the name the results and the report give it, a fresh cluster of it)
CONFIGS = (
    ("pgfailover-defaults", "pgfailover defaults (probe 1 s, confirmed_down 3 s)", lambda: PgfailoverLab()),
    ("pgfailover-fast", "pgfailover fast (probe 0.5 s, confirmed_down 1.5 s)", lambda: PgfailoverLab(PGFAILOVER_FAST)),
    ("patroni-defaults", "Patroni defaults (ttl 30, loop_wait 10, retry_timeout 10)",
     lambda: PatroniCluster(ttl=30, loop_wait=10, retry_timeout=10)),
    ("patroni-fast", "Patroni fast (ttl 10, loop_wait 2, retry_timeout 4)",
     lambda: PatroniCluster(ttl=10, loop_wait=2, retry_timeout=4)),
    ("paf-defaults", "pg_auto_failover defaults (health check every 5 s, unhealthy after 20 s)", lambda: PafCluster()),
    ("paf-tight", "pg_auto_failover tight (health check every 1 s, unhealthy after 2 s)", lambda: PafCluster(PAF_TIGHT)),
    ("paf-fastest", "pg_auto_failover fastest (tight + primary_demote_timeout 2 s)", lambda: PafCluster(PAF_FASTEST)),
)
CONFIG_IDS = tuple(cid for cid, _, _ in CONFIGS)


def run_writer_and_kill(dsn, kill_fn, sql_final, work, timeout):
    """Start the writer, kill at a random moment, wait for writes on another port, stop.
    Returns the per-run measurements."""
    out = os.path.join(work, "writer.jsonl")
    w = subprocess.Popen(["/usr/bin/python3", os.path.join(env.BENCH, "writer.py"), dsn, out])
    env.STARTED.append(w)

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
    env.STARTED.remove(w)
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


def failover_runs(config_name, make_cluster, runs):
    """runs failovers of a fresh cluster each: set up, write, kill the primary, measure, tear down."""
    out = []
    for i in range(runs):
        cl = make_cluster()
        work = os.path.join(env.WORK, "failover")
        os.makedirs(work, exist_ok=True)
        try:
            log(f"failover {config_name} run {i + 1}/{runs}: setting up (load {loadavg()})")
            cl.up()
            cl.psql(cl.ports[0], "CREATE TABLE bench_writes(id bigint PRIMARY KEY, t timestamptz DEFAULT now())")
            kill = cl.crash_primary()
            res = run_writer_and_kill(cl.dsn(), kill, lambda port: cl.psql(port, "SELECT id FROM bench_writes"), work,
                                      cl.failover_timeout)
            res.update(cl.failover_details())
            log(f"  -> {res}")
            out.append(res)
        finally:
            cl.down()
    return out


def part_failover(args):
    runs = 1 if args.quick else args.runs
    configs = {}
    prev = load_result("failover")
    if args.only and prev:
        configs = prev.get("configs", {})  # keep the configurations not rerun

    def save_so_far():
        save("failover", {"quick": args.quick, "configs": configs, "pgfailover_fast_overrides": PGFAILOVER_FAST,
                          "paf_tight_settings": PAF_TIGHT, "paf_fastest_settings": PAF_FASTEST})
    for cid, name, make_cluster in CONFIGS:
        if args.skip_patroni and cid.startswith("patroni"):
            continue
        save_so_far()  # an interrupted run keeps its finished configurations
        if not args.only or re.search(args.only, cid):
            configs[name] = failover_runs(cid, make_cluster, runs)
    save_so_far()
