"""Goal: transport security holds: curve clusters work and hide payloads, unlisted keys,
replays and bad bytes are refused and counted without harm, private files stay private."""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import socket
import stat
import subprocess
import sys
import threading
from typing import Any, Iterator

import psutil
import pytest
import zmq

from raft_otp import node as N
from raft_otp.errors import BadArgument, ConfigError, NodeDown, Timeout
from raft_otp.node import codec, envelope, replay, security
from raft_otp.node.replay import ReplayGuard
from raft_otp.node.testing import NodeProcess, free_port, wait_until
from raft_otp.system.config import SystemConfig

COOKIE = "security-cookie-7c1"
MARKER = "MARKER-6b1f0e-plaintext"


# ---- pure parts -------------------------------------------------------------------------

def test_replay_guard_refuses_seen_counters_and_old_sessions() -> None:
    g = ReplayGuard(retired_per_sender=2)
    assert g.check("a", False, 10, 1) is None
    assert g.check("a", False, 10, 3) is None          # gaps are fine (a lost frame)
    assert g.check("a", False, 10, 3) == "replayed"
    assert g.check("a", False, 10, 2) == "replayed"
    assert g.check("b", False, 10, 1) is None          # per sender
    assert g.check("a", False, 11, 1) is None          # a new session replaces the old
    assert g.check("a", False, 10, 4) == "old_session"
    assert g.check("a", False, 11, 1) == "replayed"


def test_replay_guard_is_bounded() -> None:
    g = ReplayGuard(max_senders=3, max_client_sessions=2)
    for i in range(100):
        assert g.check(f"n{i}", False, 5, 1) is None
    assert g.senders() == 3
    now = replay.new_session()
    for s in range(now, now + 10):
        assert g.check("admin-client", True, s, 1) is None
    assert len(g._clients) == 2


def test_replay_guard_client_sessions_are_fresh_and_single_use() -> None:
    g = ReplayGuard(client_max_age_s=60)
    s = replay.new_session()
    assert g.check("admin-client", True, s, 1) is None
    assert g.check("admin-client", True, s, 1) == "replayed"
    old = replay.new_session(now_ms=replay.session_time_ms(s) - 61_000)
    assert g.check("admin-client", True, old, 1) == "stale_client"


def test_config_refuses_an_unknown_transport_security() -> None:
    assert SystemConfig(transport_security="curve").transport_security == "curve"
    with pytest.raises(ConfigError, match="transport_security"):
        SystemConfig(transport_security="tls")  # type: ignore[arg-type]
    with pytest.raises(BadArgument, match="key file"):
        security.Security("curve")


def test_cookie_file_readable_by_others_is_refused(tmp_path: Any) -> None:
    cookie = tmp_path / "cookie"
    cookie.write_text("c\n")
    os.chmod(cookie, 0o644)
    with pytest.raises(BadArgument, match=r"owner only \(mode 0644; run: chmod 600"):
        N.read_cookie(cookie_file=str(cookie))
    os.chmod(cookie, 0o600)
    assert N.read_cookie(cookie_file=str(cookie)) == "c"
    # the node entry point: one line, exit 1, before anything binds
    os.chmod(cookie, 0o640)
    out = subprocess.run([sys.executable, "-m", "raft_otp.system", "--data-dir",
                          str(tmp_path / "d"), "--node", f"x@127.0.0.1:{free_port()}",
                          "--cookie-file", str(cookie)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1, out
    assert out.stderr.count("\n") == 1 and "must be accessible by its owner only" in out.stderr


def test_key_files_and_data_dirs_are_private(tmp_path: Any) -> None:
    from raft_otp.system import datadir_lock
    key = tmp_path / "k"
    public = security.ensure_key_file(str(key))
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and len(public) == 40
    assert security.ensure_key_file(str(key)) == public  # kept
    os.chmod(key, 0o644)
    with pytest.raises(BadArgument, match="key file"):
        security.read_key_file(str(key))
    lock = datadir_lock.acquire(str(tmp_path / "data"))
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "data").st_mode) == 0o700
    finally:
        lock.release()


# ---- one node process, this process as a client node ------------------------------------

