"""WAL recovery: scan WAL files and rebuild the mem tables (RA ``ra_log_wal`` recovery).

A torn tail is dropped and reported (warning).  Mid-file damage is reported
(error, and a :class:`~raft_otp.errors.CorruptFile` in
``MemTables.recovery_damage`` naming file, offset and the unverified uid),
every record that verifies is kept, and a server's later records are kept only
if they connect to what it already has: the damaged region may have held some
of its entries, and a Raft log cannot have holes.  (RA refuses to boot on such
damage, issue #299; we keep what is provably intact.)

Each damaged region is reported once, on one line that also names, per server,
the later records dropped because of it (one flipped byte used to give a line
per such record: hundreds), and only by the first recovery of a data dir (a WAL
restart rescans its files quietly).  A file the WAL created but never wrote a
record to (empty, a cut header, a header alone: a crash or ENOSPC right after
creating it) is not damage: it is removed with the others, without a report.
"""

from __future__ import annotations

import gc
import logging

from raft_otp.errors import CorruptFile
from raft_otp.log import wal_format as fmt
from raft_otp.log.fileio import OS, FileIO
from raft_otp.log.memtable import MemTables, ServerStore

log = logging.getLogger("raft_otp.wal")


def recover_file(path: str, mem_tables: MemTables | None, io: FileIO = OS) -> dict[str, tuple[int, int]]:
    """Scan one WAL file; apply its records to the mem tables (if given); return uid ranges.

    Damage is logged and recorded in ``mem_tables.recovery_damage``.  A torn tail
    is dropped.  After mid-file damage, a server's later records are kept only if
    they connect to what it already has (a truncating record always connects),
    because the damaged region may have held that server's entries."""
    data = io.read_file(path)
    gc_was = gc.isenabled()
    gc.disable()  # millions of new tuples: the cyclic GC would rescan them over and over
    try:
        return _recover_image(path, data, mem_tables)
    finally:
        if gc_was:
            gc.enable()


def _is_unwritten(data: bytes) -> bool:
    """A WAL file the WAL created but never wrote a record to: empty, a header cut
    short (a crash, or ENOSPC, between creating the file and syncing its header), or
    a header alone.  Nothing in it: removed with the others, without a report."""
    head = fmt.encode_file_header()
    if len(data) < len(head):
        return head.startswith(data) or not any(data)
    return len(data) == len(head) and data == head


def _recover_image(path: str, data: bytes, mem_tables: MemTables | None) -> dict[str, tuple[int, int]]:
    # Only the first recovery of a data dir reports (it fills the mem tables); a WAL
    # restart rescans the same files for their ranges and says nothing again.
    report = mem_tables is not None
    if _is_unwritten(data):
        log.debug("WAL file %s was never written (%d bytes); removed", path, len(data))
        return {}
    try:
        res = fmt.scan(path, data)
    except CorruptFile as exc:
        if report:
            log.error("WAL file unusable, skipped: %s", exc)
            mem_tables.recovery_damage.append(exc)
        return {}
    regions = sorted(res.damage, key=lambda d: d.offset)
    # per damaged region: uid -> [first index dropped, records dropped]
    dropped: list[dict[str, list[int]]] = [{} for _ in regions]
    ranges: dict[str, list[int]] = {}
    di = 0
    for rec in res.records:
        while di < len(regions) and regions[di].offset < rec.offset:
            if mem_tables is not None and not regions[di].torn_tail:
                _lost_in_region(mem_tables, regions[di])
            di += 1
        hi = rec.first_index + len(rec.entries) - 1
        if mem_tables is not None:
            st = mem_tables.store(rec.uid)
            if st is None:
                st = mem_tables.add_store(ServerStore(rec.uid, None))  # type: ignore[arg-type]
            mem = st.mem
            st.from_wal = True
            if rec.truncate:
                if rec.entries:
                    mem.write(rec.entries)
                elif len(mem) and mem.first <= rec.first_index <= mem.last + 1:
                    del mem.entries[rec.first_index - mem.first:]
                else:
                    mem.reset(rec.first_index)
            elif len(mem) == 0 or rec.first_index == mem.last + 1:
                # an empty table accepts any start; ServerLog checks it joins its segments
                if rec.entries:
                    mem.write(rec.entries)
            else:  # a hole before it (the damaged region held some): dropped, told per region
                where = dropped[di - 1] if di else _no_region(path, dropped, regions)
                d = where.setdefault(rec.uid, [mem.last + 1, 0])
                d[1] += 1
                _lost(st, mem.last + 1)
                continue
        r = ranges.get(rec.uid)
        if r is None:
            ranges[rec.uid] = [rec.first_index, hi]
        else:
            r[0] = min(r[0], rec.first_index)
            r[1] = max(r[1], hi)
    if report:
        for d, lost in zip(regions, dropped):
            _report_region(d, lost, mem_tables)
        if len(dropped) > len(regions):  # holes with no damaged region before them
            _report_region(None, dropped[-1], mem_tables, path)
    return {k: (v[0], v[1]) for k, v in ranges.items()}


def _lost(st: ServerStore, index: int) -> None:
    if st.wal_lost_from is None or index < st.wal_lost_from:
        st.wal_lost_from = index


def _lost_in_region(mem_tables: MemTables, d: fmt.Damage) -> None:
    """A damaged region (not a torn tail: that was never synced, so never acknowledged)
    may have held entries of the server its header names (unverified): from what that
    server has so far, its entries may be lost.  A wrong name only costs that server
    its vote until it has caught up."""
    st = mem_tables.store(d.uid_hint) if d.uid_hint else None
    if st is not None and len(st.mem):
        _lost(st, st.mem.last + 1)


def _no_region(path: str, dropped: list[dict[str, list[int]]], regions: list[fmt.Damage]) -> dict[str, list[int]]:
    """Records that do not follow with no damage before them in this file (an earlier
    WAL file lost): collected apart, reported once for the file."""
    if len(dropped) == len(regions):
        dropped.append({})
    return dropped[-1]


def _report_region(d: fmt.Damage | None, lost: dict[str, list[int]], mem_tables: MemTables,
                   path: str = "") -> None:
    """One line for one damaged region (or for a file's records that do not connect),
    naming what was dropped because of it."""
    what = "; ".join(f"server {uid}: {n} later record(s) from index {first} dropped (they do not follow)"
                     for uid, (first, n) in sorted(lost.items()))
    if d is None:
        exc = CorruptFile(path, None, what)
        log.error("WAL %s: %s", path, what)
    else:
        exc = CorruptFile(d.path, d.offset, f"server {d.uid_hint}: {d.detail}" + (f"; {what}" if what else ""))
        log.log(logging.WARNING if d.torn_tail else logging.ERROR, "WAL damage in %s at offset %d "
                "(server %s): %s%s", d.path, d.offset, d.uid_hint, d.detail, f"; {what}" if what else "")
    mem_tables.recovery_damage.append(exc)
