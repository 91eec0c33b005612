"""What every part needs of a system under test, so that the parts are written once."""
from ..util import sh


class Cluster:
    """A failover manager with its primary (ports[0]) and its replica (ports[1]) on 127.0.0.1.

    A part builds one (at_defaults() for footprint and HTTP), brings it up, measures, and always
    takes it down again; every run starts from a fresh cluster.
    """

    name = ""  # its key in bench/results/*.json and in the report
    title = ""  # as the log names it
    ports = ()  # (primary, replica) PostgreSQL ports
    failover_timeout = 90  # seconds until a failover with no write on a new primary counts as failed
    http_url = None  # the failover manager's API, when the http part hammers it
    http_paths = ()
    reports_ticks = False  # whether the http part can watch its ticks and probes (pgfailover's metrics)

    @classmethod
    def at_defaults(cls):
        return cls()

    def up(self):
        raise NotImplementedError

    def down(self):
        raise NotImplementedError

    def dsn(self, port=None):
        """One node's libpq DSN, or with no port the writer's: both nodes, read-write only."""
        raise NotImplementedError

    def psql(self, port, sql, check=True):
        return sh(["psql", "-X", "-A", "-t", "-q", "-d", self.dsn(port), "-c", sql], check=check).stdout.strip()

    # failover -----------------------------------------------------------------------------

    def crash_primary(self):
        """Find what kill -9 of the primary kills (its postmaster, and the node's agent where the
        manager runs one per node) and return the function that kills it; raise if it is not there."""
        raise NotImplementedError

    def failover_details(self):
        """What this system adds to a failover run's result after the failover."""
        return {}

    # footprint ----------------------------------------------------------------------------

    def footprint_groups(self):
        """Process groups whose memory and CPU are measured: name -> function returning the PIDs."""
        raise NotImplementedError

    def footprint_counters(self):
        """A function returning counters whose rate over a window is recorded as "extra", or None."""
        return None

    def footprint_wal_detail(self):
        """A function (lsn0, lsn1) -> the manager's own share of the WAL on the primary, or None."""
        return None

    def footprint_details(self):
        """What this system adds to its footprint result after both windows."""
        return {}

    # http ---------------------------------------------------------------------------------

    def http_details(self):
        """What this system adds to the http results after its paths were hammered."""
        return {}
