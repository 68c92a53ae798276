"""Built-in replicated state machines (used by the CLI, benchmarks, fault tests)."""

from raft_otp.machines.counter import Counter
from raft_otp.machines.kv import KeyValue

__all__ = ["Counter", "KeyValue"]
