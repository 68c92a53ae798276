"""Fixtures shared by several test modules."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

import raft_otp


@pytest.fixture
def system(tmp_path: Any) -> Iterator[raft_otp.System]:
    """A system started in this process in a fresh data dir (stopped afterwards)."""
    s = raft_otp.start_in(str(tmp_path / "data"), name=f"t{time.monotonic_ns()}")
    try:
        yield s
    finally:
        raft_otp.stop_system(s)
