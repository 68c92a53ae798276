"""Randomised election timeouts by class (RA ``ra_server_proc``'s timeout classes).

The core names the class (``raft_otp.core.effects.TimerKind``); the actor picks
the random duration here.  With broadcast_time ``b`` (RA: 100 ms), in ms:

====================  ==============  ==========================================
kind                  range           when
====================  ==============  ==========================================
``leader_down``       1 .. b          leader process died / transfer target
``connection_lost``   b+1 .. 6b       leader unreachable (its node down)
``candidate``         b+1 .. 11b      candidate retry
``pre_vote``          10b+1 .. 20b    pre-vote round / no leader known
``receive_snapshot``  30 s            reset on every chunk (config)
``await_condition``   5 s             waiting for the WAL (config)
====================  ==============  ==========================================

Randomness is injected (``random.Random``) so tests can fix it.
"""

from __future__ import annotations

import random


def election_timeout_ms(kind: str, broadcast_time_ms: int, rng: random.Random,
                        receive_snapshot_timeout_ms: int = 30_000,
                        await_condition_timeout_ms: int = 5_000) -> int:
    """A random timeout in ms for timer class ``kind``."""
    b = broadcast_time_ms
    if kind == "leader_down":
        return rng.randint(1, b)
    if kind == "connection_lost":
        return rng.randint(b + 1, 6 * b)
    if kind == "candidate":
        return rng.randint(b + 1, 11 * b)
    if kind == "pre_vote":
        return rng.randint(10 * b + 1, 20 * b)
    if kind == "receive_snapshot":
        return receive_snapshot_timeout_ms
    if kind == "await_condition":
        return await_condition_timeout_ms
    raise ValueError(f"unknown timer kind {kind!r}")
