"""WAL recovery: scan WAL files and rebuild the mem tables (RA ``ra_log_wal`` recovery).

A torn tail is dropped and reported (warning).  Mid-file damage is reported
(error, and a :class:`~raft_otp.errors.CorruptFile` in
``MemTables.recovery_damage`` naming file, offset and the unverified uid),
every record that verifies is kept, and a server's later records are kept only
if they connect to what it already has: the damaged region may have held some
of its entries, and a Raft log cannot have holes.  (RA refuses to boot on such
damage, issue #299; we keep what is provably intact.)
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


def _recover_image(path: str, data: bytes, mem_tables: MemTables | None) -> dict[str, tuple[int, int]]:
    try:
        res = fmt.scan(path, data)
    except CorruptFile as exc:
        log.error("WAL file unusable, skipped: %s", exc)
        if mem_tables is not None:
            mem_tables.recovery_damage.append(exc)
        return {}
    damaged_at = {d.offset: d for d in res.damage if not d.torn_tail}
    for d in res.damage:
        lvl = logging.WARNING if d.torn_tail else logging.ERROR
        log.log(lvl, "WAL damage in %s at offset %d (server %s): %s", d.path, d.offset, d.uid_hint, d.detail)
        if mem_tables is not None:
            mem_tables.recovery_damage.append(
                CorruptFile(d.path, d.offset, f"server {d.uid_hint}: {d.detail}"))
    ranges: dict[str, list[int]] = {}
    after_damage = False
    damage_offsets = sorted(damaged_at)
    di = 0
    for rec in res.records:
        while di < len(damage_offsets) and damage_offsets[di] < rec.offset:
            after_damage = True
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
            else:
                log.error("WAL %s offset %d: records of %s at index %d do not follow %d; dropped%s",
                          path, rec.offset, rec.uid, rec.first_index, mem.last,
                          " (after damaged region)" if after_damage else "")
                mem_tables.recovery_damage.append(CorruptFile(
                    path, rec.offset, f"server {rec.uid}: gap before index {rec.first_index}; dropped"))
                continue
        r = ranges.get(rec.uid)
        if r is None:
            ranges[rec.uid] = [rec.first_index, hi]
        else:
            r[0] = min(r[0], rec.first_index)
            r[1] = max(r[1], hi)
    return {k: (v[0], v[1]) for k, v in ranges.items()}
