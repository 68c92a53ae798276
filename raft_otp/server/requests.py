"""Client requests as the core takes them: queries named by import path resolved here.

A query's function travels as an import path (``"module:function"``, or
``[path, args]`` for a function of the state and extra arguments) because a
callable cannot cross nodes; the server resolves it before the core sees it.
"""

from __future__ import annotations

from typing import Any

from raft_otp.core import events as ev
from raft_otp.system.resolve import resolve_query

__all__ = ["resolve_query_event"]


def resolve_query_event(q: Any) -> Any:
    """``q`` with its function resolved to a callable (raises if it cannot be)."""
    if callable(q.fun):
        return q
    if isinstance(q.fun, (list, tuple)):
        fun = _bind(resolve_query(q.fun[0]), q.fun[1])
    else:
        fun = resolve_query(q.fun)
    if isinstance(q, ev.LocalQuery):
        return ev.LocalQuery(q.reply_to, fun, q.min_index)
    return type(q)(q.reply_to, fun)


def _bind(f: Any, args: Any) -> Any:
    args = tuple(args)
    return lambda state: f(state, *args)
