"""Systems: one supervision tree per data dir (RA ``ra_system``), and the node entry point."""

from raft_otp.system.config import SystemConfig
from raft_otp.system.node_main import run_node

__all__ = ["SystemConfig", "run_node"]