class Keys:
    """A cookie, keys for a node and for this test process, and the allowed-keys file."""

    def __init__(self, d: Any) -> None:
        self.dir = str(d)
        self.cookie_file = os.path.join(self.dir, "cookie")
        security.write_private(self.cookie_file, COOKIE + "\n")
        self.node_key = os.path.join(self.dir, "node.key")
        self.client_key = os.path.join(self.dir, "client.key")
        self.intruder_key = os.path.join(self.dir, "intruder.key")
        self.allowed = os.path.join(self.dir, "allowed_keys")
        self.client_name = f"client@127.0.0.1:{free_port()}"

    def write_allowed(self, node_name: str) -> None:
        security.write_private(self.allowed, "\n".join([
            "# node and client keys",
            f"{node_name} {security.ensure_key_file(self.node_key).decode()}",
            f"{self.client_name} {security.ensure_key_file(self.client_key).decode()}"]) + "\n")

    def client(self, mode: str, key: str | None = None) -> security.Security:
        if mode == "mac":
            return security.Security()
        return security.Security("curve", key or self.client_key, self.allowed)


@pytest.fixture(scope="module", params=["mac", "curve"])
def served(request: Any, tmp_path_factory: Any) -> Iterator[tuple[str, NodeProcess, Keys]]:
    """One echo node in each mode (frames over 1 MiB refused by ZeroMQ)."""
    mode = request.param
    keys = Keys(tmp_path_factory.mktemp(f"sec-{mode}"))
    extra = ["--frame-max-bytes", str(1 << 20)]
    proc = NodeProcess("sec", keys.cookie_file, extra=extra)
    if mode == "curve":
        keys.write_allowed(proc.name)
        proc.args += ["--transport-security", "curve", "--key-file", keys.node_key,
                      "--allowed-keys", keys.allowed]
    try:
        proc.start()
        yield mode, proc, keys
    finally:
        proc.stop()


@contextlib.contextmanager
def client_node(keys: Keys, sec: security.Security, peer: str | None = None) -> Iterator[str]:
    """This process as the client node; with ``peer``: once ``peer`` is heard from (its
    link back to this reused name may take its reconnect interval, up to 1 s)."""
    N.start_node(keys.client_name, COOKIE, transport_security=sec)
    try:
        if peer is not None:
            def up() -> bool:
                N.send(("nobody", peer), None)
                return peer in N.nodes()
            assert wait_until(up, 10, 0.05), f"{peer} never heard from"
        yield keys.client_name
    finally:
        N.stop_node()


def stats(proc: NodeProcess, keys: Keys, mode: str) -> dict[str, Any]:
    result: dict[str, Any] = N.admin_call(proc.name, ["stats"], COOKIE, 10, keys.client(mode))
    return result


def test_a_node_serves_in_both_modes(served: Any) -> None:
    mode, proc, keys = served
    with client_node(keys, keys.client(mode), proc.name):
        assert N.call(("echo", proc.name), "hello", timeout=10) == ["echo", proc.name, "hello"]
    assert stats(proc, keys, mode)["recv_msgs"] >= 1


def test_a_client_with_an_unlisted_key_is_refused(served: Any) -> None:
    mode, proc, keys = served
    if mode != "curve":
        pytest.skip("keys exist in curve mode only")
    before = stats(proc, keys, mode)
    with pytest.raises(NodeDown):
        N.admin_call(proc.name, ["ping"], COOKIE, 1.0, keys.client(mode, keys.intruder_key))
    with client_node(keys, keys.client(mode, keys.intruder_key)):
        with pytest.raises((NodeDown, Timeout)):
            N.call(("echo", proc.name), "let me in", timeout=1.0)
    after = stats(proc, keys, mode)
    assert after["refused_keys"] >= before["refused_keys"] + 2
    assert after["recv_msgs"] == before["recv_msgs"] + 1  # the stats request itself
    with client_node(keys, keys.client(mode), proc.name):  # serving continues
        assert N.call(("echo", proc.name), "still", timeout=10) == ["echo", proc.name, "still"]


