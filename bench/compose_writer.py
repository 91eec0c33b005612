#!/usr/bin/python3
"""Writer for bench/compose_failover.sh: one INSERT every INTERVAL seconds (default 0.05) through
HAProxy's read-write port of the compose lab, reconnecting at once after any error. Every attempt
is one JSON line: t (unix s, when the answer came), sent (unix s, when the INSERT or the connect
started), ok, addr (the server's address that acknowledged it, from inet_server_addr()), kind and
err on failure. Stops on SIGTERM/SIGINT, or after --max-seconds.

Usage: compose_writer.py --port 5432 --passfile FILE --out FILE [--interval 0.05] [--max-seconds N]
Debian's python3 (/usr/bin/python3) with python3-psycopg2.
"""
import argparse
import json
import signal
import time

import psycopg2

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--passfile", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--interval", type=float, default=0.05)
parser.add_argument("--max-seconds", type=float, default=3600)
args = parser.parse_args()

stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

dsn = (f"host={args.host} port={args.port} dbname=postgres user=pgfailover passfile={args.passfile} "
       "connect_timeout=2 application_name=bench-compose-writer")
deadline = time.monotonic() + args.max_seconds
out = open(args.out, "a", buffering=1)
conn = None
next_at = time.monotonic()
while not stop and time.monotonic() < deadline:
    sent = time.time()
    try:
        if conn is None:
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("INSERT INTO public.bench_compose(sent) VALUES (to_timestamp(%s)) "
                        "RETURNING host(inet_server_addr())", (sent,))
            addr = cur.fetchone()[0]
        out.write(json.dumps({"t": time.time(), "sent": sent, "ok": True, "addr": addr}) + "\n")
    except Exception as e:  # noqa: BLE001 - every failure is a data point
        kind = "connect" if conn is None else "insert"
        out.write(json.dumps({"t": time.time(), "sent": sent, "ok": False, "kind": kind,
                              "err": str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__})
                  + "\n")
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
            conn = None
    next_at += args.interval
    pause = next_at - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    else:
        next_at = time.monotonic()  # behind (a long wait for an answer): no burst to catch up
out.close()
