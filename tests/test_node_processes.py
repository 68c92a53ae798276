"""Goal: actors in separate node OS processes talk as if local, and node failures are detected."""

from __future__ import annotations

import itertools
import time

import msgpack
import pytest
import supervisors
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raft_otp import node as N
from raft_otp.errors import NodeDown, ServerNotFound, Timeout
from raft_otp.node import codec, envelope, replay
from raft_otp.node.testing import NodeProcess, free_port, wait_until

pytestmark = pytest.mark.processes

COOKIE = "test-cookie-3f9"
HEARTBEAT_MS = 100.0
DOWN_AFTER = 8  # 800 ms: no false node_down when 2 cores run many test processes
DETECTION_S = HEARTBEAT_MS * DOWN_AFTER / 1000.0
SLACK_S = 1.5  # scheduling on 2 busy cores; the detector itself is tested without time


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("cookies")
    cookie_file = d / "cookie"
    cookie_file.write_text(COOKIE + "\n")
    procs = [NodeProcess(f"n{i}", str(cookie_file), heartbeat_ms=HEARTBEAT_MS,
                         down_after=DOWN_AFTER) for i in range(3)]
    try:
        for p in procs:
            p.spawn()
        for p in procs:
            p.wait_ready()
        N.start_node(f"t@127.0.0.1:{free_port()}", COOKIE, config=N.NodeConfig(
            heartbeat_interval_ms=HEARTBEAT_MS, down_after_missed=DOWN_AFTER,
            peer_queue_max_msgs=5000))
        for p in procs:  # connect the mesh: every node talks to every other once
            assert N.call(("echo", p.name), "hello", timeout=10) == ["echo", p.name, "hello"]
        yield procs
    finally:
        for p in procs:  # first: nothing may leak even if the rest of teardown fails
            p.stop()
        N.stop_node()


def names(cluster: list[NodeProcess]) -> list[str]:
    return [p.name for p in cluster]


def admin(node_name: str, *request: object, timeout: float = 5.0) -> object:
    return N.admin_call(node_name, list(request), COOKIE, timeout)


def test_send_and_call_between_all_pairs(cluster) -> None:
    with N.Mailbox() as mb:
        expected = set()
        for a, b in itertools.permutations(names(cluster), 2):
            N.send(("echo", a), ["forward", ("echo", b), ["forward", mb.address, f"hi {a}->{b}"]])
            N.send(("echo", a), ["call", ("echo", b), f"q {a}->{b}", mb.address])
            expected.add(f"hi {a}->{b}")
            expected.add(("called", a, b, f"q {a}->{b}"))
        got = set()
        for _ in range(len(expected)):
            m = mb.get(10)
            if isinstance(m, list) and m[0] == "called":
                got.add(("called", m[1], m[2][1], m[2][2]))
            else:
                assert isinstance(m, str), m
                got.add(m)
        assert got == expected


def test_messages_between_one_pair_arrive_in_order(cluster) -> None:
    target = cluster[0].name
    with N.Mailbox() as mb:
        for i in range(2000):
            N.send(("echo", target), ["forward", mb.address, i])
        assert [mb.get(10) for _ in range(2000)] == list(range(2000))
    stats = N.transport_stats()
    assert stats["sent_batches"] < stats["sent_msgs"]  # frames carried batches


def test_send_same_reaches_every_node_once_and_keeps_each_links_order(cluster) -> None:
    """runtime.send_same: each node gets the message once, and it takes its place in
    each link's order (an idle link gets the shared frame, a busy one queues it)."""
    from raft_otp.node import runtime

    targets = names(cluster)
    with N.Mailbox() as mb:
        for i in range(200):
            runtime.send_same("echo", targets, ["forward", mb.address, ["same", i]])
            N.send(("echo", targets[i % 3]), ["forward", mb.address, ["one", i]])
        runtime.send_same("echo", targets, ["call", ("echo", targets[0]), "who", mb.address])
        got = [mb.get(10) for _ in range(200 * 3 + 200 + 3)]
        with pytest.raises(Timeout):
            mb.get(0.3)  # nothing more: one copy per node
    same = sorted(m[1] for m in got if m[0] == "same")
    assert same == sorted(list(range(200)) * 3)
    assert sorted(m[1] for m in got if m[0] == "called") == sorted(targets)
    ones = [m[1] for m in got if m[0] == "one"]
    for k in range(3):  # what node k forwarded, in the order node k was sent it
        mine = [i for i in ones if i % 3 == k]
        assert mine == sorted(mine) and len(mine) == len(range(k, 200, 3))


