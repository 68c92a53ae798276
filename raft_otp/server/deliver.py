"""Carry an answer to whoever asked (RA: ``gen_statem:reply`` / ``ra_server_proc`` notify).

``reply_to`` values are opaque to the core; this module is the one place that
knows what they can be.  Remote addresses go through ``raft_otp.node.send``;
everything else is local and costs no serialisation.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

import pykka

from raft_otp.errors import WireTypeError
from raft_otp.server.messages import CallReply, ReplySlot

log = logging.getLogger("raft_otp.server")


def _send_remote(to: tuple[str, str], message: Any) -> None:
    """Send to another node; an answer that cannot be encoded (a query or machine
    returning a set, an object) becomes that caller's error instead of silence."""
    from raft_otp.node.runtime import send

    try:
        send(to, message)
    except WireTypeError as exc:
        if type(message) is not CallReply:
            raise
        err = WireTypeError(f"the answer cannot be sent to another node: {exc}")
        send(to, CallReply(False, err, message.leader, message.server))


def deliver(to: Any, message: Any) -> None:
    """Deliver ``message`` to ``to``; a dead target is ignored (as an Erlang send is)."""
    if to is None:
        return
    try:
        if isinstance(to, ReplySlot):
            to.set(message)
        elif isinstance(to, pykka.ActorRef):
            to.tell(message)
        elif isinstance(to, (tuple, list)) and len(to) == 2 and isinstance(to[1], str):
            _send_remote((to[0], to[1]), message)
        elif isinstance(to, queue.Queue):
            to.put_nowait(message)
        elif isinstance(to, pykka.Future):
            to.set(message)
        elif hasattr(to, "deliver"):
            to.deliver(message)  # asyncio bridges
        elif hasattr(to, "tell"):
            to.tell(message)  # a raft_otp.node Mailbox, anything actor-like
        elif callable(to):
            to(message)
        else:
            log.warning("cannot deliver to %r; dropped %r", to, type(message).__name__)
    except pykka.ActorDeadError:
        pass
    except Exception:  # a broken caller target must never crash the server
        log.exception("delivery to %r failed", to)
