"""Goal: the lock machine never grants a lease twice: unit tests on ``apply`` (leases on the
entry time, fencing tokens, refusals, malformed commands raise), its clients on one local
member, and 3 node processes across a leadership transfer, after an idle period, under 50
contending asyncio clients, and with malformed commands (a MachineError, nothing changed)."""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

import raft_otp
import raft_otp.aio
from raft_otp import ServerId
from raft_otp.core.machine import ApplyMeta, ReleaseCursor
from raft_otp.errors import BadArgument, ConfigError, MachineError, Timeout
from raft_otp.machines import Lock
from raft_otp.machines.lock import locks, record
from raft_otp.machines.lock_client import AsyncLockClient, Held, Lease, LockClient
from raft_otp.system.harness import NodeProcs, running_nodes

LOCK_SPEC = ("raft_otp.machines.lock:Lock", {})
LOCKS_QUERY = "raft_otp.machines.lock:locks"
T0 = 1_700_000_000_000  # an entry time (ms since the epoch)


def meta(index: int, time_ms: int) -> ApplyMeta:
    return ApplyMeta(index, 1, 0, time_ms)


class Driver:
    """Applies commands to one Lock machine with increasing indexes."""

    def __init__(self, config: Any = None) -> None:
        self.machine = Lock(config)
        self.state = self.machine.init(config)
        self.index = 0
        self.effects: list[Any] = []

    def __call__(self, time_ms: int, *command: Any) -> Any:
        self.index += 1
        result = self.machine.apply(meta(self.index, time_ms), list(command), self.state)
        self.state = result[0]
        self.effects.extend(result[2] if len(result) == 3 else [])
        return result[1]


# ---- apply, called directly ------------------------------------------------------------

def test_grant_then_refuse_while_held() -> None:
    d = Driver()
    assert d(T0, "acquire", "db", "A", 1000) == ["granted", 1, T0 + 1000]
    assert d(T0 + 10, "acquire", "db", "B", 1000) == ["held", "A", 1, T0 + 1000]
    assert d(T0 + 20, "holder", "db") == ["held", "A", 1, T0 + 1000]
    assert d(T0 + 30, "acquire", "other", "B", 500) == ["granted", 4, T0 + 530]  # independent
    assert d.state == {"db": ["A", 1, T0 + 1000], "other": ["B", 4, T0 + 530]}


def test_expiry_is_exactly_the_lease_on_the_entry_time() -> None:
    d = Driver()
    assert d(T0, "acquire", "db", "A", 1000) == ["granted", 1, T0 + 1000]
    assert d(T0 + 999, "acquire", "db", "B", 1000) == ["held", "A", 1, T0 + 1000]
    assert d(T0 + 999, "renew", "db", "B", 1000) == ["held", "A", 1, T0 + 1000]
    assert d(T0 + 1000, "holder", "db") == ["free"]  # [grant, grant + lease): free at the boundary
    assert d.state == {}  # dropped lazily, by the command that found it expired
    assert d(T0 + 1000, "acquire", "db", "B", 1000) == ["granted", 5, T0 + 2000]
    assert d(T0 + 1000, "renew", "db", "A", 1000) == ["held", "B", 5, T0 + 2000]


def test_release_only_by_the_holder_and_its_token() -> None:
    d = Driver()
    assert d(T0, "acquire", "db", "A", 1000) == ["granted", 1, T0 + 1000]
    assert d(T0 + 1, "release", "db", "B") == ["held", "A", 1, T0 + 1000]
    assert d(T0 + 2, "release", "db", "A", 99) == ["held", "A", 1, T0 + 1000]  # not this grant
    assert d.state == {"db": ["A", 1, T0 + 1000]}
    assert d(T0 + 3, "release", "db", "A", 1) == ["released", 1, T0 + 3]
    assert d(T0 + 4, "release", "db", "A", 1) == ["free"]
    assert d(T0 + 5, "acquire", "db", "B", 1000) == ["granted", 6, T0 + 1005]
    assert d(T0 + 6, "release", "db", "B") == ["released", 6, T0 + 6]  # no token: B's grant
    assert d(T0 + 7, "acquire", "db", "C", 10) == ["granted", 8, T0 + 17]
    assert d(T0 + 17, "release", "db", "C", 8) == ["free"]  # ran out first