def test_remote_call_errors(cluster) -> None:
    n0 = cluster[0].name
    with pytest.raises(ServerNotFound):
        N.call(("nobody", n0), 1)
    with pytest.raises(ValueError, match="bad input"):
        N.call(("echo", n0), ["raise", "bad input"])
    with pytest.raises(codec.WireTypeError):
        N.send(("echo", n0), object())


def test_admin_tree_status_and_kill_restarts_the_actor(cluster) -> None:
    n1 = cluster[1].name
    assert admin(n1, "ping") == ["pong", n1]
    tree = admin(n1, "tree")
    assert tree["roots"][0]["children"][0]["name"] == "echo"
    assert wait_until(lambda: N.node_name() in admin(n1, "status")["nodes"], 5)
    with N.Mailbox() as mb:
        N.monitor_remote(("echo", n1), mb)
        N.call(("echo", n1), "sync")  # same link, so the monitor is in place before the kill
        assert admin(n1, "kill", "echo") is True
        down = mb.get(5)
        assert isinstance(down, supervisors.Down) and down.target == ("echo", n1)
        assert down.reason == "'killed'" or down.reason == "killed"
    assert wait_until(lambda: _answers(("echo", n1)), 5)
    urn = admin(n1, "tree")["roots"][0]["children"][0]["urn"]
    with N.Mailbox() as mb:
        N.monitor_remote(("echo", n1), mb)
        N.call(("echo", n1), "sync")
        assert admin(n1, "kill_urn", urn) is True       # by urn, for unnamed actors
        assert isinstance(mb.get(5), supervisors.Down)
    assert wait_until(lambda: _answers(("echo", n1)), 5)


def _answers(dest) -> bool:
    try:
        return N.call(dest, "ping", timeout=0.5)[0] == "echo"
    except Exception:
        return False


def _up_at(node_name: str) -> list[str]:
    return admin(node_name, "status")["nodes"]


def test_sigkill_is_detected_then_restart_resumes_traffic(cluster) -> None:
    n0, n1, victim = cluster
    with N.Mailbox() as events, N.Mailbox() as downs:
        token = N.subscribe_node_events(events)
        try:
            N.monitor_remote(("echo", victim.name), downs)
            t0 = time.monotonic()
            victim.kill()
            ev = events.get(DETECTION_S + SLACK_S)
            detected_s = time.monotonic() - t0
            assert ev == N.NodeEvent("node_down", victim.name)
            assert detected_s <= DETECTION_S + SLACK_S
            down = downs.get(1)
            assert down.reason == "noconnection" and down.target == ("echo", victim.name)
            for other in (n0, n1):
                assert wait_until(lambda: victim.name not in _up_at(other.name), DETECTION_S + SLACK_S)
            with pytest.raises(NodeDown):
                N.call(("echo", victim.name), "x", timeout=0.5)

            victim.start()
            assert events.get(10) == N.NodeEvent("node_up", victim.name)
            assert N.call(("echo", victim.name), "back") == ["echo", victim.name, "back"]
            for other in (n0, n1):
                assert wait_until(lambda: victim.name in _up_at(other.name), 5)
            N.send(("echo", n0.name), ["call", ("echo", victim.name), "again", events.address])
            assert events.get(5) == ["called", n0.name, ["echo", victim.name, "again"]]
        finally:
            N.unsubscribe_node_events(token)


