"""Goal: exit watching needs no pykka internals: our actor types and supervised plain pykka
actors are watched from birth (with the failure as the reason); a plain actor started
elsewhere falls back to a helper thread that joins its thread and then ends."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka
import pytest

import supervisors
from supervisors import ChildSpec, Supervisor, kill, monitor
from supervisors._watch import ExitWatched, actor_of, watched_class
from supervisors.testing import stop_all_roots

T = 10.0


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    assert stop_all_roots() == []
    pykka.ActorRegistry.stop_all()


class Plain(pykka.ThreadingActor):
    """An unmodified pykka actor."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise ValueError("plain crashed")
        return message


def helper_threads() -> int:
    return sum(t.name == "supervisors-foreign-exit" for t in threading.enumerate())


def test_a_plain_actor_started_elsewhere_is_watched_by_joining_its_thread():
    before = helper_threads()
    ref = Plain.start()
    downs: queue.Queue = queue.Queue()
    monitor(ref, downs.put)
    monitor(ref, downs.put)  # one shared watch, one helper thread
    assert helper_threads() == before + 1
    assert actor_of(ref) is None  # not ours: we keep no handle on it
    ref.stop()
    assert [downs.get(timeout=T).reason for _ in range(2)] == ["normal", "normal"]
    pause = threading.Event()
    for _ in range(200):  # the helper ends right after telling the listeners
        if helper_threads() == before:
            break
        pause.wait(0.01)
    assert helper_threads() == before
    killed = Plain.start()
    monitor(killed, downs.put)
    kill(killed)
    assert downs.get(timeout=T).reason == "killed"


def test_a_supervised_plain_actor_gets_the_mixin_and_its_real_exit_reason():
    sup = Supervisor([ChildSpec.actor("p", Plain)], intensity=3).start()
    ref = sup.child_ref("p")
    assert ref.actor_class is watched_class(Plain) and issubclass(ref.actor_class, ExitWatched)
    assert ref.actor_class.__name__ == "Plain" and watched_class(Plain) is watched_class(Plain)
    assert actor_of(ref) is not None and not helper_threads()
    downs: queue.Queue = queue.Queue()
    monitor(ref, downs.put)
    ref.tell("crash")
    reason = downs.get(timeout=T).reason
    assert isinstance(reason, ValueError) and "plain crashed" in str(reason)


def test_our_threading_actor_is_watched_natively():
    class Ours(supervisors.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            raise KeyError(message)

    assert watched_class(Ours) is Ours
    ref = Ours.start()
    downs: queue.Queue = queue.Queue()
    monitor(ref, downs.put)
    with pytest.raises(KeyError):
        ref.ask("asked")  # an ask's exception goes back, the actor lives
    ref.tell("told")
    assert isinstance(downs.get(timeout=T).reason, KeyError)
    got: list[Any] = []
    monitor(ref, got.append)
    assert got[0].reason == "noproc"  # already dead when monitored, as in Erlang
