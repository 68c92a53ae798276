"""Durable log: WAL actor, mem tables, segment writer, segments, snapshots, meta (RA ra_log)."""
