"""raft_otp benchmarks: ``python -m bench [--only NAME ...] [--json] [--quick]``.

Parts are imported lazily.  A part is one or more modules ``bench/<module>.py``
each with ``run(quick=False) -> list[Figure]`` (``PART_MODULES``; by default the
module named like the part); a part none of whose modules exists yet is reported
as skipped.
"""

PARTS = ["supervisors", "wal", "transport", "cluster", "clusters", "isolation", "recovery"]

PART_MODULES: dict[str, list[str]] = {
    "cluster": ["cluster", "versus"],            # + the side-by-side with PySyncObj
    "clusters": ["clusters", "clusters_load"],   # + aggregate commands/s over 1/10/100/1000 clusters
    "recovery": ["recovery", "recovery_node"],   # + node restart with 1M entries, 100 MB snapshot install
}
"""Modules of each part, run in this order (a part not listed is its own module)."""
