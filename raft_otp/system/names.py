"""Server and cluster names: one rule, checked before anything is created.

A server's name is its registered name on its node (``supervisors.registry``)
and the start of its uid, which names its data directory
(``<data_dir>/servers/<name>_<12 hex>``); a cluster's name is kept in every
member's directory record and is how the CLI finds a cluster's server on a
node.  So both follow one rule, :data:`RULE`:

* 1 to :data:`NAME_MAX_CHARS` (64) characters;
* ASCII letters, digits, ``_``, ``-`` and ``.``, the first a letter or digit: no
  path separator, no ``.`` or ``..``, no leading ``-`` that reads as a command
  line option, nothing a shell or a file system treats specially;
* not beginning with ``raft_otp.``: the names of the library's own processes
  (``raft_otp.system.<system>``, ``raft_otp.notify.<n>``).

RA takes any atom (up to 255 characters) as a server name and any term as a
cluster name.  We are stricter because ours become file names: 64 characters
plus the uid's 13-character suffix stay far below the usual 255-byte limit of
a file name.

The API checks names before it touches any node (``start_cluster``,
``start_server``, ``add_member``'s new member), and the system actor checks
them again for requests that come from other nodes, so a refused name leaves
nothing behind.
"""

from __future__ import annotations

import re
from typing import Any

from raft_otp.errors import BadArgument

__all__ = ["NAME_MAX_CHARS", "RESERVED_PREFIX", "RULE", "check_cluster_name", "check_server_name"]

NAME_MAX_CHARS = 64
RESERVED_PREFIX = "raft_otp."
RULE = (f"1 to {NAME_MAX_CHARS} characters from A-Z a-z 0-9 _ - . beginning with a letter "
        f"or digit, and not beginning with {RESERVED_PREFIX!r}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def _check(kind: str, name: Any) -> str:
    if not isinstance(name, str):
        raise BadArgument(f"{kind} must be a str, got {type(name).__name__} {name!r:.80}")
    if (not 0 < len(name) <= NAME_MAX_CHARS or _NAME.fullmatch(name) is None
            or name.startswith(RESERVED_PREFIX)):
        shown = repr(name) if len(name) <= NAME_MAX_CHARS else f"{name[:NAME_MAX_CHARS]!r}... ({len(name)} chars)"
        raise BadArgument(f"invalid {kind} {shown}: a name is {RULE}")
    return name


def check_server_name(name: Any) -> str:
    """``name`` if it is a valid server name, else BadArgument stating the rule."""
    return _check("server name", name)


def check_cluster_name(name: Any) -> str:
    """``name`` if it is a valid cluster name, else BadArgument stating the rule."""
    return _check("cluster name", name)
