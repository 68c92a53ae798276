"""Goal: nodes agree on a protocol version when a link opens and write the highest one
both know; a node whose range does not overlap is refused on both ends, with the reason
logged at each end and counted (``version_refused``).

Three node processes and a node in this process (versions 3..3):
``plain`` knows 3..3 like this build, ``far`` is pinned to 4..5 and ``wide`` to 3..4
(test-only: the pin is set inside the child before its node starts, see
``_PINNED``).  ``plain``-``far`` have nothing in common; ``wide``-``far`` speak 4 and
``wide``-``plain`` 3.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from raft_otp import node as N
from raft_otp.node import testing as node_testing
from raft_otp.node.testing import NodeProcess, free_port, wait_until
from raft_otp.protocol import versions
from raft_otp.protocol.versions import VersionRange, negotiate

pytestmark = pytest.mark.processes

COOKIE = "test-cookie-negotiation"
HEARTBEAT_MS = 100.0
DOWN_AFTER = 8

# The child's node announces the range in argv[1..2]: the node entry point is run
# unchanged after the pin (nothing in production selects a range).
_PINNED = ("import sys\n"
           "from raft_otp.protocol import versions\n"
           "versions.SUPPORTED = versions.VersionRange(int(sys.argv[1]), int(sys.argv[2]))\n"
           "from raft_otp.node.__main__ import main\n"
           "sys.exit(main(sys.argv[3:]))\n")


class PinnedNode(NodeProcess):
    """A node process announcing ``pinned`` (None: this build's range); its stderr
    (the log) goes to ``log_path``."""

    def __init__(self, short: str, cookie_file: str, pinned: VersionRange | None,
                 log_path: str, pythonpath: str | None = None) -> None:
        super().__init__(short, cookie_file, heartbeat_ms=HEARTBEAT_MS, down_after=DOWN_AFTER,
                         extra=["--log-level", "INFO"])
        self.pinned = pinned
        self.log_path = log_path
        self.pythonpath = pythonpath  # another tree of raft_otp to run

    def spawn(self) -> "PinnedNode":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.pythonpath is not None:
            env["PYTHONPATH"] = self.pythonpath
        if self.pinned is None:
            argv = [sys.executable, "-m", "raft_otp.node", *self.args]
        else:
            argv = [sys.executable, "-c", _PINNED, str(self.pinned.oldest),
                    str(self.pinned.newest), *self.args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env,
                                         cwd=self.pythonpath,  # -m puts the cwd first
                                         preexec_fn=node_testing._die_with_parent)
        return self

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    d = tmp_path_factory.mktemp("negotiation")
    cookie_file = d / "cookie"
    cookie_file.write_text(COOKIE + "\n")
    procs = {
        "plain": PinnedNode("plain", str(cookie_file), None, str(d / "plain.log")),
        "far": PinnedNode("far", str(cookie_file), VersionRange(4, 5), str(d / "far.log")),
        "wide": PinnedNode("wide", str(cookie_file), VersionRange(3, 4), str(d / "wide.log")),
    }
    try:
        for p in procs.values():
            p.spawn()
        for p in procs.values():
            p.wait_ready()
        N.start_node(f"t@127.0.0.1:{free_port()}", COOKIE, config=N.NodeConfig(
            heartbeat_interval_ms=HEARTBEAT_MS, down_after_missed=DOWN_AFTER))
        yield procs
    finally:
        for p in procs.values():
            p.stop()
        N.stop_node()


def _stats(node_name: str) -> dict:
    return N.admin_call(node_name, ["stats"], COOKIE, 5.0)


def _call_from(via: str, target: str, mb: N.Mailbox) -> list:
    """Have ``via``'s echo call ``target``'s echo; its report."""
    N.send(("echo", via), ["call", ("echo", target), "hi", mb.address])
    return mb.get(15)


def test_no_common_version_is_refused_at_both_ends(nodes) -> None:
    plain, far = nodes["plain"], nodes["far"]
    with N.Mailbox() as mb:
        report = _call_from(plain.name, far.name, mb)
    assert report[0] == "call_error" and report[2] in ("NodeDown", "Timeout"), report
    stats = _stats(plain.name)
    assert stats["version_refused"] >= 1
    assert stats["protocol"]["versions"] == [3, 3]
    assert stats["protocol"]["refused"] == {far.name: [4, 5]}
    assert far.name not in stats["protocol"]["peers"]
    assert far.name not in stats["nodes_up"]
    # the reason, logged at each end (the far end's counters are not reachable by an
    # admin client of this build: it refuses version 3 frames too)
    assert wait_until(lambda: f"refusing node {far.name}: it speaks protocol versions 4..5, "
                              "this node 3..3" in plain.log(), 5)
    assert wait_until(lambda: f"refusing node {plain.name}: it speaks protocol versions 3..3, "
                              "this node 4..5" in far.log(), 5)


def test_overlapping_ranges_speak_the_highest_common_version(nodes) -> None:
    wide, far, plain = nodes["wide"], nodes["far"], nodes["plain"]
    with N.Mailbox() as mb:
        assert _call_from(wide.name, far.name, mb) == ["called", wide.name, ["echo", far.name, "hi"]]
        assert _call_from(wide.name, plain.name, mb) == ["called", wide.name,
                                                         ["echo", plain.name, "hi"]]
    stats = _stats(wide.name)
    assert stats["protocol"]["versions"] == [3, 4]
    assert stats["protocol"]["peers"][far.name] == 4
    assert stats["protocol"]["peers"][plain.name] == 3
    assert stats["protocol"]["peers"][N.node_name()] == 3
    assert stats["protocol"]["refused"] == {}
    assert f"speaking protocol version 4 with {wide.name}" in far.log()
    ours = N.transport_stats()["protocol"]
    assert ours["peers"][wide.name] == 3 and ours["refused"] == {}


def test_negotiate_takes_the_highest_version_both_know() -> None:
    assert negotiate(VersionRange(3, 3), VersionRange(3, 3)) == 3
    assert negotiate(VersionRange(3, 5), VersionRange(4, 7)) == 5
    assert negotiate(VersionRange(4, 7), VersionRange(3, 5)) == 5
    assert negotiate(VersionRange(3, 3), VersionRange(4, 5)) is None
    assert negotiate(VersionRange(6, 9), VersionRange(3, 5)) is None
    assert versions.SUPPORTED == VersionRange(versions.OLDEST, versions.NEWEST)
    with pytest.raises(ValueError):
        VersionRange(4, 3)


_CLIENT_CALL = ("import sys\n"
                "from raft_otp import node as N\n"
                "N.start_node('cl@127.0.0.1:0', sys.argv[1])\n"
                "print(N.call(('echo', sys.argv[2]), 'hi', timeout=5), flush=True)\n"
                "N.stop_node()\n")

# The last commit whose nodes send no hello (wire version 3 before negotiation).
BEFORE_HELLOS = "46f3e21"


def test_a_node_of_the_build_before_hellos_still_talks(nodes, tmp_path) -> None:
    """Rolling upgrades start from a build that sends no hello: it drops ours as an
    unknown message kind, and we take it as a version-3 node once it sends a frame."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tree = tmp_path / "old"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", repo, "archive", BEFORE_HELLOS, "raft_otp", "supervisors"],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {BEFORE_HELLOS} is not in this clone: {archive.stderr[-200:]!r}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    cookie_file = tmp_path / "cookie"
    cookie_file.write_text(COOKIE + "\n")
    old = PinnedNode("old", str(cookie_file), None, str(tmp_path / "old.log"), str(tree))
    old.spawn()
    try:
        old.wait_ready()
        assert N.call(("echo", old.name), "hi", timeout=10) == ["echo", old.name, "hi"]
        with N.Mailbox() as mb:
            N.send(("echo", old.name), ["forward", mb.address, "back"])
            assert mb.get(10) == "back"
        ours = N.transport_stats()
        assert old.name not in ours["protocol"]["peers"]  # it never said: version 3 by default
        assert old.name not in ours["protocol"]["refused"]
        # the old build took our hello for a message kind it does not know: dropped, counted
        old_stats = _stats(old.name)
        assert "protocol" not in old_stats and old_stats["bad_msgs"] >= 1
        # a port-less client of this build: the old member never answers its hello, but
        # answers its empty frame, so the client learns at once and is not left waiting
        # for a hello until its failure detector calls the member down (NodeDown)
        done = subprocess.run([sys.executable, "-c", _CLIENT_CALL, COOKIE, old.name],
                              capture_output=True, timeout=60,
                              env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.decode().strip().splitlines()[-1] == f"['echo', '{old.name}', 'hi']"
    finally:
        old.stop()


hello_payloads = st.lists(st.none() | st.booleans() | st.integers(-5, 300) | st.text(max_size=3)
                          | st.lists(st.integers(-5, 300), max_size=5), max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.lists(hello_payloads | st.integers() | st.text(max_size=4), max_size=3))
@example([[9, True, 3, False]])   # a bool is not a version
@example([[9, 3, 3, False]])      # this build's own hello
@example([[9, 4, 5, True]])       # no common version
def test_a_malformed_hello_is_counted_and_never_raises(msgs) -> None:
    from raft_otp.node.transport import NodeConfig, Transport

    t = Transport("probe@127.0.0.1:0", b"k" * 32, 1, NodeConfig(), lambda *a: None,
                  lambda *a: None)
    ok = t._on_hello("peer@127.0.0.1:1", msgs, None)
    good = (len(msgs) >= 1 and isinstance(msgs[0], list) and len(msgs[0]) == 4
            and msgs[0][0] == 9 and all(type(v) is int for v in msgs[0][1:3])
            and 0 < msgs[0][1] <= msgs[0][2])
    if not good:
        assert ok is False and t.counters["bad_frames"] == 1
    else:
        agreed = negotiate(versions.SUPPORTED, VersionRange(msgs[0][1], msgs[0][2]))
        assert ok is (agreed is not None)
        assert t.stats()["protocol"]["peers"].get("peer@127.0.0.1:1") == agreed


_PINNED_CLIENT = ("import json, sys\n"
                  "from raft_otp.protocol import versions\n"
                  "versions.SUPPORTED = versions.VersionRange(4, 4)\n"
                  "from raft_otp import node as N\n"
                  "N.start_node('cl@127.0.0.1:0', sys.argv[1])\n"
                  "out = {}\n"
                  "for target in sys.argv[2:]:\n"
                  "    try:\n"
                  "        out[target] = N.call(('echo', target), 'hi', timeout=3)\n"
                  "    except Exception as exc:\n"
                  "        out[target] = type(exc).__name__\n"
                  "out['protocol'] = N.transport_stats()['protocol']\n"
                  "print(json.dumps(out), flush=True)\n"
                  "N.stop_node()\n")


def test_a_port_less_client_gets_its_replies_at_the_agreed_version(nodes) -> None:
    """A client node (it binds no port) pinned to 4..4: the 3..4 member answers it at 4
    over the connection the client opened, the 4..5 member too, and the 3..3 member is
    refused at both ends."""
    import json

    wide, far, plain = nodes["wide"], nodes["far"], nodes["plain"]
    done = subprocess.run([sys.executable, "-c", _PINNED_CLIENT, COOKIE, wide.name, far.name,
                           plain.name], capture_output=True, timeout=60,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert out[wide.name] == ["echo", wide.name, "hi"]
    assert out[far.name] == ["echo", far.name, "hi"]
    assert out[plain.name] in ("NodeDown", "Timeout")
    assert out["protocol"]["peers"] == {wide.name: 4, far.name: 4}
    assert out["protocol"]["refused"] == {plain.name: [3, 3]}
    assert _stats(wide.name)["protocol"]["peers"]["cl@127.0.0.1:0"] == 4
    assert wait_until(lambda: "refusing node cl@127.0.0.1:0: it speaks protocol versions 4..4, "
                              "this node 3..3" in plain.log(), 5)


def test_a_hello_goes_behind_frames_a_delay_fault_holds() -> None:
    """Frames carry increasing counters and the peer refuses a lower one after a higher
    one: a hello answered while a delay fault holds frames must not overtake them."""
    from raft_otp.node import envelope
    from raft_otp.node.transport import NodeConfig, Transport

    key = b"k" * 32
    t = Transport("probe@127.0.0.1:0", key, 1, NodeConfig(), lambda *a: None, lambda *a: None)
    link = t.link("peer@127.0.0.1:1")
    held = t._frame(link, [b"\xc0"])
    link.delayed.append((1e18, held))  # due long after now
    t._send_hello(link, is_answer=True)
    counters = [envelope.parse_any(envelope.unseal(key, frame))[5] for _, frame in link.delayed]
    assert counters == [1, 2]
    flags = envelope.parse_any(envelope.unseal(key, link.delayed[1][1]))[3]
    assert flags & envelope.FLAG_HELLO


def test_a_restarted_node_agrees_again(nodes) -> None:
    """After ``wide`` restarts, ``far``'s old link reaches the new incarnation without a
    hello of its own (its hello went to the old one); ``wide``'s hello is answered and
    both speak 4 again: ``wide``'s call reaches ``far`` and ``far``'s reply comes back
    over that old link."""
    wide, far = nodes["wide"], nodes["far"]
    with N.Mailbox() as mb:
        assert _call_from(wide.name, far.name, mb)[0] == "called"
        wide.restart()
        assert _call_from(wide.name, far.name, mb) == ["called", wide.name, ["echo", far.name, "hi"]]
    assert _stats(wide.name)["protocol"]["peers"][far.name] == 4
    assert wide.log().count(f"speaking protocol version 4 with {far.name}") >= 2  # both runs
