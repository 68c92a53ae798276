"""raft_otp benchmarks: ``python -m bench [--only NAME ...] [--json] [--quick]``.

Parts (each ``bench/<part>.py`` with ``run(quick=False) -> list[Figure]``) are
imported lazily; a part whose module does not exist yet is reported as skipped.
"""

PARTS = ["supervisors", "wal", "transport", "cluster", "clusters", "recovery"]