def test_renew_and_reacquire_by_the_holder_keep_the_token() -> None:
    d = Driver()
    assert d(T0, "acquire", "db", "A", 1000) == ["granted", 1, T0 + 1000]
    assert d(T0 + 900, "renew", "db", "A", 1000, 1) == ["renewed", 1, T0 + 1900]
    assert d(T0 + 1500, "acquire", "db", "B", 1000) == ["held", "A", 1, T0 + 1900]
    assert d(T0 + 1800, "acquire", "db", "A", 300) == ["granted", 1, T0 + 2100]  # a retried acquire
    assert d(T0 + 1900, "renew", "db", "A", 1000, 2) == ["held", "A", 1, T0 + 2100]  # wrong token
    assert d(T0 + 2100, "renew", "db", "A", 1000) == ["free"]  # too late: acquire again
    assert d(T0 + 2100, "acquire", "db", "A", 1000) == ["granted", 7, T0 + 3100]  # a new grant


@pytest.mark.parametrize("seed", [1717, 2, 3])
def test_fencing_tokens_increase_and_no_lease_overlaps_random_schedule(seed: int) -> None:
    """Random commands on two names; at every release cursor the machine goes on from
    its snapshot, encoded and decoded (as a member restarted from it would)."""
    rng = random.Random(seed)
    d = Driver({"release_cursor_every": 50})
    now = T0
    last_token = 0
    grants: dict[str, tuple[int, int]] = {}  # name -> (token, end of the lease as last extended)
    for _ in range(5000):
        now += rng.choice((0, 0, 1, 7, 50, 200))
        name, owner = rng.choice("xy"), rng.choice("ABCD")
        op = rng.choice(("acquire", "acquire", "renew", "release", "holder"))
        lease = rng.randint(1, 400)
        if op == "holder":
            reply = d(now, "holder", name)
        elif op == "release":
            token = [grants[name][0]] if name in grants and rng.random() < .5 else []
            reply = d(now, "release", name, owner, *token)
        else:
            reply = d(now, op, name, owner, lease)
        if reply[0] == "granted" and reply[1] != grants.get(name, (None,))[0]:  # a new grant
            assert reply[1] > last_token
            assert name not in grants or grants[name][1] <= now, (name, grants[name], now)
            last_token = reply[1]
        if reply[0] in ("granted", "renewed"):
            grants[name] = (reply[1], reply[2])
        elif reply[0] == "released":
            grants[name] = (reply[1], now)
        elif reply[0] == "held":
            assert grants[name][0] == reply[2] and grants[name][1] == reply[3] > now
        if d.effects and d.effects[-1].index == d.index:
            d.state = d.machine.snapshot_decode(d.machine.snapshot_encode(d.effects[-1].state))
    assert last_token > 100
    cursors = [e for e in d.effects if isinstance(e, ReleaseCursor)]
    assert len(cursors) == 100 and all(c.index % 50 == 0 for c in cursors)


@pytest.mark.parametrize("command", [
    [], "acquire", {"op": "acquire"}, None, ["frobnicate", "db"], [7, "db"],
    ["acquire"], ["acquire", "db", "A"], ["acquire", "db", "A", 100, "extra"],
    ["acquire", 1, "A", 100], ["acquire", "", "A", 100], ["acquire", "x" * 257, "A", 100],
    ["acquire", "db", "", 100], ["acquire", "db", None, 100], ["acquire", "db", b"A", 100],
    ["acquire", "db", "A", 0], ["acquire", "db", "A", -5], ["acquire", "db", "A", 1.5],
    ["acquire", "db", "A", True], ["acquire", "db", "A", "100"], ["acquire", "db", "A", 3_600_001],
    ["renew", "db", "A"], ["renew", "db", "A", 100, "1"], ["renew", "db", "A", 0, 1],
    ["release", "db"], ["release", "db", "A", 1.0], ["release", "db", "A", False],
    ["holder"], ["holder", "db", "A"], ["holder", 5],
])
def test_malformed_commands_raise_and_leave_the_state_alone(command: Any) -> None:
    machine = Lock()
    state = {"db": ["A", 1, T0 + 1000], "old": ["B", 2, T0 - 1]}
    before = locks(state)
    with pytest.raises(BadArgument, match="^lock: "):
        machine.apply(meta(10, T0 + 5), command, state)
    assert state == before  # the expired "old" was not dropped either: nothing ran


def test_lease_bounds_follow_the_config() -> None:
    d = Driver({"max_lease_ms": 5000})
    assert d(T0, "acquire", "db", "A", 5000)[0] == "granted"
    with pytest.raises(BadArgument, match=r"1\.\.5000"):
        d(T0, "renew", "db", "A", 5001)
    for bad in ({"max_lease_ms": 0}, {"max_locks": "9"}, {"leases": 1}, ["max_locks", 1],
                {"release_cursor_every": -1}):
        with pytest.raises(ConfigError):
            Lock(bad)


