"""The parts of a bench run: failover, rejoin, footprint and http (one module each)."""
