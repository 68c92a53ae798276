"""Quorum arithmetic (RA ``ra_server:agreed_commit/1``; etcd ``quorum/majority.go``)."""

from __future__ import annotations

from typing import Iterable


def majority(voters: int) -> int:
    """Smallest number of voters forming a quorum."""
    return voters // 2 + 1


def agreed_index(indexes: Iterable[int]) -> int:
    """Highest index that a quorum of ``indexes`` (one per voter) has reached.

    0 when there are no voters."""
    values = sorted(indexes, reverse=True)
    if not values:
        return 0
    return values[majority(len(values)) - 1]


def has_quorum(granted: int, voters: int) -> bool:
    return voters > 0 and granted >= majority(voters)