def test_a_full_table_refuses_after_dropping_expired_locks() -> None:
    d = Driver({"max_locks": 2})
    assert d(T0, "acquire", "a", "A", 100)[0] == "granted"
    assert d(T0, "acquire", "b", "A", 50)[0] == "granted"
    assert d(T0 + 10, "acquire", "c", "A", 100) == ["full", 2]
    assert d(T0 + 50, "acquire", "c", "A", 100)[0] == "granted"  # "b" expired: swept to make room
    assert sorted(d.state) == ["a", "c"]


def test_release_cursor_state_is_a_swept_copy_that_round_trips() -> None:
    d = Driver({"release_cursor_every": 4})
    d(T0, "acquire", "short", "A", 10)
    d(T0, "acquire", "long", "B", 10_000)
    d(T0 + 5, "acquire", "mid", "C", 100)
    d(T0 + 20, "holder", "long")  # index 4: a cursor; "short" has expired by now
    (cursor,) = d.effects
    assert cursor.index == 4
    assert cursor.state == {"long": ["B", 2, T0 + 10_000], "mid": ["C", 3, T0 + 105]}
    d(T0 + 30, "release", "long", "B")
    d(T0 + 30, "acquire", "new", "D", 10)
    assert "long" in cursor.state and "new" not in cursor.state  # later commands do not reach it
    machine = Lock()
    restored = machine.snapshot_decode(machine.snapshot_encode(cursor.state))
    assert restored == cursor.state
    reply = machine.apply(meta(7, T0 + 40), ["acquire", "long", "E", 10], restored)[1]
    assert reply == ["held", "B", 2, T0 + 10_000]
    assert record(restored, "mid") == ["C", 3, T0 + 105] and record(restored, "none") is None


# ---- the clients, on one local member ----------------------------------------------------

@pytest.fixture
def local_lock(system: raft_otp.System) -> ServerId:
    sid = ServerId("lock_" + system.name, raft_otp.node_name())
    assert raft_otp.start_cluster(system, "locks", (Lock, None), [sid])[0] == [sid]
    return sid


def test_blocking_client(local_lock: ServerId) -> None:
    c = LockClient(local_lock, timeout=5)
    first = c.try_acquire("job", 5, owner="A")
    assert isinstance(first, Lease) and first.owner == "A" and 0 < first.remaining_s() <= 5
    assert c.try_acquire("job", 5, owner="B") == Held("job", "A", first.token, first.expires_ms)
    assert c.holder("job") == Held("job", "A", first.token, first.expires_ms)
    renewed = c.renew(first, 8)
    assert renewed is not None and renewed.token == first.token
    assert renewed.expires_ms > first.expires_ms
    assert c.release(renewed) and c.holder("job") is None and not c.release(renewed)
    with c.hold("job", 5) as short:  # a fresh owner each time
        assert c.try_acquire("job", 1) == Held("job", short.owner, short.token, short.expires_ms)
    assert c.holder("job") is None  # released on exit
    lapsing = c.try_acquire("job", 0.3)
    assert isinstance(lapsing, Lease)
    waited = c.acquire("job", 1, wait_s=5)  # waits out the lease, polling
    assert time.monotonic() >= lapsing.deadline - 0.005 and waited.token > lapsing.token
    assert c.renew(lapsing) is None
    with pytest.raises(Timeout, match="held by"):
        c.acquire("job", 1, wait_s=0.1)
    for bad in ({"lease_s": 0}, {"lease_s": float("nan")}, {"lease_s": True}, {"name": ""}):
        with pytest.raises(BadArgument):
            c.try_acquire(**{"name": "job", "lease_s": 1.0, **bad})


def test_asyncio_client(local_lock: ServerId) -> None:
    async def main() -> None:
        c = AsyncLockClient(local_lock, timeout=5)
        async with c.hold("job", 5) as lease:
            other = await c.try_acquire("job", 1)
            assert isinstance(other, Held) and other.token == lease.token
            assert await c.holder("job") == other
            renewed = await c.renew(lease, 6)
            assert renewed is not None and renewed.token == lease.token
        assert await c.holder("job") is None  # released on exit
        leases = await asyncio.gather(*(c.acquire("q", 0.05, wait_s=10) for _ in range(5)))
        assert len({x.token for x in leases}) == 5  # each waited for the one before to run out
    asyncio.run(main())


