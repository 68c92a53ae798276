"""Goal: the node runs as a supervised child and comes back when its actor is killed."""

from __future__ import annotations

import pytest
from supervisors import Supervisor

from raft_otp import node as N
from raft_otp.errors import BadArgument, ServerNotFound
from raft_otp.node import admin, runtime
from raft_otp.node.service import node_child_spec
from raft_otp.node.testing import free_port, wait_until


def test_node_child_spec_starts_restarts_and_stops_the_node() -> None:
    name = f"svc@127.0.0.1:{free_port()}"
    sup = Supervisor([node_child_spec(name, "c")], strategy="one_for_one", intensity=5).start()
    try:
        assert N.node_name() == name and N.transport_stats()["io_thread_alive"]
        assert admin.admin_call(name, ["ping"], "c") == ["pong", name]
        old = runtime._node
        admin.kill("node")  # asynchronous: wait for the new incarnation
        assert wait_until(lambda: runtime._node is not None and runtime._node is not old, 10)
        assert admin.admin_call(name, ["ping"], "c", timeout=5) == ["pong", name]
    finally:
        sup.stop()
    assert N.node_name() == N.NONODE


def test_starting_a_second_node_in_one_process_is_refused() -> None:
    N.start_node(f"one@127.0.0.1:{free_port()}", "c")
    try:
        with pytest.raises(BadArgument):
            N.start_node(f"two@127.0.0.1:{free_port()}", "c")
    finally:
        N.stop_node()


def test_admin_requests_status_provider_and_errors() -> None:
    name = f"adm@127.0.0.1:{free_port()}"
    N.start_node(name, "c", config=N.NodeConfig(frame_max_bytes=1 << 16))
    try:
        N.set_status_provider(lambda: {"clusters": 0})
        status = admin.admin_call(name, ["status"], "c")
        assert status["node"] == name and status["system"] == {"clusters": 0}
        assert "sent_msgs" in admin.admin_call(name, ["stats"], "c")
        assert isinstance(admin.admin_call(name, ["registered"], "c"), list)
        with pytest.raises(ServerNotFound):
            admin.admin_call(name, ["kill", "nobody"], "c")
        with pytest.raises(BadArgument):
            admin.admin_call(name, ["no-such-op"], "c")
        assert admin.admin_call(name, ["set_fault", "x@127.0.0.1:1", {"drop": 0.5}], "c") is True
        assert N.transport_stats()["faults"] == {"x@127.0.0.1:1": {"drop": 0.5, "delay_ms": 0.0,
                                                                   "partitioned": False}}
        assert admin.admin_call(name, ["clear_faults"], "c") is True
        assert N.transport_stats()["faults"] == {}
        with pytest.raises(BadArgument):  # bigger than frame_max_bytes: refused at the sender
            N.send(("x", "other@127.0.0.1:1"), b"x" * (1 << 16))
    finally:
        N.set_status_provider(None)
        N.stop_node()


def test_links_to_nodes_that_never_answer_are_forgotten() -> None:
    cfg = N.NodeConfig(heartbeat_interval_ms=20, down_after_missed=2, unreachable_forget_s=0.2)
    N.start_node(f"gc@127.0.0.1:{free_port()}", "c", config=cfg)
    try:
        ghost = f"nobody@127.0.0.1:{free_port()}"
        N.send(("x", ghost), 1)
        assert wait_until(lambda: N.transport_stats()["forgotten_links"] == 1, 5)
        assert ghost not in N.transport_stats()["queued"]
        N.send(("x", ghost), 2)  # a new link is made on demand
        assert wait_until(lambda: ghost in N.transport_stats()["queued"], 5)
    finally:
        N.stop_node()
