"""What the tests and the benchmarks share, one home per helper: the clock, tenant windows, free ports,
the services and the processes started against them, worker processes, servers a test owns, row
factories, invariants and the job-contract check. Nothing here imports pytest: bench/ uses it too."""
