"""Network partitions in the kernel: one network namespace per node.

Used by the fault harness with ``--net netns`` (needs root, or CAP_NET_ADMIN and
CAP_SYS_ADMIN, and the ``ip`` tool).  Layout of a run::

    root namespace:  bridge rotpbr<id> 10.<a>.<b>.254/24   <- the harness (client node)
       |-- veth rotp<id>h<i>  <->  eth0 in namespace rotp<id>n<i>: 10.<a>.<b>.<i>/24
       ...                                                    (node i runs there)

A cut between nodes ``i`` and ``j`` is a pair of blackhole routes (``ip route add
blackhole 10.a.b.j/32`` inside namespace i, and the mirror in j): packets are
silently dropped by the kernel, as on a real partition, and the transport knows
nothing about it.  The client stays connected to every node.  ``close`` removes
every namespace, veth and the bridge it made.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["NetNs", "available"]


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = (["ip", "netns", "exec", ns, "ip"] if ns else ["ip"]) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=10)


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "the ip tool is not installed"
    probe = f"rotpprobe{os.getpid() % 100000}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


class NetNs:
    """``n`` namespaces on one bridge; node ``i`` (0-based) gets address ``addr(i)``."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.id = f"{os.getpid() % 10000:04d}"
        a, b = 10 + (os.getpid() % 200), (os.getpid() // 200) % 250
        self.prefix = f"10.{a}.{b}"
        self.bridge = f"rotpbr{self.id}"
        self.namespaces = [f"rotp{self.id}n{i + 1}" for i in range(n)]
        self._cuts: set[tuple[int, int]] = set()
        self._made: list[tuple[str, str]] = []  # ("ns"|"link", name) to remove at close

    def addr(self, i: int) -> str:
        return f"{self.prefix}.{i + 1}"

    @property
    def client_addr(self) -> str:
        return f"{self.prefix}.254"

    def exec_prefix(self, i: int) -> list[str]:
        """Prepend to a command to run it in node ``i``'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[i]]

    def setup(self) -> None:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._made.append(("link", self.bridge))
            _ip("addr", "add", f"{self.client_addr}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, ns in enumerate(self.namespaces):
                host_end = f"rotp{self.id}h{i + 1}"
                subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True,
                               text=True, timeout=10)
                self._made.append(("ns", ns))
                _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self._made.append(("link", host_end))
                _ip("link", "set", host_end, "master", self.bridge)
                _ip("link", "set", host_end, "up")
                _ip("addr", "add", f"{self.addr(i)}/24", "dev", "eth0", ns=ns)
                _ip("link", "set", "eth0", "up", ns=ns)
                _ip("link", "set", "lo", "up", ns=ns)
        except Exception:
            self.close()
            raise

    def cut(self, i: int, j: int) -> None:
        """Drop every packet between nodes ``i`` and ``j`` (both directions)."""
        if (min(i, j), max(i, j)) in self._cuts:
            return
        _ip("route", "add", "blackhole", f"{self.addr(j)}/32", ns=self.namespaces[i])
        _ip("route", "add", "blackhole", f"{self.addr(i)}/32", ns=self.namespaces[j])
        self._cuts.add((min(i, j), max(i, j)))

    def heal(self) -> None:
        for i, j in list(self._cuts):
            _ip("route", "del", "blackhole", f"{self.addr(j)}/32", ns=self.namespaces[i],
                check=False)
            _ip("route", "del", "blackhole", f"{self.addr(i)}/32", ns=self.namespaces[j],
                check=False)
        self._cuts.clear()

    def close(self) -> None:
        for kind, name in reversed(self._made):
            if kind == "ns":
                subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
            else:
                _ip("link", "del", name, check=False)
        self._made.clear()
