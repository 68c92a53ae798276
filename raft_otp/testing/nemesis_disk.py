"""Small filesystems that fill up: the nemesis's ``disk-full`` fault and the disk alarm's tests.

Each node's data dir is a small tmpfs mount (made before the node first starts,
so nothing of the node is hidden by it).  :meth:`TmpfsDisks.fill` writes a
filler file until the filesystem says ENOSPC; :meth:`TmpfsDisks.free` deletes
it.  Mounting needs root (or CAP_SYS_ADMIN) and ``mount``; :func:`available`
says why not otherwise, and callers skip the fault cleanly.  :meth:`close`
unmounts everything (call it in ``finally``, after the nodes have stopped).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile

__all__ = ["FILLER", "TmpfsDisks", "available"]

FILLER = "zz_disk_full_filler"
DEFAULT_SIZE_MB = 96  # above the default disk_free_limit_bytes (50 MB), with room for a run's log


def _run(args: list[str]) -> str | None:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{args[0]}: {exc}"
    return None if r.returncode == 0 else (r.stderr or r.stdout).strip() or f"exit status {r.returncode}"


def mount_tmpfs(path: str, size_mb: int) -> str | None:
    """Mount a ``size_mb`` MiB tmpfs (mode 0700) at ``path``; None, or why it failed."""
    return _run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", path])


def umount(path: str) -> str | None:
    why = _run(["umount", path])
    if why is not None:  # busy (a straggler still has a file open): detach it
        why = _run(["umount", "-l", path])
    return why


def available() -> str | None:
    """None if this process can mount a tmpfs here, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "no mount/umount command"
    d = tempfile.mkdtemp(prefix="raft_otp_tmpfs_probe_")
    try:
        why = mount_tmpfs(d, 1)
        if why is not None:
            return f"mount -t tmpfs failed: {why}"
        umount(d)
        return None
    finally:
        os.rmdir(d)


def fill(path: str) -> int:
    """Write ``path/FILLER`` until the filesystem is full; returns the bytes written."""
    target = os.path.join(path, FILLER)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    written = 0
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            buf = b"\0" * chunk
            while True:
                try:
                    n = os.write(fd, buf)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                written += n
                if n < chunk:
                    break
    finally:
        os.close(fd)
    return written


def free(path: str) -> bool:
    """Delete the filler; True if there was one."""
    try:
        os.unlink(os.path.join(path, FILLER))
        return True
    except FileNotFoundError:
        return False


class TmpfsDisks:
    """Small tmpfs mounts on a set of (not yet used) directories."""

    def __init__(self, size_mb: int = DEFAULT_SIZE_MB) -> None:
        self.size_mb = size_mb
        self.mounted: list[str] = []

    def setup(self, dirs: list[str]) -> None:
        for d in dirs:
            os.makedirs(d, exist_ok=True)
            if os.listdir(d):
                raise RuntimeError(f"{d} is not empty: a tmpfs mount would hide its files")
            why = mount_tmpfs(d, self.size_mb)
            if why is not None:
                raise RuntimeError(f"mount tmpfs on {d}: {why}")
            self.mounted.append(d)

    def fill(self, d: str) -> int:
        return fill(d)

    def free(self, d: str) -> bool:
        return free(d)

    def free_all(self) -> None:
        for d in self.mounted:
            free(d)

    def close(self) -> list[str]:
        """Unmount everything; returns the errors (a mount left behind is named)."""
        errors = []
        for d in reversed(self.mounted):
            why = umount(d)
            if why is not None:
                errors.append(f"umount {d}: {why}")
        self.mounted = []
        return errors
