"""pgfailover's benchmarks against Patroni and pg_auto_failover; bench/run runs cli.main (usage there).

env       folders, ports, the binary, what a run started
util      logging, commands, HTTP, waiting, results files
procs     processes by PID: stop, postmaster, memory and CPU from /proc
prepare   packages and the Release build of pgfailover
systems/  the systems under test, one base class (systems.base.Cluster)
parts/    failover, rejoin, footprint, http: what each part measures
report    docs/benchmarks.md from bench/results/*.json (plots in plots)
cli       bench/run's options and the order of the parts
"""
