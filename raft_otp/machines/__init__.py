"""Built-in replicated state machines (used by the CLI, benchmarks, fault tests).

The lock machine's client is in :mod:`raft_otp.machines.lock_client` (not
imported here: a node that only runs machines needs no client code)."""

from raft_otp.machines.counter import Counter
from raft_otp.machines.kv import KeyValue
from raft_otp.machines.lock import Lock

__all__ = ["Counter", "KeyValue", "Lock"]
