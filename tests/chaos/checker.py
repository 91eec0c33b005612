#!/usr/bin/python3
"""Independent write checker for the chaos suite (tests/chaos/run.sh).

Runs inside the lab's client namespace and judges pgfailover from the outside, knowing nothing
of its internals:

  record   writes one row every 20-50 ms through the multi-host DSN (target_session_attrs=
           read-write), recording for every attempt its time, result and which node acknowledged
           it (server address, system identifier, timeline); samples every node directly every
           100 ms (reachable, pg_is_in_recovery(), default_transaction_read_only, timeline, WAL
           receiver, streaming replicas). Runs until SIGTERM or SIGINT, then reads the rows back
           from the final primary and prints one JSON report (see analyze()).

Every database call has a deadline: a hung (SIGSTOPped) server keeps its TCP connection open
and libpq would wait forever, so a watchdog shuts the socket down when a call overruns. An
attempt cut off that way has an unknown outcome: it counts as not acknowledged, and if its row
turns up later it is reported as "unacknowledged but present", which is fine.

A commit whose wait for a synchronous standby was cancelled returns success with a WARNING;
the checker treats that as not acknowledged (an application must not trust it) and counts it.

Offline, from the raw records of a run whose checker was killed (no rows read back):
  checker.py analyze --raw RAW.jsonl --events EVENTS.jsonl --node pg1=.. --node pg2=.. --run-id ID

Usage (as run.sh does):
  ip netns exec PREFIXclient /usr/bin/python3 checker.py record --dsn DSN \
     --node pg1=10.231.78.11 --node pg2=10.231.78.12 --passfile FILE --run-id ID \
     --events EVENTS.jsonl --raw RAW.jsonl > REPORT.json

EVENTS.jsonl is written by run.sh while the checker runs: one {"t": unix, "event": NAME} per
line (fault, heal, ...). The report measures from the first "fault" event.
"""

import argparse
import json
import os
import random
import signal
import socket
import sys
import threading
import time

import psycopg2
import psycopg2.extensions

WRITE_DEADLINE_S = 3.0  # a write (connect excluded) that takes longer has an unknown outcome
SAMPLE_DEADLINE_S = 1.0  # a sample query that takes longer: the node is not answering
SAMPLE_INTERVAL_S = 0.1
CONNECT_TIMEOUT_S = 2  # libpq's minimum; applies to each host of the multi-host DSN
PAIR_WINDOW_S = 0.3  # samples of two nodes this close in time describe the same moment
SYNC_CANCEL_NOTICE = "canceling wait for synchronous replication"

stop = threading.Event()


def now():
    return time.time()


class Watchdog:
    """Shuts a connection's socket down when a call overruns its deadline, so a blocked libpq
    call returns with an error instead of hanging on a server that never answers."""

    def __init__(self, conn, seconds):
        self.conn = conn
        self.fired = False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True

    def _fire(self):
        self.fired = True
        try:
            fd = self.conn.fileno()
            s = socket.socket(fileno=os.dup(fd))
            try:
                s.shutdown(socket.SHUT_RDWR)
            finally:
                s.close()
        except Exception:  # the connection may be gone already
            pass

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        return False


def connect(dsn, application_name):
    conn = psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, application_name=application_name,
                            keepalives=1, keepalives_idle=2, keepalives_interval=1, keepalives_count=2,
                            tcp_user_timeout=3000)
    conn.autocommit = True
    return conn


def close_quietly(conn):
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass


class Log:
    """Raw records, one JSON object a line, flushed as they come (kept if the checker dies)."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1) if path else None
        self.records = []

    def add(self, rec):
        with self.lock:
            self.records.append(rec)
            if self.f:
                self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")


def writer(args, log):
    """One row per attempt, ids strictly increasing, every 20-50 ms."""
    conn = None
    sysid = None
    next_id = 1
    while not stop.is_set():
        rid = next_id
        next_id += 1
        rec = {"k": "w", "id": rid, "t0": now()}
        try:
            if conn is None or conn.closed:
                close_quietly(conn)
                conn = None
                conn = connect(args.dsn, "chaos-writer")
                with Watchdog(conn, WRITE_DEADLINE_S), conn.cursor() as cur:
                    cur.execute("SELECT system_identifier::text FROM pg_control_system()")
                    sysid = cur.fetchone()[0]
            rec["tc"] = now()
            del conn.notices[:]
            with Watchdog(conn, WRITE_DEADLINE_S) as dog, conn.cursor() as cur:
                try:
                    # The identity comes from the transaction that wrote the row: no later
                    # question can be answered by another server.
                    cur.execute(
                        "INSERT INTO chaos.writes (id, run) VALUES (%s, %s) "
                        "RETURNING host(inet_server_addr()), "
                        "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int",
                        (rid, args.run_id))
                    addr, tl = cur.fetchone()
                except Exception:
                    if dog.fired:
                        raise TimeoutError("no answer within %.1f s" % WRITE_DEADLINE_S)
                    raise
            rec["t1"] = now()
            if any(SYNC_CANCEL_NOTICE in n for n in conn.notices):
                rec.update(r="sync_cancelled", node=addr, tl=tl, sysid=sysid)
            else:
                rec.update(r="ok", node=addr, tl=tl, sysid=sysid)
        except Exception as e:  # any failure: the outcome of this attempt is unknown
            rec["t1"] = now()
            rec["r"] = "error"
            rec["err"] = (type(e).__name__ + ": " + str(e).strip().splitlines()[0])[:200] if str(e).strip() else type(e).__name__
            close_quietly(conn)
            conn = None
        log.add(rec)
        stop.wait(random.uniform(0.020, 0.050))
    close_quietly(conn)


SAMPLE_SQL = """
SELECT pg_is_in_recovery(),
       current_setting('default_transaction_read_only'),
       CASE WHEN pg_is_in_recovery()
            THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
                          (SELECT timeline_id FROM pg_control_checkpoint()))
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       (SELECT status FROM pg_stat_wal_receiver),
       (SELECT received_tli FROM pg_stat_wal_receiver),
       (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'),
       (SELECT system_identifier::text FROM pg_control_system())
"""


def sampler(name, host, args, log):
    dsn = "host=%s port=%d dbname=postgres user=%s passfile=%s" % (host, args.port, args.user, args.passfile)
    conn = None
    while not stop.is_set():
        t0 = now()
        rec = {"k": "s", "n": name, "t0": t0}
        try:
            if conn is None or conn.closed:
                close_quietly(conn)
                conn = None
                # A bare TCP connect first, with a short deadline: libpq's connect_timeout is 2 s
                # at least, and a connect begun while the node was cut off keeps waiting on SYN
                # retransmits after the link is back, so the sampler would see a returning node
                # (a split-brain window) up to 2 s late, or not at all.
                socket.create_connection((host, args.port), timeout=0.3).close()
                conn = connect(dsn, "chaos-sampler")
            with Watchdog(conn, SAMPLE_DEADLINE_S), conn.cursor() as cur:
                cur.execute(SAMPLE_SQL)
                rec_, ro, tl, wr, wr_tli, nstream, sysid = cur.fetchone()
            rec.update(up=True, rec=rec_, ro=(ro == "on"), tl=tl, wr=wr, wtl=wr_tli, ns=nstream, sysid=sysid)
        except Exception as e:
            rec["up"] = False
            rec["err"] = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            close_quietly(conn)
            conn = None
        rec["t"] = now()  # the state holds at some instant in [t0, t]; t is when we learned it
        log.add(rec)
        stop.wait(max(0.0, SAMPLE_INTERVAL_S - (now() - t0)))
    close_quietly(conn)


def writable(s):
    return s.get("up") and s.get("rec") is False and s.get("ro") is False


def healthy_pair(a, b):
    """A primary that a streaming replica follows on its timeline."""
    for p, r in ((a, b), (b, a)):
        if (writable(p) and (p.get("ns") or 0) >= 1 and r.get("up") and r.get("rec") is True
                and r.get("wr") == "streaming" and r.get("wtl") == p.get("tl")):
            return True
    return False


def timeline_of_moments(samples, names):
    """Merges the per-node samples into moments: at each sample, the latest sample of every other
    node, if it is recent enough to describe the same moment."""
    latest = {}
    moments = []
    for s in sorted(samples, key=lambda s: s["t"]):
        latest[s["n"]] = s
        if len(latest) < len(names):
            continue
        if all(abs(s["t"] - latest[n]["t"]) <= PAIR_WINDOW_S for n in names):
            moments.append((s["t"], dict(latest)))
    return moments


def final_state(args, names_hosts):
    """Reads the rows back from the writable node (the final primary) and, once caught up, from
    the replica. Returns (primary name, ids on the primary, ids on the replica or None, notes)."""
    notes = []
    nodes = {}
    deadline = now() + args.final_timeout
    primary = None
    while now() < deadline and primary is None:
        writable_nodes = []
        for name, host in names_hosts:
            dsn = "host=%s port=%d dbname=postgres user=%s passfile=%s" % (host, args.port, args.user, args.passfile)
            try:
                c = connect(dsn, "chaos-final")
                with Watchdog(c, 5.0), c.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')")
                    rec, ro = cur.fetchone()
                nodes[name] = c
                if not rec and ro == "off":
                    writable_nodes.append(name)
            except Exception as e:
                notes.append("final: %s: %s" % (name, (str(e).strip().splitlines() or ["?"])[0]))
        if len(writable_nodes) == 1:
            primary = writable_nodes[0]
        else:
            if len(writable_nodes) > 1:
                notes.append("final: two writable nodes: %s" % writable_nodes)
            for c in nodes.values():
                close_quietly(c)
            nodes = {}
            time.sleep(1)
    if primary is None:
        return None, None, None, notes

    def ids(c):
        with Watchdog(c, 30.0), c.cursor() as cur:
            cur.execute("SELECT id FROM chaos.writes WHERE run = %s", (args.run_id,))
            return {r[0] for r in cur.fetchall()}

    on_primary = ids(nodes[primary])
    on_replica = None
    with nodes[primary].cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()")
        target = cur.fetchone()[0]
    for name, c in nodes.items():
        if name == primary:
            continue
        # Wait until the replica replayed everything the primary had written when we read it.
        try:
            end = now() + 30
            while True:
                with Watchdog(c, 5.0), c.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
                    caught_up = cur.fetchone()[0]
                if caught_up:
                    on_replica = ids(c)
                    break
                if now() > end:
                    notes.append("final: replica %s did not replay up to %s within 30 s" % (name, target))
                    break
                time.sleep(0.5)
        except Exception as e:
            notes.append("final: replica %s: %s" % (name, (str(e).strip().splitlines() or ["?"])[0]))
    for c in nodes.values():
        close_quietly(c)
    return primary, on_primary, on_replica, notes


def analyze(args, records, events, names_hosts):
    names = [n for n, _ in names_hosts]
    host_to_name = {h: n for n, h in names_hosts}
    writes = sorted((r for r in records if r["k"] == "w"), key=lambda r: r["id"])
    samples = [r for r in records if r["k"] == "s"]
    acked = [w for w in writes if w["r"] == "ok"]
    fault_at = next((e["t"] for e in events if e["event"] == "fault"), None)
    out = {"run_id": args.run_id, "events": events, "attempts": len(writes), "acknowledged": len(acked),
           "errors": sum(1 for w in writes if w["r"] == "error"),
           "sync_cancelled_commits": sum(1 for w in writes if w["r"] == "sync_cancelled")}
    first_t = writes[0]["t0"] if writes else None
    out["duration_s"] = round(writes[-1]["t1"] - first_t, 3) if writes else 0

    # Acknowledgements by node and timeline.
    by_node = {}
    for w in acked:
        key = "%s@tl%s" % (host_to_name.get(w["node"], w["node"]), w["tl"])
        by_node[key] = by_node.get(key, 0) + 1
    out["acks_by_node_timeline"] = by_node

    # Stale acknowledgements: a write acknowledged on a timeline older than one that had already
    # acknowledged a write before this attempt started. Such a write lives in a history that the
    # cluster has left behind: the old primary took it after the new one was in charge.
    stale = []
    max_tl_acked_before = []  # (t1, tl) sorted by t1
    for w in sorted(acked, key=lambda w: w["t1"]):
        max_tl_acked_before.append((w["t1"], w["tl"]))
    best = 0
    idx = 0
    for w in sorted(acked, key=lambda w: w["t0"]):
        while idx < len(max_tl_acked_before) and max_tl_acked_before[idx][0] < w["t0"]:
            best = max(best, max_tl_acked_before[idx][1])
            idx += 1
        if w["tl"] < best:
            stale.append({"id": w["id"], "node": host_to_name.get(w["node"], w["node"]), "tl": w["tl"],
                          "newest_tl_before": best, "t": w["t1"]})
    out["stale_acks"] = len(stale)
    out["stale_ack_examples"] = stale[:5]

    # Longest stretch without an acknowledged write, and the one around the fault.
    gaps = []
    prev = first_t
    for w in sorted(acked, key=lambda w: w["t1"]):
        gaps.append((w["t1"] - prev, prev, w["t1"]))
        prev = w["t1"]
    if writes:
        gaps.append((writes[-1]["t1"] - prev, prev, writes[-1]["t1"]))
    g = max(gaps) if gaps else (0, None, None)
    out["longest_write_gap_s"] = round(g[0], 3)
    out["longest_write_gap_from"] = g[1]

    # Fault -> first acknowledged write on a new primary (another node or a newer timeline than
    # the last acknowledgement before the fault).
    out["fault_at"] = fault_at
    out["fault_to_first_new_primary_write_s"] = None
    out["fault_to_first_write_s"] = None
    if fault_at is not None:
        before = [w for w in acked if w["t1"] <= fault_at]
        after = sorted((w for w in acked if w["t1"] > fault_at), key=lambda w: w["t1"])
        if after:
            out["fault_to_first_write_s"] = round(after[0]["t1"] - fault_at, 3)
        if before:
            last = max(before, key=lambda w: w["t1"])
            new = next((w for w in after if w["tl"] > last["tl"] or w["node"] != last["node"]), None)
            if new is not None:
                out["fault_to_first_new_primary_write_s"] = round(new["t1"] - fault_at, 3)
                out["new_primary"] = host_to_name.get(new["node"], new["node"])
            out["primary_before"] = host_to_name.get(last["node"], last["node"])

    # Promotions: every promotion starts a new timeline. Counted from what the samples and the
    # acknowledgements saw of writable nodes' timelines, first against last.
    tls = [(s["t"], s["tl"]) for s in samples if writable(s) and s.get("tl")]
    tls += [(w["t1"], w["tl"]) for w in acked]
    tls.sort()
    if tls:
        start_tl = tls[0][1]
        end_tl = max(t for _, t in tls)
        out["timeline_start"] = start_tl
        out["timeline_end"] = end_tl
        out["promotions"] = end_tl - start_tl
    else:
        out["promotions"] = None

    # Split brain: moments where two nodes would both accept a write.
    moments = timeline_of_moments(samples, names)
    windows = []
    cur = None
    for t, m in moments:
        both = sum(1 for n in names if writable(m[n])) >= 2
        if both:
            if cur is None:
                cur = {"from": t, "to": t, "samples": 0,
                       "timelines": {n: m[n].get("tl") for n in names}}
            cur["to"] = t
            cur["samples"] += 1
        elif cur is not None:
            windows.append(cur)
            cur = None
    if cur is not None:
        windows.append(cur)
    for w in windows:
        w["duration_s"] = round(w["to"] - w["from"], 3)
    out["split_brain_windows"] = len(windows)
    out["split_brain_detail"] = windows[:5]
    out["moments_sampled"] = len(moments)
    out["samples"] = {n: sum(1 for s in samples if s["n"] == n) for n in names}

    # Back to a primary and a streaming replica: the last moment health started and held to the
    # end of the recording.
    healthy_since = None
    for t, m in moments:
        if healthy_pair(m[names[0]], m[names[1]]):
            if healthy_since is None:
                healthy_since = t
        else:
            healthy_since = None
    out["healthy_at_end"] = healthy_since is not None
    out["healthy_since"] = healthy_since
    ref = fault_at if fault_at is not None else first_t
    # 0 when the samples never saw the cluster leave health (a fault only pgfailover noticed).
    out["fault_to_healthy_s"] = round(max(0.0, healthy_since - ref), 3) if healthy_since and ref else None
    last_primary = None
    if moments:
        m = moments[-1][1]
        last_primary = next((n for n in names if writable(m[n])), None)
    out["primary_at_end_sampled"] = last_primary

    # The rows, read back from the final primary.
    if args.mode == "analyze":
        primary, on_primary, on_replica, notes = None, None, None, ["analyze: rows not read back (offline)"]
    else:
        primary, on_primary, on_replica, notes = final_state(args, names_hosts)
    out["final_primary"] = primary
    out["notes"] = notes
    if on_primary is None:
        out["lost_acked"] = None
        out["unacked_present"] = None
    else:
        acked_ids = {w["id"] for w in acked}
        not_acked_ids = {w["id"] for w in writes if w["r"] != "ok"}
        lost = sorted(acked_ids - on_primary)
        out["lost_acked"] = len(lost)
        out["lost_acked_ids"] = lost[:50]
        lost_detail = {}
        for w in acked:
            if w["id"] in set(lost):
                key = "%s@tl%s" % (host_to_name.get(w["node"], w["node"]), w["tl"])
                lost_detail[key] = lost_detail.get(key, 0) + 1
        out["lost_acked_by_node_timeline"] = lost_detail
        out["unacked_present"] = len(not_acked_ids & on_primary)
        out["unknown_ids_present"] = len(on_primary - acked_ids - not_acked_ids)
        if on_replica is not None:
            out["replica_missing_acked"] = len((acked_ids & on_primary) - on_replica)
            out["replica_extra"] = len(on_replica - on_primary)
        else:
            out["replica_missing_acked"] = None
            out["replica_extra"] = None
    return out


def ensure_table(args):
    deadline = now() + args.final_timeout
    last = None
    while now() < deadline:
        try:
            c = connect(args.dsn, "chaos-setup")
            with Watchdog(c, 10.0), c.cursor() as cur:
                cur.execute("CREATE SCHEMA IF NOT EXISTS chaos")
                cur.execute("CREATE TABLE IF NOT EXISTS chaos.writes (id bigint NOT NULL, run text NOT NULL, "
                            "at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run, id))")
            close_quietly(c)
            return
        except Exception as e:
            last = e
            time.sleep(1)
    raise SystemExit("checker: cannot create chaos.writes through the DSN: %s" % last)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["record", "analyze"],
                    help="record: write, sample, report; analyze: report again from a --raw file, offline")
    ap.add_argument("--dsn")
    ap.add_argument("--node", action="append", required=True, help="NAME=ADDRESS, once per node (two)")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--user", default="pgfailover")
    ap.add_argument("--passfile")
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--raw")
    ap.add_argument("--ready-file", help="touched once writes and samples run")
    ap.add_argument("--final-timeout", type=float, default=60.0)
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="stop by itself after this long")
    args = ap.parse_args()
    names_hosts = []
    for spec in args.node:
        name, _, host = spec.partition("=")
        if not name or not host:
            ap.error("--node takes NAME=ADDRESS")
        names_hosts.append((name, host))
    if len(names_hosts) != 2:
        ap.error("exactly two --node")

    if args.mode == "analyze":
        records = []
        with open(args.raw) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass  # a last line cut short when the checker was killed
        events = [json.loads(line) for line in open(args.events) if line.strip()]
        json.dump(analyze(args, records, events, names_hosts), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        return
    if not args.dsn or not args.passfile:
        ap.error("record needs --dsn and --passfile")

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ensure_table(args)
    log = Log(args.raw)
    threads = [threading.Thread(target=writer, args=(args, log), daemon=True)]
    for name, host in names_hosts:
        threads.append(threading.Thread(target=sampler, args=(name, host, args, log), daemon=True))
    for t in threads:
        t.start()
    if args.ready_file:
        open(args.ready_file, "w").close()
    # Poll rather than block in stop.wait(): the kernel may deliver SIGTERM to any thread, and
    # Python runs the handler only when the main thread executes bytecode again, so a main
    # thread blocked for max_seconds would notice the signal only then.
    end = now() + args.max_seconds
    while not stop.is_set() and now() < end:
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(WRITE_DEADLINE_S + CONNECT_TIMEOUT_S * 2 + 2)
    events = []
    if os.path.exists(args.events):
        with open(args.events) as f:
            for line in f:
                line = line.strip()
                if line:
                    events.append(json.loads(line))
    report = analyze(args, list(log.records), events, names_hosts)
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
