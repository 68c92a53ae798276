"""Test harnesses shipped with raft_otp: the deterministic simulator of the core."""