def test_a_client_with_a_wrong_server_key_is_refused(served: Any, tmp_path: Any) -> None:
    mode, proc, keys = served
    if mode != "curve":
        pytest.skip("keys exist in curve mode only")
    wrong = tmp_path / "allowed"
    security.write_private(str(wrong), f"{proc.name} "
                           f"{security.ensure_key_file(str(tmp_path / 'other.key')).decode()}\n")
    before = stats(proc, keys, mode)["handshake_failures"]
    with pytest.raises(NodeDown):
        N.admin_call(proc.name, ["ping"], COOKIE, 1.0,
                     security.Security("curve", keys.client_key, str(wrong)))
    assert wait_until(lambda: stats(proc, keys, mode)["handshake_failures"] > before, 5)


def test_a_mac_client_is_refused_by_a_curve_node_and_back(served: Any) -> None:
    mode, proc, keys = served
    other = "mac" if mode == "curve" else "curve"
    if other == "curve":
        keys.write_allowed(proc.name)
    with pytest.raises(NodeDown):
        N.admin_call(proc.name, ["ping"], COOKIE, 1.0, keys.client(other))
    assert N.admin_call(proc.name, ["ping"], COOKIE, 10, keys.client(mode)) == ["pong", proc.name]


# ---- replay -------------------------------------------------------------------------------

def _dealer(node_name: str) -> Any:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect("tcp://" + node_name.split("@")[1])
    return sock


def test_a_replayed_frame_is_refused_and_counted(served: Any) -> None:
    mode, proc, keys = served
    if mode != "mac":
        pytest.skip("curve: a raw socket cannot even connect (tested above)")
    key = envelope.derive_key(COOKIE)
    prefix = envelope.batch_prefix("replayer@127.0.0.1:9", 1)
    with client_node(keys, keys.client(mode), proc.name), N.Mailbox() as mb:
        def frame(session: int, counter: int, text: str) -> bytes:
            item = codec.packb([envelope.K_SEND, "echo", ["forward", list(mb.address), text]])
            return envelope.seal(key, envelope.build_body(prefix, session, counter, [item]))

        s1, s2 = replay.new_session(), replay.new_session()
        captured = frame(s1, 1, "first")
        before = stats(proc, keys, mode)
        sock = _dealer(proc.name)
        try:
            sock.send(captured)
            assert mb.get(5) == "first"
            sock.send(captured)                       # the same bytes again
            sock.send(frame(s1, 1, "same counter"))   # a seen counter
            sock.send(frame(s2, 1, "new session"))
            assert mb.get(5) == "new session"
            sock.send(frame(s1, 2, "old session"))    # s1 was replaced by s2
            sock.send(frame(s2, 2, "next"))
            assert mb.get(5) == "next"
        finally:
            sock.close()
        with pytest.raises(Timeout):
            mb.get(0.2)
    after = stats(proc, keys, mode)
    assert after["replayed"] == before["replayed"] + 2
    assert after["old_session"] == before["old_session"] + 1


def test_a_replayed_admin_request_is_refused(served: Any) -> None:
    mode, proc, keys = served
    if mode != "mac":
        pytest.skip("curve: a raw socket cannot even connect")
    key = envelope.derive_key(COOKIE)
    body = envelope.build_body(envelope.batch_prefix("admin-client", 0, envelope.FLAG_CLIENT),
                               replay.new_session(), 1,
                               [codec.packb([envelope.K_ADMIN, 1, ["kill", "echo"]])])
    frame = envelope.seal(key, body)
    before = stats(proc, keys, mode)["replayed"]
    for _ in range(2):
        sock = _dealer(proc.name)
        try:
            sock.send(frame)
            assert sock.poll(10_000), "no answer"
            sock.recv()  # the answer to the first; the replay gets nothing
        except AssertionError:
            pass
        finally:
            sock.close()
    assert wait_until(lambda: stats(proc, keys, mode)["replayed"] == before + 1, 5)


# ---- what goes over the wire -----------------------------------------------------------------

