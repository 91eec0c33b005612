"""The systems under test, each a primary and a replica on loopback behind one base class."""
from .base import Cluster
from .paf import PafCluster
from .patroni import PatroniCluster
from .pgfailover import PgfailoverLab

# in the order the parts run them and the report lists them
SYSTEMS = (PgfailoverLab, PatroniCluster, PafCluster)

__all__ = ["Cluster", "PafCluster", "PatroniCluster", "PgfailoverLab", "SYSTEMS", "ordered"]


def ordered(results):
    """A {system name: result} dict's items in SYSTEMS' order, unknown names last."""
    order = {cls.name: i for i, cls in enumerate(SYSTEMS)}
    return sorted(results.items(), key=lambda kv: order.get(kv[0], 9))
