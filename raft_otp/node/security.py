"""Transport security settings, key files and private files (one place decides them).

Two modes (``Security.mode``, the ``transport_security`` setting):

* ``"mac"``: every frame carries a MAC keyed from the cookie (``envelope``) and a
  per-link session nonce and counter (``replay``): frames are authenticated and a
  replayed or old-session frame is refused, but nothing is encrypted.
* ``"curve"``: the same frames inside ZeroMQ CURVE (CurveZMQ: X25519 + XSalsa20-
  Poly1305 with per-connection short-term keys), so everything on the wire is
  encrypted, and a connection is accepted only from a public key listed in the
  node's *allowed-keys file* (checked by a ZAP handler on the transport's I/O
  thread).  The cookie MAC stays inside: a peer needs both an allowed key and the
  cookie.

Keys: each node has its own CURVE key pair; the secret key (Z85, 40 characters)
is kept in a file of mode 0600 (``DATA_DIR/node.key`` for a node with a data dir),
created on first use; the public key is derived from it.  The allowed-keys file
has one ``NODE_NAME PUBLIC_KEY_Z85`` line per node (lines starting with ``#``
are comments; a name may be a pattern such as ``raft-otp-cli-*@*`` for client
nodes named at start): it is the set of keys this node accepts, where it finds
the key of a node it connects to, and which key each node name must use (a
frame whose sender is another node than its connection's key belongs to is
refused, so an allowed key cannot speak for another node).  It is read again
when its modification time changes, so a node is added or revoked by editing
the file (revocation takes effect at that node's next connection).  A node
that finds no allowed-keys file creates one listing itself only.

Why an allowed-keys file rather than keys derived from the cookie: a key derived
from the cookie is known to every cookie holder, so it would add encryption but
no identity: it could not say which node a connection comes from, and no single
node could be revoked without changing the cookie everywhere.  The cookie
already is the simple shared-secret case (``"mac"``), and stays in ``"curve"`` as a
second factor.

Private files, as Erlang treats ``~/.erlang.cookie``: a cookie file or key file
that its group or others may access is refused (:class:`BadArgument` naming the
file and its mode); key files are created 0600 and data dirs 0700.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
import threading
from dataclasses import dataclass
from typing import Literal

import zmq

from raft_otp.errors import BadArgument

__all__ = [
    "Security", "TransportSecurity", "MODES", "AllowedKeys", "check_private", "ensure_key_file",
    "read_key_file", "public_key_of", "write_private", "private_dir", "set_default", "default",
]

logger = logging.getLogger("raft_otp.node")

TransportSecurity = Literal["mac", "curve"]
MODES: tuple[str, ...] = ("mac", "curve")
DATA_DIR_KEY = "node.key"
DATA_DIR_ALLOWED = "allowed_keys"
ENV_MODE = "RAFT_OTP_TRANSPORT_SECURITY"
ENV_KEY_FILE = "RAFT_OTP_KEY_FILE"
ENV_ALLOWED = "RAFT_OTP_ALLOWED_KEYS"


@dataclass(frozen=True, slots=True)
class Security:
    """How a node protects its links.  ``key_file`` and ``allowed_keys`` are paths,
    used in ``"curve"`` mode only (``key_file`` is created 0600 when absent)."""

    mode: TransportSecurity = "mac"
    key_file: str | None = None
    allowed_keys: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadArgument(f"transport_security must be one of {', '.join(map(repr, MODES))}; "
                              f"got {self.mode!r}")
        if self.mode == "curve" and not (self.key_file and self.allowed_keys):
            raise BadArgument("transport_security 'curve' needs a key file and an allowed-keys "
                              f"file; got key_file={self.key_file!r}, "
                              f"allowed_keys={self.allowed_keys!r}")

    @classmethod
    def for_data_dir(cls, mode: str, data_dir: str) -> "Security":
        """A node's settings with its key files in its data dir."""
        if mode != "curve":
            return cls(mode)  # type: ignore[arg-type]  # checked in __post_init__
        return cls("curve", os.path.join(data_dir, DATA_DIR_KEY),
                   os.path.join(data_dir, DATA_DIR_ALLOWED))

    @classmethod
    def from_env(cls) -> "Security":
        """``$RAFT_OTP_TRANSPORT_SECURITY`` (default ``mac``), ``$RAFT_OTP_KEY_FILE``,
        ``$RAFT_OTP_ALLOWED_KEYS``."""
        mode = os.environ.get(ENV_MODE) or "mac"
        if mode != "curve":
            return cls(mode)  # type: ignore[arg-type]
        return cls("curve", os.environ.get(ENV_KEY_FILE), os.environ.get(ENV_ALLOWED))


_default: Security | None = None


def set_default(security: Security | None) -> None:
    """The settings a node or admin client uses when given none (None: from the
    environment).  The CLI sets it from its flags."""
    global _default
    _default = security


def default() -> Security:
    return _default if _default is not None else Security.from_env()


# ---- private files ------------------------------------------------------------------