# ---- 3 node processes ----------------------------------------------------------------------

TOL_S = 0.05  # clock reading slack between the test and the nodes (one host, one clock)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcs]:
    with running_nodes(str(tmp_path_factory.mktemp("locks")), 3) as h:
        yield h


def _start(nodes: NodeProcs, cluster: str) -> tuple[list[ServerId], ServerId]:
    ids = [nodes[i].sid(cluster) for i in range(3)]
    _started, not_started = raft_otp.start_cluster("default", cluster, LOCK_SPEC, ids, timeout=20)
    assert not_started == []
    reply, leader = raft_otp.process_command(ids[0], ["holder", "warmup"], timeout=10)
    assert reply == ["free"]
    return ids, leader


def _assert_members_agree(ids: list[ServerId]) -> dict[str, Any]:
    """Every member, once it has applied what the leader has, holds the same lock state."""
    _reply, leader = raft_otp.process_command(ids[0], ["holder", "settle"], timeout=10)
    applied = raft_otp.member_overview(leader, timeout=5)["last_applied"]
    states = [raft_otp.local_query(sid, LOCKS_QUERY, timeout=10, min_index=applied)[0]
              for sid in ids]
    assert states[0] == states[1] == states[2], states
    return states[0]


def _wait_leader(ids: list[ServerId], want: ServerId, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while raft_otp.members(want, timeout=5)[1] != want:
        assert time.monotonic() < deadline, f"{want} did not become leader"
        time.sleep(0.01)


def _poll_until_granted(c: LockClient, name: str, lease_s: float, owner: str, give_up: float
                        ) -> tuple[Lease, float]:
    """``owner`` asks again and again; the lease and when its answer arrived (monotonic)."""
    while True:
        got = c.try_acquire(name, lease_s, owner=owner)
        if isinstance(got, Lease):
            return got, time.monotonic()
        assert time.monotonic() < give_up, f"never granted to {owner}"
        time.sleep(0.01)


def _first_grant(a: LockClient, lease_s: float) -> tuple[float, Lease]:
    """A takes "res"; when it sent the request (monotonic) and its lease, whose entry
    time must be the wall clock of the call (not a stale tick time)."""
    sent, before_ms = time.monotonic(), time.time() * 1000
    lease = a.try_acquire("res", lease_s, owner="A")
    after_ms = time.time() * 1000
    assert isinstance(lease, Lease)
    assert before_ms - 1000 * TOL_S <= lease.granted_ms <= after_ms + 1000 * TOL_S, \
        (before_ms, lease, after_ms)
    return sent, lease


def _assert_second_grant_waited(a: Lease, a_sent: float, b: Lease, b_got: float,
                                lease_s: float) -> None:
    assert b_got >= a_sent + lease_s - TOL_S, (b_got - a_sent, a, b)  # wall clock: A's lease ran
    assert b.granted_ms >= a.expires_ms, (a, b)  # entry time: after A's expiry
    assert b.token > a.token


@pytest.mark.processes
def test_no_second_grant_across_a_leadership_transfer(nodes: NodeProcs) -> None:
    ids, leader = _start(nodes, "lock_transfer")
    lease_s = 3.0
    a, b = LockClient(leader, timeout=10), LockClient(ids[0], timeout=10)
    a_sent, lease_a = _first_grant(a, lease_s)
    assert b.try_acquire("res", lease_s, owner="B") == \
        Held("res", "A", lease_a.token, lease_a.expires_ms)
    target = next(sid for sid in ids if sid != leader)
    with ThreadPoolExecutor(1) as pool:  # B keeps asking while leadership moves
        b_polling = pool.submit(_poll_until_granted, b, "res", lease_s, "B", a_sent + lease_s + 15)
        assert raft_otp.transfer_leadership(leader, target, timeout=10) == "ok"
        _wait_leader(ids, target)
        moved = time.monotonic()
        lease_b, b_got = b_polling.result(timeout=30)
    assert moved < b_got  # B was granted after leadership moved, by the new leader:
    assert raft_otp.members(ids[0], timeout=5)[1] == target
    _assert_second_grant_waited(lease_a, a_sent, lease_b, b_got, lease_s)
    state = _assert_members_agree(ids)
    assert state["res"] == ["B", lease_b.token, lease_b.expires_ms]


@pytest.mark.processes
def test_no_early_expiry_after_an_idle_period(nodes: NodeProcs) -> None:
    ids, leader = _start(nodes, "lock_idle")
    lease_s = 2.5
    time.sleep(4.5)  # the scenario: a cluster with nothing to do (ticks only)
    a, b = LockClient(leader, timeout=10), LockClient(ids[1], timeout=10)
    a_sent, lease_a = _first_grant(a, lease_s)
    lease_b, b_got = _poll_until_granted(b, "res", lease_s, "B", a_sent + lease_s + 15)
    _assert_second_grant_waited(lease_a, a_sent, lease_b, b_got, lease_s)
    state = _assert_members_agree(ids)
    assert state["res"] == ["B", lease_b.token, lease_b.expires_ms]


@dataclass
class _Hold:
    owner: str
    token: int
    granted_ms: int
    expires_ms: int
    got: float  # monotonic: the grant's answer arrived
    deadline: float  # monotonic: request sent + lease
    release_sent: float | None = None  # monotonic, if a release was sent and it released
    released_ms: int | None = None  # entry time of that release


@pytest.mark.processes
def test_fifty_asyncio_clients_contending_for_one_lock(nodes: NodeProcs) -> None:
    ids, _leader = _start(nodes, "lock_contend")
    lease_s, run_s, name = 0.3, 4.0, "hot"
    holds: list[_Hold] = []

    async def worker(k: int, stop_at: float) -> None:
        c = AsyncLockClient(ids[k % 3], timeout=10)
        rng = random.Random(k)
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            try:
                lease = await c.acquire(name, lease_s, owner=f"c{k}-{n}",
                                        wait_s=stop_at - time.monotonic())
            except Timeout:
                continue
            hold = _Hold(lease.owner, lease.token, lease.granted_ms, lease.expires_ms,
                         time.monotonic(), lease.deadline)
            holds.append(hold)
            await asyncio.sleep(rng.uniform(0.005, 0.04))  # the work under the lock
            if len(holds) % 7 == 3:
                continue  # this one lets its lease run out
            sent = time.monotonic()
            release = ["release", name, lease.owner, lease.token]  # raw: the reply has its time
            reply, _ = await raft_otp.aio.process_command(c.target, release, 10)
            if reply[0] == "released":
                hold.release_sent, hold.released_ms = sent, reply[2]

    async def main() -> None:
        stop_at = time.monotonic() + run_s
        await asyncio.wait_for(asyncio.gather(*(worker(k, stop_at) for k in range(50))), run_s + 60)

    asyncio.run(main())
    assert len(holds) >= 10, len(holds)
    assert any(h.released_ms is None for h in holds[:-1])  # some leases ran out and were taken over
    by_grant = sorted(holds, key=lambda h: (h.granted_ms, h.token))
    for prev, nxt in zip(by_grant, by_grant[1:]):
        assert nxt.token > prev.token, (prev, nxt)
        end_ms = min(prev.expires_ms, prev.released_ms or prev.expires_ms)
        assert nxt.granted_ms >= end_ms, (prev, nxt)  # no overlap on the entry-time axis
        freed = min(prev.deadline, prev.release_sent or prev.deadline)
        assert nxt.got >= freed - TOL_S, (prev, nxt)  # wall clock: released, or its lease elapsed
    state = _assert_members_agree(ids)
    last = by_grant[-1]
    assert state.get(name) in (None, [last.owner, last.token, last.expires_ms])


@pytest.mark.processes
def test_a_malformed_command_fails_its_caller_and_changes_nothing(nodes: NodeProcs) -> None:
    ids, leader = _start(nodes, "lock_bad")
    c = LockClient(ids[1], timeout=10)
    lease = c.try_acquire("res", 30, owner="A")
    assert isinstance(lease, Lease)
    for bad in (["acquire", "res"], ["acquire", "res", "B", 0], ["renew", "res", "A", 10**9, 1],
                ["release", "res", "A", "1"], ["unlock", "res"]):
        with pytest.raises(MachineError) as info:
            raft_otp.process_command(ids[2], bad, timeout=10)
        assert info.value.type_name == "BadArgument" and info.value.message.startswith("lock: ")
    with pytest.raises(MachineError, match="max_lease_ms"):
        c.try_acquire("other", 10**7)  # over the machine's max_lease_ms, which only it knows
    with pytest.raises(MachineError, match="unknown command"):
        asyncio.run(raft_otp.aio.process_command(leader, ["frobnicate"], 10))
    assert c.holder("res") == Held("res", "A", lease.token, lease.expires_ms)  # still commits
    assert _assert_members_agree(ids) == {"res": ["A", lease.token, lease.expires_ms]}
