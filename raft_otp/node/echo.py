"""A small actor for tests and benchmarks of the transport (``--echo``).

Registered as ``echo``.  ``call`` returns ``["echo", node, message]``.  Told:

* ``["forward", dest, payload]``   -> ``send(dest, payload)``
* ``["call", dest, payload, reply_to]`` -> ``send(reply_to, ["called", node, result])``
  (or ``["call_error", node, type name]``), from a helper thread
* ``["count", reply_to, n]``        -> after ``n`` such messages, ``send(reply_to, ["counted", n])``
* ``["crash"]`` raises (abnormal exit), ``["stop"]`` stops normally.
"""

from __future__ import annotations

from typing import Any

import threading

import pykka

from raft_otp.node import runtime

__all__ = ["EchoActor", "CountSink", "start_echo"]


class EchoActor(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.counted = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, list) and message:
            op = message[0]
            if op == "forward":
                runtime.send(message[1], message[2])
                return None
            if op == "call":  # in a thread: two echoes calling each other must not deadlock
                threading.Thread(target=_call_and_report, args=(message,), daemon=True).start()
                return None
            if op == "count":
                self.counted += 1
                if self.counted >= message[2]:
                    runtime.send(message[1], ["counted", self.counted])
                    self.counted = 0
                return None
            if op == "crash":
                raise RuntimeError("echo told to crash")
            if op == "stop":
                self.stop()
                return None
            if op == "raise":
                raise ValueError(str(message[1]) if len(message) > 1 else "raised")
        return ["echo", runtime.node(), message]


class CountSink:
    """Registered as ``sink``: counts ``["count", reply_to, n]`` messages in the I/O thread.

    No actor, no thread hop: measures the transport alone (bench/transport.py)."""

    def __init__(self) -> None:
        self.counted = 0

    def is_alive(self) -> bool:
        return True

    def tell(self, message: Any) -> None:
        self.counted += 1
        if self.counted >= message[2]:
            runtime.send(message[1], ["counted", self.counted])
            self.counted = 0


def _call_and_report(message: list[Any]) -> None:
    try:
        result = runtime.call(message[1], message[2], timeout=5.0)
        runtime.send(message[3], ["called", runtime.node(), result])
    except Exception as exc:
        runtime.send(message[3], ["call_error", runtime.node(), type(exc).__name__])


def start_echo(name: str = "echo") -> Any:
    """Start an EchoActor registered under ``name``, under a one_for_one supervisor if possible."""
    from supervisors import registry

    ref = EchoActor.start()
    registry.register(name, ref)
    return ref
