"""A node process's log output: ``--log-level`` and ``--log-format text|json``.

Both formats keep a record on **one line**, so a log shipper that splits on
newlines never breaks a traceback away from its record:

* ``json``: one JSON object per line with ``time`` (UTC, ISO 8601, ms),
  ``level``, ``logger``, ``message``, ``server`` and ``term`` where known (a
  record's ``extra={"server": ..., "term": ...}``, else the ``<server> term <n>:``
  prefix every server line carries), ``exc`` (the whole traceback text) and
  ``thread``;
* ``text``: ``time level logger: message``; newlines inside the message or the
  traceback are written as the two characters ``\\n`` (our choice: the record
  stays greppable and one line; ``sed 's/\\\\n/\\n/g'`` gives the original back).

Only real level names are accepted (``check_level``): a typo is a ``BadArgument``
naming the choices, not a silent WARNING.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import IO, Any

from raft_otp.errors import BadArgument

__all__ = ["LEVELS", "FORMATS", "check_level", "check_format", "JsonFormatter",
           "OneLineFormatter", "setup"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")

# "kv1/n1@127.0.0.1:7001 term 3: ..." (raft_otp.server's prefix) or "kv1/n1@...: ..."
_SERVER_PREFIX = re.compile(r"^(?P<server>[^\s/]+/[^\s:]+(?::\d+)?)(?: term (?P<term>\d+))?[:\s]")


def check_level(name: Any) -> str:
    """``name`` as an upper-case level name, else ``BadArgument`` listing the levels."""
    if isinstance(name, str) and name.upper() in LEVELS:
        return name.upper()
    raise BadArgument(f"log level must be one of {', '.join(LEVELS)} (any case), got {name!r}")


def check_format(name: Any) -> str:
    """``name`` if it is ``text`` or ``json``, else ``BadArgument``."""
    if name in FORMATS:
        return str(name)
    raise BadArgument(f"log format must be one of {', '.join(FORMATS)}, got {name!r}")


def _iso(created: float) -> str:
    t = time.gmtime(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (the traceback in ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, Any] = {"time": _iso(record.created), "level": record.levelname,
                               "logger": record.name, "message": message}
        server = getattr(record, "server", None)
        term = getattr(record, "term", None)
        if server is None and record.name.startswith("raft_otp"):
            m = _SERVER_PREFIX.match(message)
            if m:
                server = m.group("server")
                if term is None and m.group("term") is not None:
                    term = int(m.group("term"))
        if server is not None:
            out["server"] = str(server)
        if term is not None:
            out["term"] = term
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        out["thread"] = record.threadName
        return json.dumps(out, default=str, ensure_ascii=False)


class OneLineFormatter(logging.Formatter):
    """The text format, one physical line per record (newlines written as ``\\n``)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "\\r").replace("\n", "\\n")


def setup(level: str = "WARNING", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Configure the root logger of a node process: one handler on ``stream`` (stderr)
    with the chosen format; replaces handlers an earlier call installed."""
    lvl = check_level(level)
    fmt = check_format(fmt)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else OneLineFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_raft_otp_setup", False):
            root.removeHandler(h)
    handler._raft_otp_setup = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, lvl))
