#!/usr/bin/python3
"""Writer for the failover benchmark: one INSERT every 20-50 ms through a multi-host DSN,
reconnecting on error. Every attempt is one JSON line: t (unix s), ok, id, port, err."""
import json, random, signal, sys, time
import psycopg2

dsn, out_path = sys.argv[1], sys.argv[2]
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

out = open(out_path, "w", buffering=1)
conn = None
port = None
next_id = 0
while not stop:
    if conn is None:
        t = time.time()
        try:
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            port = conn.info.port
        except Exception as e:  # noqa: BLE001
            out.write(json.dumps({"t": t, "ok": False, "kind": "connect", "err": str(e).strip()[:120]}) + "\n")
            conn = None
            time.sleep(0.02)
            continue
    next_id += 1
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO bench_writes(id) VALUES (%s)", (next_id,))
        out.write(json.dumps({"t": time.time(), "ok": True, "id": next_id, "port": port}) + "\n")
    except Exception as e:  # noqa: BLE001
        out.write(json.dumps({"t": time.time(), "ok": False, "kind": "insert", "id": next_id, "port": port,
                              "err": str(e).strip()[:120]}) + "\n")
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
        conn = None
    time.sleep(random.uniform(0.02, 0.05))
out.close()
