"""What every console command shares: cookies, one-line errors, admin calls, client nodes.

Cookies follow Erlang: a node started without ``--cookie-file`` uses the
cookie file in its data dir if there is one, else ``~/.raft_otp_cookie``,
created with mode 0600 and a random secret when absent.  Client commands use
``--cookie-file``, else ``$RAFT_OTP_COOKIE_FILE``, else ``$RAFT_OTP_COOKIE``,
else ``~/.raft_otp_cookie``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from typing import Any, Iterator

from raft_otp.errors import BadArgument, NodeDown, RaftError

__all__ = ["ConsoleError", "DATA_DIR_COOKIE", "default_cookie_file", "ensure_cookie_file",
           "read_cookie_file", "client_cookie", "check_node_name", "admin", "client_node",
           "free_port"]

DATA_DIR_COOKIE = "cookie"


class ConsoleError(Exception):
    """An expected failure of a console command: printed as one line, exit status 1."""


def default_cookie_file() -> str:
    """``~/.raft_otp_cookie``, the same default as the API's (``raft_otp.connect``)."""
    from raft_otp.node.runtime import default_cookie_file as api_default
    return api_default()


def ensure_cookie_file(path: str) -> str:
    """Create ``path`` with a random cookie and mode 0600 unless it exists; return it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(20) + "\n")
    return path


def read_cookie_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            cookie = f.readline().strip()
    except OSError as exc:
        raise ConsoleError(f"cannot read cookie file {path}: {exc.strerror or exc}") from None
    if not cookie:
        raise ConsoleError(f"cookie file {path} is empty")
    return cookie


def client_cookie(cookie_file: str | None) -> str:
    """The cookie a client command signs its requests with."""
    path = cookie_file or os.environ.get("RAFT_OTP_COOKIE_FILE")
    if path:
        return read_cookie_file(path)
    if os.environ.get("RAFT_OTP_COOKIE"):
        return os.environ["RAFT_OTP_COOKIE"]
    path = default_cookie_file()
    if not os.path.exists(path):
        raise ConsoleError(f"no cookie: {path} does not exist; pass --cookie-file "
                           "(the one the node was started with)")
    return read_cookie_file(path)


def check_node_name(node: str) -> tuple[str, str, int]:
    from raft_otp.node.transport import split_node_name
    try:
        return split_node_name(node)
    except BadArgument:
        raise ConsoleError(f"node name {node!r} is not of the form name@host:port") from None


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def admin(node: str, request: list[Any], cookie: str, timeout: float) -> Any:
    """One admin request; unreachable node and wrong cookie become ConsoleErrors."""
    from raft_otp.node.admin import admin_call
    _, host, port = check_node_name(node)
    try:
        return admin_call(node, request, cookie, timeout)
    except NodeDown:
        if not _port_open(host, port):
            raise ConsoleError(f"node {node} is unreachable "
                               f"(nothing listens on {host}:{port})") from None
        raise ConsoleError(f"node {node} did not answer within {timeout:g} s: wrong cookie "
                           "(secret), or the node is overloaded") from None
    except RaftError as exc:
        raise ConsoleError(f"node {node}: {type(exc).__name__}: {exc}") from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def client_node(cookie: str, host: str = "127.0.0.1") -> Iterator[str]:
    """Make this process a temporary port-less client node ``raft-otp-cli-PID@host:0``
    for API calls: it binds nothing and gets its replies over the connections it
    opens (``raft_otp.node.transport``); ``host`` only labels it."""
    import raft_otp.api  # noqa: F401  (registers the wire types a client needs)
    from raft_otp.node import runtime as node_rt
    name = f"raft-otp-cli-{os.getpid()}@{host}:0"
    node_rt.start_node(name, cookie)
    try:
        yield name
    finally:
        node_rt.stop_node()
