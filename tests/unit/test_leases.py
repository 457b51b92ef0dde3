"""Leases in a TinyDB held in memory, with times given by the test; then two processes
racing for the same leases through a real state file's transactions.
"""

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from tinydb import TinyDB
from tinydb.storages import MemoryStorage

from swarmctl.state import StateStore, leases
from swarmctl.state.leases import Lease

# fork keeps each child's start-up to milliseconds; every test here runs on Linux.
FORK = multiprocessing.get_context("fork")
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TTL = 10.0


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def expiry(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


@pytest.fixture
def db() -> Iterator[TinyDB]:
    database = TinyDB(storage=MemoryStorage)
    yield database
    database.close()


def test_taking_a_free_lease_succeeds(db: TinyDB) -> None:
    assert leases.take(db, "supervisor", "me", TTL, NOW) is None


def test_a_taken_lease_stores_its_holder_expiry_and_note(db: TinyDB) -> None:
    leases.take(db, "supervisor", "me", TTL, NOW, note="last tick 12:00")

    assert leases.get(db, "supervisor") == Lease(
        "supervisor", "me", expiry(later(TTL)), "last tick 12:00"
    )


def test_a_lease_nobody_took_is_none(db: TinyDB) -> None:
    assert leases.get(db, "supervisor") is None


def test_a_second_holder_is_refused_while_the_lease_is_unexpired(db: TinyDB) -> None:
    leases.take(db, "supervisor", "first", TTL, NOW, note="busy")

    held = leases.take(db, "supervisor", "second", TTL, later(TTL - 0.001))

    assert held == Lease("supervisor", "first", expiry(later(TTL)), "busy")
    assert leases.get(db, "supervisor") == held


def test_after_expiry_a_second_holder_takes_the_lease_over(db: TinyDB) -> None:
    leases.take(db, "supervisor", "first", TTL, NOW)

    assert leases.take(db, "supervisor", "second", TTL, later(TTL + 1)) is None
    assert leases.get(db, "supervisor") == Lease("supervisor", "second", expiry(later(2 * TTL + 1)))


def test_the_holder_renews_its_own_unexpired_lease(db: TinyDB) -> None:
    leases.take(db, "supervisor", "me", TTL, NOW, note="first tick")

    assert leases.take(db, "supervisor", "me", TTL, later(5), note="second tick") is None
    assert leases.get(db, "supervisor") == Lease(
        "supervisor", "me", expiry(later(5 + TTL)), "second tick"
    )


def test_renewing_keeps_one_record_per_lease(db: TinyDB) -> None:
    for tick in range(3):
        leases.take(db, "supervisor", "me", TTL, later(tick))

    assert len(db.table("leases")) == 1


def test_leases_of_different_names_are_independent(db: TinyDB) -> None:
    leases.take(db, leases.service_lease("web"), "cli", TTL, NOW)

    assert leases.take(db, leases.service_lease("db"), "supervisor", TTL, NOW) is None


def test_releasing_by_the_holder_frees_the_lease(db: TinyDB) -> None:
    leases.take(db, "supervisor", "first", TTL, NOW)

    leases.release(db, "supervisor", "first")

    assert leases.get(db, "supervisor") is None
    assert leases.take(db, "supervisor", "second", TTL, NOW) is None


def test_releasing_by_someone_else_does_nothing(db: TinyDB) -> None:
    leases.take(db, "supervisor", "first", TTL, NOW)
    before = leases.get(db, "supervisor")

    leases.release(db, "supervisor", "second")

    assert leases.get(db, "supervisor") == before


def test_holder_identities_differ_within_one_process() -> None:
    assert leases.me() != leases.me()


# ------------------------------------------------------------ racing processes

ROUNDS = 50


def race(path: str, holder: str, start: Barrier, won: Queue) -> None:
    """Take lease "round-N" for N = 0.., each round starting with the other racer's."""
    store = StateStore(path)
    mine = []
    for round in range(ROUNDS):
        start.wait(timeout=20)
        with store.transaction() as db:
            if leases.take(db, f"round-{round}", holder, 60.0, datetime.now(UTC)) is None:
                mine.append(round)
    won.put((holder, mine))


def test_two_processes_racing_for_a_lease_never_both_win(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.create()
    start, won = FORK.Barrier(2), FORK.Queue()
    racers = [
        FORK.Process(target=race, args=(str(store.path), holder, start, won))
        for holder in ("one", "two")
    ]
    for racer in racers:
        racer.start()
    results = dict(won.get(timeout=60) for _ in racers)
    for racer in racers:
        racer.join(timeout=10)

    assert [r.exitcode for r in racers] == [0, 0]
    assert sorted(results["one"] + results["two"]) == list(range(ROUNDS))
    with store.read() as db:
        for round in range(ROUNDS):
            winner = "one" if round in results["one"] else "two"
            assert leases.get(db, f"round-{round}").holder == winner