def check_private(path: str, what: str) -> None:
    """Raise BadArgument if ``path`` may be read or written by its group or others."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise BadArgument(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise BadArgument(f"{what} {path} must be accessible by its owner only (mode "
                          f"{stat.S_IMODE(mode):04o}; run: chmod 600 {path})")


def private_dir(path: str) -> None:
    """Create directory ``path`` with mode 0700 if absent (an existing one is left as is)."""
    os.makedirs(path, mode=0o700, exist_ok=True)


def write_private(path: str, text: str) -> None:
    """Create ``path`` with mode 0600 holding ``text`` (an existing file is replaced
    atomically; the mode is set before any byte is written)."""
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# ---- keys ---------------------------------------------------------------------------

def ensure_key_file(path: str) -> bytes:
    """The secret key in ``path`` (Z85), creating the file (0600) with a new key pair
    if it is absent.  Returns the public key (Z85)."""
    if not os.path.exists(path):
        _public, secret = zmq.curve_keypair()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made by someone else meanwhile
            pass
        else:
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(secret.decode() + "\n")
                f.flush()
                os.fsync(f.fileno())
            logger.info("created CURVE key file %s", path)
    return public_key_of(read_key_file(path))


def read_key_file(path: str) -> bytes:
    """The Z85 secret key in ``path``; the file must be private."""
    check_private(path, "key file")
    with open(path, encoding="ascii", errors="replace") as f:
        secret = f.readline().strip().encode()
    if len(secret) != 40:
        raise BadArgument(f"key file {path} does not hold a Z85 CURVE secret key (40 characters)")
    return secret


def public_key_of(secret: bytes) -> bytes:
    """The Z85 public key of a Z85 secret key."""
    try:
        return zmq.curve_public(secret)
    except (zmq.ZMQError, ValueError) as exc:
        raise BadArgument(f"not a CURVE secret key: {exc}") from None


class AllowedKeys:
    """The allowed-keys file: ``NODE_NAME PUBLIC_KEY_Z85`` lines, re-read when changed.

    ``NODE_NAME`` may be a shell pattern (``raft-otp-cli-*@10.0.0.5:*``) for client
    nodes whose names are made up at start (the CLI's): a node using that key and
    a name matching the pattern is then known by that name (:meth:`learn`, at most
    ``learned_max`` names)."""

    def __init__(self, path: str, learned_max: int = 10_000) -> None:
        self.path = path
        self._mtime_ns = -1
        self._by_node: dict[str, bytes] = {}
        self._patterns: list[tuple[str, bytes]] = []
        self._keys: frozenset[bytes] = frozenset()
        self._learned: dict[str, bytes] = {}
        self._learned_max = learned_max
        self._lock = threading.Lock()
        self.refresh()
        if not self._keys:
            logger.warning("allowed-keys file %s lists no key", path)

    def refresh(self) -> None:
        """Read the file again if its modification time changed."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError as exc:
            raise BadArgument(f"cannot read allowed-keys file {self.path}: "
                              f"{exc.strerror or exc}") from None
        if mtime == self._mtime_ns:
            return
        by_node: dict[str, bytes] = {}
        patterns: list[tuple[str, bytes]] = []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                words = line.split()
                if not words or words[0].startswith("#"):  # Z85 keys may hold '#'
                    continue
                if len(words) != 2 or len(words[1]) != 40:
                    raise BadArgument(f"allowed-keys file {self.path} line {lineno}: expected "
                                      f"'NODE_NAME PUBLIC_KEY_Z85' (40 characters), got {line.strip()!r}")
                name, key = words[0], words[1].encode()
                if any(ch in name for ch in "*?["):
                    patterns.append((name, key))
                else:
                    by_node[name] = key
        with self._lock:
            self._by_node = by_node
            self._patterns = patterns
            self._keys = frozenset(by_node.values()) | {k for _, k in patterns}
            self._learned = {n: k for n, k in self._learned.items()
                             if any(k == pk and fnmatch.fnmatchcase(n, p) for p, pk in patterns)}
            self._mtime_ns = mtime

    def key_of(self, node: str) -> bytes | None:
        """The public key (Z85) of ``node``: listed (re-reading a changed file once) or
        learned."""
        key = self._by_node.get(node) or self._learned.get(node)
        if key is None:
            self.refresh()
            key = self._by_node.get(node) or self._learned.get(node)
        return key

    def allows(self, public_z85: bytes) -> bool:
        """Whether a connection with this key is accepted (the file is re-read if changed)."""
        try:
            self.refresh()
        except BadArgument:
            logger.warning("allowed-keys file %s unreadable; keeping the last one read", self.path)
        return public_z85 in self._keys

    def learn(self, node: str, public_z85: bytes) -> bool:
        """Know ``node`` by ``public_z85`` if a pattern line with that key matches its name
        (and no line names it exactly); False otherwise."""
        if node in self._by_node:
            return False
        for pattern, key in self._patterns:
            if key == public_z85 and fnmatch.fnmatchcase(node, pattern):
                with self._lock:
                    if len(self._learned) >= self._learned_max:
                        del self._learned[next(iter(self._learned))]
                    self._learned[node] = public_z85
                return True
        return False