def test_wrong_cookie_peer_is_refused(cluster, tmp_path) -> None:
    bad_file = tmp_path / "bad"
    bad_file.write_text("another-cookie\n")
    bad = NodeProcess("bad", str(bad_file), heartbeat_ms=HEARTBEAT_MS, down_after=DOWN_AFTER)
    try:
        bad.start()
        with pytest.raises((NodeDown, Timeout)):
            N.call(("echo", bad.name), "x", timeout=1.0)
        assert bad.name not in N.nodes()
        stats = N.admin_call(bad.name, ["stats"], "another-cookie", 5)
        assert stats["refused"] >= 1 and stats["recv_msgs"] == 1  # just this admin request
        with pytest.raises(NodeDown):
            N.admin_call(cluster[0].name, ["ping"], "another-cookie", 0.5)
    finally:
        bad.stop()
    # A raw frame signed with the wrong key is not delivered; the same frame signed right is.
    n0 = cluster[0].name
    with N.Mailbox() as mb:
        item = codec.packb([envelope.K_SEND, "echo", ["forward", list(mb.address), "raw"]])
        body = envelope.build_body(envelope.batch_prefix("intruder@127.0.0.1:9", 1),
                                   replay.new_session(), 1, [item])
        before = admin(n0, "stats")["refused"]
        _raw_send(n0, [envelope.seal(envelope.derive_key("wrong"), body)])
        assert wait_until(lambda: admin(n0, "stats")["refused"] > before, 5)
        with pytest.raises(Timeout):
            mb.get(0.2)
        _raw_send(n0, [envelope.seal(envelope.derive_key(COOKIE), body)])
        assert mb.get(5) == "raw"


def _raw_send(node_name: str, parts: list[bytes]) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 2000)
    try:
        sock.connect(N.transport.endpoint_of(node_name) if hasattr(N, "transport") else
                     "tcp://" + node_name.split("@")[1])
        sock.send_multipart(parts)
    finally:
        sock.close()


frames = st.lists(st.binary(max_size=64), min_size=0, max_size=4)
signed_values = st.recursive(
    st.none() | st.integers(-5, 2**40) | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=5), max_leaves=12)


def test_garbage_frames_never_crash_a_node(cluster) -> None:
    n0 = cluster[0].name
    key = envelope.derive_key(COOKIE)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect("tcp://" + n0.split("@")[1])
    before = admin(n0, "stats")
    session, counter = replay.new_session(), itertools.count(1)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames, signed_values, st.binary(max_size=64))
    def fuzz(parts: list[bytes], value: object, raw: bytes) -> None:
        if parts:
            sock.send_multipart(parts)                         # unsigned garbage
        body = msgpack.packb([envelope.VERSION, "fz@127.0.0.1:1", 1, 0, session, next(counter),
                              [value]])
        sock.send(envelope.seal(key, body))  # signed, bad messages
        sock.send(envelope.seal(key, raw))   # signed, bad body

    try:
        fuzz()
    finally:
        sock.close(0)
    assert admin(n0, "ping", timeout=10) == ["pong", n0]
    after = admin(n0, "stats")
    assert after["bad_frames"] > before["bad_frames"]
    assert after["refused"] + after["bad_frames"] > before["refused"] + before["bad_frames"]
    assert N.call(("echo", n0), "still here") == ["echo", n0, "still here"]


def test_partition_via_admin_hook_and_heal(cluster) -> None:
    a, b = cluster[0].name, cluster[1].name
    try:
        admin(a, "set_fault", b, {"partitioned": True})
        admin(b, "set_fault", a, {"partitioned": True})
        assert wait_until(lambda: b not in _up_at(a) and a not in _up_at(b), DETECTION_S + SLACK_S)
        with N.Mailbox() as mb:
            N.send(("echo", a), ["call", ("echo", b), "across", mb.address])
            assert mb.get(10) == ["call_error", a, "NodeDown"]
            # the rest of the mesh is unaffected
            assert N.call(("echo", a), 1) == ["echo", a, 1]
    finally:
        admin(a, "clear_faults")
        admin(b, "clear_faults")
    assert wait_until(lambda: b in _up_at(a) and a in _up_at(b), 5)
    with N.Mailbox() as mb:
        N.send(("echo", a), ["call", ("echo", b), "healed", mb.address])
        assert mb.get(5) == ["called", a, ["echo", b, "healed"]]