class RecordingProxy:
    """A TCP proxy on 127.0.0.1 that records what flows client -> server."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.recorded = bytearray()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pairs: dict[socket.socket, tuple[socket.socket, bool]] = {}
        while not self._stop:
            ready, _, _ = select.select([self.listener, *pairs], [], [], 0.05)
            for s in ready:
                if s is self.listener:
                    a, _ = s.accept()
                    b = socket.create_connection(self.target)
                    pairs[a] = (b, True)
                    pairs[b] = (a, False)
                    continue
                other, upstream = pairs[s]
                data = s.recv(65536)
                if not data:
                    for x in (s, other):
                        pairs.pop(x, None)
                        x.close()
                    continue
                if upstream:
                    self.recorded += data
                other.sendall(data)
        for s in pairs:
            s.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.listener.close()


def test_no_payload_in_plaintext_on_the_wire_in_curve_mode(served: Any, monkeypatch: Any) -> None:
    """The client node's link to the node goes through a recording proxy; the marker of a
    command is found in the captured bytes in mac mode (so the capture works) and never
    in curve mode."""
    from raft_otp.node import transport
    mode, proc, keys = served
    port = int(proc.name.rsplit(":", 1)[1])
    proxy = RecordingProxy(port)
    real = transport.endpoint_of
    monkeypatch.setattr(transport, "endpoint_of", lambda n: f"tcp://127.0.0.1:{proxy.port}"
                        if n == proc.name else real(n))
    try:
        with client_node(keys, keys.client(mode), proc.name):
            for i in range(5):
                reply = N.call(("echo", proc.name), [MARKER, i], timeout=10)
                assert reply == ["echo", proc.name, [MARKER, i]]
    finally:
        proxy.close()
    assert len(proxy.recorded) > 100
    found = MARKER.encode() in proxy.recorded
    assert found == (mode == "mac"), (mode, len(proxy.recorded))


# ---- bad bytes -------------------------------------------------------------------------------

ZMTP_NULL_GREETING = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00")
                      + b"\x00" + b"\x00" * 31)


def _raw_tcp(node_name: str, data: bytes) -> None:
    host, port = node_name.split("@")[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
            s.settimeout(1.0)
            s.recv(4096)


def test_bad_bytes_are_refused_and_serving_continues(served: Any) -> None:
    """Garbage, truncated and oversized frames through a raw TCP socket and a ZeroMQ
    socket, from a wrong-key client and a right one: nothing is delivered, the node's
    memory stays bounded, and it serves on."""
    mode, proc, keys = served
    assert proc.proc is not None
    rss = psutil.Process(proc.proc.pid)
    before = stats(proc, keys, mode)
    rss_before = rss.memory_info().rss
    rng = __import__("random").Random(21)
    for i in range(30):
        _raw_tcp(proc.name, rng.randbytes(rng.randrange(1, 4096)))  # not even ZMTP
    # a ZMTP greeting, then a frame header announcing 1 TiB: refused before any allocation
    huge = b"\x02" + (1 << 40).to_bytes(8, "big")
    _raw_tcp(proc.name, ZMTP_NULL_GREETING + b"\x04\x1a\x05READY" + b"\x0bSocket-Type\x00\x00\x00\x06DEALER"
             + huge + b"x" * 1000)
    # through ZeroMQ: a truncated frame, an oversized one, unsigned garbage
    sec = keys.client(mode)
    key = envelope.derive_key(COOKIE)
    item = codec.packb([envelope.K_SEND, "echo", ["ping"]])
    good = envelope.seal(key, envelope.build_body(envelope.batch_prefix("bad@127.0.0.1:9", 1),
                                                  replay.new_session(), 1, [item]))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 2000)
    if mode == "curve":
        from raft_otp.node.admin import _curve_client
        _curve_client(sock, sec, proc.name)
    sock.connect("tcp://" + proc.name.split("@")[1])
    try:
        for n in (1, 10, len(good) // 2, len(good) - 1):
            sock.send(good[:n])
        sock.send(b"\x00" * (2 << 20))                       # over --frame-max-bytes
        for i in range(20):
            sock.send_multipart([rng.randbytes(64)] * (1 + i % 3))
    finally:
        sock.close()
    assert N.admin_call(proc.name, ["ping"], COOKIE, 10, sec) == ["pong", proc.name]
    after = stats(proc, keys, mode)
    assert after["refused"] + after["bad_frames"] > before["refused"] + before["bad_frames"]
    assert after["handshake_failures"] > before["handshake_failures"]
    assert after["recv_msgs"] == before["recv_msgs"] + 2  # the ping and this stats request
    with client_node(keys, sec, proc.name):
        assert N.call(("echo", proc.name), "after", timeout=10) == ["echo", proc.name, "after"]
    assert rss.memory_info().rss - rss_before < 64 << 20


# ---- a curve cluster ------------------------------------------------------------------------------

def test_a_curve_cluster_works(tmp_path: Any) -> None:
    import raft_otp
    from raft_otp.system.harness import running_nodes
    with running_nodes(str(tmp_path), 3, transport_security="curve") as h:
        ids = [np.sid("kv") for np in h.nodes]
        raft_otp.start_cluster("default", "kv", ("raft_otp.machines.kv:KeyValue", {}), ids)
        for i in range(20):
            raft_otp.process_command(ids[i % 3], ["put", f"k{i}", i], timeout=10)
        reply, _leader = raft_otp.process_command(ids[0], ["get", "k19"], timeout=10)
        assert reply == ["ok", 19]
        for np in h.nodes:
            assert stat.S_IMODE(os.stat(np.data_dir).st_mode) == 0o700
            assert stat.S_IMODE(os.stat(os.path.join(np.data_dir, "node.key")).st_mode) == 0o600
            s = h.admin(h.nodes.index(np), ["stats"])
            assert s["refused_keys"] == 0 and s["replayed"] == 0 and s["old_session"] == 0
        assert stat.S_IMODE(os.stat(h.cookie_file).st_mode) == 0o600


def test_an_allowed_key_cannot_speak_for_another_node(served: Any) -> None:
    """curve: a frame is refused when its sender is listed with another key than its
    connection's; a pattern line lets client nodes named at start in with their key."""
    mode, proc, keys = served
    if mode != "curve":
        pytest.skip("keys exist in curve mode only")
    keys.write_allowed(proc.name)
    imposter = f"imposter@127.0.0.1:{free_port()}"
    other_key = os.path.join(keys.dir, "cli.key")
    with open(keys.allowed, "a") as f:
        f.write(f"{imposter} {security.ensure_key_file(keys.intruder_key).decode()}\n")
        f.write(f"cli-*@127.0.0.1:* {security.ensure_key_file(other_key).decode()}\n")
    before = stats(proc, keys, mode)["refused_keys"]
    N.start_node(imposter, COOKIE, transport_security=keys.client(mode))  # the client's key
    try:
        with pytest.raises((NodeDown, Timeout)):
            N.call(("echo", proc.name), "I am the imposter", timeout=1.0)
    finally:
        N.stop_node()
    assert stats(proc, keys, mode)["refused_keys"] > before
    cli_name = f"cli-{os.getpid()}@127.0.0.1:{free_port()}"
    N.start_node(cli_name, COOKIE, transport_security=keys.client(mode, other_key))
    try:
        assert N.call(("echo", proc.name), "pattern", timeout=10) == ["echo", proc.name, "pattern"]
    finally:
        N.stop_node()


