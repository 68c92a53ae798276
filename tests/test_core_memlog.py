"""Goal: MemoryLog honours the Log protocol and models durability: only what the WAL reported written survives a crash."""

from __future__ import annotations

from raft_otp.core.log_api import SnapshotMeta, SnapshotWritten, Written
from raft_otp.core.memlog import MemoryLog


def mk() -> tuple[MemoryLog, list[object]]:
    posted: list[object] = []
    return MemoryLog(posted.append, min_snapshot_interval=2), posted


def e(i: int, t: int) -> tuple[int, int, bytes]:
    return (i, t, b"d%d" % i)


def test_append_is_durable_only_after_the_event() -> None:
    log, posted = mk()
    log.append([e(1, 1), e(2, 1)])
    assert log.last_index_term() == (2, 1) and log.last_written() == (0, 0)
    assert log.handle_event(posted.pop(0)) == [Written(2, 1)]
    assert log.last_written() == (2, 1)


def test_crash_keeps_only_durable_entries() -> None:
    log, posted = mk()
    log.append([e(1, 1)])
    log.handle_event(posted.pop(0))
    log.append([e(2, 1)])
    log.crash()
    assert log.last_index_term() == (1, 1)


def test_overwrite_then_crash_before_sync_restores_the_old_durable_entries() -> None:
    log, posted = mk()
    log.write([e(1, 1), e(2, 1), e(3, 1)])
    log.handle_event(posted.pop(0))
    log.write([e(2, 2)])
    assert log.last_written() == (1, 1)  # the overwrite is not durable yet
    log.crash()
    assert log.last_index_term() == (3, 1)


def test_overwrite_becomes_durable() -> None:
    log, posted = mk()
    log.write([e(1, 1), e(2, 1), e(3, 1)])
    log.write([e(2, 2)])
    for p in list(posted):
        log.handle_event(p)
    assert log.last_written() == (2, 2) and log.fetch(1, 5) == [e(1, 1), e(2, 2)]


def test_release_cursor_snapshot_truncates_after_its_event() -> None:
    log, posted = mk()
    log.append([e(i, 1) for i in range(1, 6)])
    log.handle_event(posted.pop(0))
    meta = SnapshotMeta(4, 1, {}, 0)
    log.update_release_cursor(meta, {"x": 1})
    assert log.first_index() == 1
    assert log.handle_event(posted.pop(0)) == [SnapshotWritten(meta)]
    assert log.first_index() == 5 and log.fetch_term(4) == 1 and log.fetch_term(3) is None
    log.crash()
    assert log.recover_snapshot() == (meta, {"x": 1}) and log.last_index_term() == (5, 1)
    got = log.snapshot_chunks(3)
    assert got is not None and b"".join(got[1]) == log._snapshot[1]  # type: ignore[index]


def test_snapshot_accept_resets_the_log() -> None:
    log, posted = mk()
    log.append([e(1, 1)])
    meta = SnapshotMeta(9, 2, {}, 0)
    log.begin_snapshot_accept(meta)
    import msgpack
    data = msgpack.packb(7)
    log.accept_snapshot_chunk(data[:1])
    log.accept_snapshot_chunk(data[1:])
    assert log.complete_snapshot_accept() == (meta, 7)
    assert log.last_index_term() == (9, 2) and log.first_index() == 10
    log.append([e(10, 2)])
    for p in posted:
        log.handle_event(p)
    assert log.last_written() == (10, 2)
