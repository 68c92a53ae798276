"""Goal: `raft-otp tree --watch` in a real pseudo-terminal (pexpect, screen emulated by pyte)
redraws the live tree; after `raft-otp kill` the killed actor's restart count rises on screen."""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Iterator

import pexpect
import pyte
import pytest

from raft_otp.console.testing import CliNodes, cli_command

pytestmark = pytest.mark.processes

ROWS, COLS = 60, 220


@pytest.fixture()
def node(tmp_path: Any) -> Iterator[CliNodes]:
    h = CliNodes(str(tmp_path), 1)
    try:
        h.start()
        yield h
    finally:
        h.close()


class Screen:
    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, cond: Callable[[str], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.2)
                self.stream.feed(data)
            except pexpect.TIMEOUT:
                pass
            found = cond(self.text())
            if found:
                return found
        raise AssertionError(f"screen never matched; last screen:\n{self.text()}")


def _wal_restarts(text: str) -> int | None:
    m = re.search(r"wal\s+WalActor as raft_otp\.wal\.default\s+running\s+restarts (\d+)", text)
    return int(m.group(1)) if m else None


def test_tree_watch_redraws_after_a_kill(node: CliNodes) -> None:
    n1 = node[0].name
    cmd = cli_command()
    child = pexpect.spawn(cmd[0], [*cmd[1:], "tree", "--node", n1, "--watch", "--interval", "0.3",
                                   "--cookie-file", node.cookie_file],
                          env={**node.env(), "TERM": "xterm-256color"}, dimensions=(ROWS, COLS))
    try:
        scr = Screen(child)
        assert scr.wait_for(lambda t: _wal_restarts(t) == 0)
        first = scr.wait_for(lambda t: re.search(r"updated (\d\d:\d\d:\d\d)", t))
        r = node.run("kill", "--node", n1, "log/wal", "--no-wait")
        assert r.returncode == 0, r.stderr
        scr.wait_for(lambda t: _wal_restarts(t) == 1)
        text = scr.text()
        assert "system:default" in text and "segment_writer" in text
        assert text.count("raft_otp.wal.default") == 1  # redrawn in place, not appended
        now = re.search(r"updated (\d\d:\d\d:\d\d)", text)
        assert now is not None and now.group(1) >= first.group(1)
        child.sendintr()  # Ctrl-C ends the watch cleanly
        child.expect(pexpect.EOF, timeout=15)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)
