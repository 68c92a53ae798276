"""Peer systems measured beside raft_otp in the same run (bench-only dependencies)."""
