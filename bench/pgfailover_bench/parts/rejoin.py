"""Rejoin: pgfailover brings the old primary back after a failover (follow, or pg_rewind when it
diverged), timed against the full re-clone (pg_basebackup) the old runbook does."""
import os
import shutil
import signal
import time

from .. import env
from ..procs import postmaster_pid, setpriv_postgres
from ..systems import PgfailoverLab
from ..util import loadavg, log, save, sh, wait_for


def rejoin_diverged(lab, replica, primary, rewind):
    """`replica` stops receiving, `primary` commits rows only it has, `primary` is killed,
    pgfailover promotes `replica` and rejoins the old primary by itself (rejoin on, with
    failover.rewind = `rewind`): the path where the old primary really diverged. Returns
    pgfailover's rejoin report, the time from the kill and what the new primary's pg_wal held."""
    p_replica, p_primary = lab.port(replica), lab.port(primary)
    lab.restart_daemon({"failover": {"rejoin": True, "rewind": rewind}})
    wait_for(lambda: (lab.node_status(replica).get("wal_receiver") or {}).get("status") == "streaming",
             120, f"{replica} streaming before the diverged round")
    lab.psql(p_primary, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 2000")
    wait_for(lambda: lab.psql(p_primary, "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)),1) "
                                         "FROM pg_stat_replication") == "0", 300, f"{replica} caught up")
    # the replica's WAL receiver stops (an empty primary_conninfo), so nothing more reaches it
    lab.psql(p_replica, "ALTER SYSTEM SET primary_conninfo = ''")
    lab.psql(p_replica, "SELECT pg_reload_conf()")
    wait_for(lambda: lab.psql(p_primary, "SELECT count(*) FROM pg_stat_replication") == "0", 60,
             f"{replica}'s WAL receiver gone")
    lab.psql(p_primary, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100")
    before = lab.node_status(primary).get("rejoin") or {}
    attempts = before.get("attempts", 0)
    t0 = time.time()
    os.kill(postmaster_pid(lab.data_dir(primary)), signal.SIGKILL)
    wait_for(lambda: lab.status().get("primary") == replica and
             lab.psql(p_replica, "SELECT pg_is_in_recovery()") == "f", 180, f"failover to {replica}")
    lab.psql(p_replica, "ALTER SYSTEM RESET primary_conninfo")
    t_promoted = round(time.time() - t0, 2)
    src_wal = int(lab.psql(p_replica, "SELECT sum(size) FROM pg_ls_waldir()"))

    def finished():
        rj = lab.node_status(primary).get("rejoin") or {}
        last = rj.get("last") or {}
        return last if rj.get("attempts", 0) > attempts and not rj.get("running") else None
    last = wait_for(finished, 3600, f"pgfailover's rejoin of {primary}", interval=0.25)
    out = {"rewind": rewind, "rejoin": last, "promoted_after_s": t_promoted,
           "rejoined_after_s": round(time.time() - t0, 2), "source_pg_wal_bytes": src_wal, "load": loadavg()}
    log(f"  diverged ({rewind}) -> {out}")
    return out


SIZES = [("100 MB", 7), ("1 GB", 68), ("4 GB", 273), ("10 GB", 680)]


def part_rejoin(args):
    sizes = SIZES[:1] if args.quick else SIZES
    if os.environ.get("BENCH_REJOIN_SIZES"):  # e.g. "100 MB,10 GB": only those rows
        wanted = [w.strip() for w in os.environ["BENCH_REJOIN_SIZES"].split(",")]
        sizes = [s for s in SIZES if s[0] in wanted]
    results = []
    for label, scale in sizes:
        free_gb = shutil.disk_usage(env.WORK).free / 2**30
        # two nodes + the clone (removed again) + retained WAL: about 3.5 times the data, plus headroom
        need_gb = 3.5 * scale * 15 / 2**10 + 5
        if free_gb < need_gb:
            log(f"rejoin {label}: skipped, {free_gb:.0f} GB free on {env.WORK}, want {need_gb:.0f} GB")
            results.append({"size": label, "pgbench_scale": scale, "skipped": f"{free_gb:.0f} GB free, want {need_gb:.0f} GB"})
            continue
        lab = PgfailoverLab()
        try:
            log(f"rejoin {label}: setting up (load {loadavg()})")
            # the lab's pgfailover rejoins by itself (local executor); held back until the data changed
            lab.up({"failover": {"rejoin": False}})
            p1, p2 = env.PGF_PORTS
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
                rj = lab.node_status("pg1").get("rejoin") or {}
                last = rj.get("last") or {}
                return last if last.get("finished_at") and not rj.get("running") else None
            last = wait_for(finished, 3600, "pgfailover's rejoin of pg1", interval=0.25)
            t_done = time.time() - t0

            def streams():
                n = lab.node_status("pg1")
                return (n.get("wal_receiver") or {}).get("status") == "streaming" and n.get("in_recovery")
            try:
                wait_for(streams, 120, "pg1 streaming again")
                t_stream = round(time.time() - t0, 2)
            except RuntimeError:
                t_stream = None
            # the re-clone for comparison: pg_basebackup of the whole new primary
            passfile = os.path.join(env.WORK, "rejoin.pgpass")
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
            sh([*setpriv_postgres(), f"{env.PGBIN}/pg_basebackup", "-D", os.path.join(clone, "data"), "-X", "stream",
                "-c", "fast", "-d", src_repl], timeout=3600,
               env=dict(os.environ, HOME="/var/lib/postgresql"))  # libpq looks for ~/.postgresql
            t_clone = time.time() - t0
            shutil.rmtree(clone, ignore_errors=True)
            r = {"size": label, "pgbench_scale": scale, "db_bytes": db_size, "changed_wal_bytes": changed,
                 "load_s": round(t_load, 1), "wal_keep_size": wal_keep, "source_pg_wal_bytes": src_wal,
                 "rejoin": last, "rejoin_wall_s": round(t_done, 2), "streaming_after_s": t_stream,
                 "pg_basebackup_s": round(t_clone, 2), "load": loadavg()}
            # Round 2, the same data the other way: the primary (pg2) writes what its replica (pg1)
            # never receives, then dies; pg1, which loaded the data, is the source. pg2's WAL goes
            # past the fork, and with failover.rewind always it gets pg_rewind itself. Round 3,
            # back again at the default (auto): pg1 diverged, and pg2 (whose pg_wal pg_rewind
            # just made a copy of the loader's) is the source: pg_rewind or a fresh copy,
            # whichever moves fewer bytes. Both rounds copy from a pg_wal of the same size.
            for key, replica, primary, rewind in (("diverged_rewind", "pg1", "pg2", "always"),
                                                  ("diverged", "pg2", "pg1", "auto")):
                try:
                    r[key] = rejoin_diverged(lab, replica, primary, rewind)
                except Exception as e:  # a failed round leaves the earlier ones' figures
                    log(f"  diverged round ({rewind}) failed: {e}")
                    r[key] = {"error": str(e)}
                    break
            log(f"  -> {r}")
            results.append(r)
            save("rejoin", {"quick": args.quick, "results": results})
        finally:
            lab.down()
    save("rejoin", {"quick": args.quick, "results": results})