@pytest.mark.parametrize("mode", ["mac", "curve"])
def test_the_cli_works_in_both_modes(mode: str, tmp_path: Any) -> None:
    """`raft-otp cluster start`, `command` and `status` from a CLI process (a client node
    named at start) against 3 node processes in each mode."""
    from raft_otp.console.testing import cli_command
    from raft_otp.system.harness import NodeProcs
    h = NodeProcs(str(tmp_path), 3, transport_security=mode)
    flags = ["--cookie-file", h.cookie_file, "--timeout", "10"]
    env = dict(os.environ)
    for var in (security.ENV_MODE, security.ENV_KEY_FILE, security.ENV_ALLOWED):
        env.pop(var, None)
    if mode == "curve":
        cli_key = str(tmp_path / "cli.key")
        h.write_allowed_keys({"raft-otp-cli-*@127.0.0.1:*": security.ensure_key_file(cli_key)})
        flags += ["--transport-security", "curve", "--key-file", cli_key,
                  "--allowed-keys", str(tmp_path / "allowed_keys")]

    def cli(*args: str) -> str:
        out = subprocess.run([*cli_command(), *args, *flags], capture_output=True, text=True,
                             timeout=60, env=env)
        assert out.returncode == 0, (args, out.stderr)
        return out.stdout

    try:
        h.start()
        members = [np.name for np in h.nodes]
        cli("cluster", "start", "shop", "--members", *members)
        assert '"ok"' in cli("command", "--node", members[1], "--cluster", "shop", "put", "k", "7")
        assert "shop" in cli("status", "--node", members[2])
    finally:
        h.close()