def test_local_fault_hook_delay_and_drop(cluster) -> None:
    n2 = cluster[2].name
    try:
        N.set_fault(n2, delay_ms=80)
        t0 = time.monotonic()
        N.call(("echo", n2), "slow")
        assert time.monotonic() - t0 >= 0.08
        N.set_fault(n2, drop=1.0)
        before = N.transport_stats()["dropped_fault"]
        with N.Mailbox() as mb:
            N.send(("echo", n2), ["forward", mb.address, "lost"])
            with pytest.raises(Timeout):
                mb.get(0.2)
        assert N.transport_stats()["dropped_fault"] > before
    finally:
        N.set_fault(n2)
    assert N.call(("echo", n2), "ok") == ["echo", n2, "ok"]


def test_queue_to_unreachable_node_is_bounded_and_never_blocks(cluster) -> None:
    ghost = f"ghost@127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    for i in range(20000):
        N.send(("x", ghost), i)
    assert time.monotonic() - t0 < 5
    stats = N.transport_stats()
    assert stats["queued"][ghost] <= 5000
    assert stats["dropped_queue_full"] >= 20000 - 5000 - 2048
    with pytest.raises(NodeDown):
        wait_until(lambda: False, DETECTION_S + 0.2)
        N.call(("x", ghost), 1, timeout=0.5)


def test_fast_restart_is_seen_as_down_then_up(cluster) -> None:
    victim = cluster[2]
    with N.Mailbox() as events, N.Mailbox() as downs:
        token = N.subscribe_node_events(events)
        try:
            N.monitor_remote(("echo", victim.name), downs)
            victim.restart()  # SIGKILL and start again on the same name and port
            # Either the silence or the new creation number reveals the restart.
            assert events.get(10) == N.NodeEvent("node_down", victim.name)
            assert downs.get(5).reason == "noconnection"
            assert events.get(10) == N.NodeEvent("node_up", victim.name)
            assert N.call(("echo", victim.name), "new") == ["echo", victim.name, "new"]
        finally:
            N.unsubscribe_node_events(token)


def test_order_survives_drop_and_delay_faults(cluster) -> None:
    n0 = cluster[0].name
    try:
        N.set_fault(n0, drop=0.3, delay_ms=5)
        with N.Mailbox() as mb:
            for i in range(2000):
                N.send(("echo", n0), ["forward", mb.address, i])
            assert wait_until(lambda: N.transport_stats()["queued"][n0] == 0, 5)
            N.set_fault(n0)  # faults apply when frames are built: all 2000 went through them
            N.send(("echo", n0), ["forward", mb.address, "end"])
            got = []
            while (m := mb.get(10)) != "end":
                got.append(m)
        assert got == sorted(got) and len(set(got)) == len(got)   # a subsequence, in order
        assert 800 < len(got) < 1900
    finally:
        N.set_fault(n0)


@pytest.mark.slow
def test_heavy_traffic_between_all_pairs(cluster) -> None:
    n = 50_000
    with N.Mailbox() as mb:
        pairs = list(itertools.permutations(names(cluster), 2))
        for a, b in pairs:
            for _ in range(n // 100):
                N.send(("echo", a), ["forward", ("sink", b), ["count", list(mb.address), n // 100]])
        got = [mb.get(60) for _ in pairs]
    assert all(m[0] == "counted" for m in got)
    assert all(s["dropped_queue_full"] == 0 for s in (admin(x, "stats") for x in names(cluster)))


def test_monitor_and_call_to_a_node_that_never_answers_fail(cluster) -> None:
    ghost = f"ghost2@127.0.0.1:{free_port()}"
    with N.Mailbox() as mb:
        N.monitor_remote(("x", ghost), mb)
        down = mb.get(DETECTION_S + SLACK_S)
        assert down.reason == "noconnection" and down.target == ("x", ghost)
        with pytest.raises(NodeDown):
            N.call(("x", ghost), 1, timeout=1.0)
        N.monitor_remote(("y", ghost), mb)            # known unreachable: at once
        assert mb.get(1).reason == "noconnection"
