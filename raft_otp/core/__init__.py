"""The pure Raft core (RA's ``ra_server``): events in, (state, effects) out. No I/O.

Entry points: ``init_server(config, log, machine, meta, rng) -> (state, effects)``
and ``handle(state, event) -> (state, effects)``.  Events are in
``raft_otp.core.events``, effects in ``raft_otp.core.effects``.
"""

from raft_otp.core.config import ServerConfig, ServerMeta
from raft_otp.core.rules import RAFT_RULES, Rules
from raft_otp.core.server import handle, init_server, overview
from raft_otp.core.state import ServerState

__all__ = ["RAFT_RULES", "Rules", "ServerConfig", "ServerMeta", "ServerState", "handle", "init_server", "overview"]
