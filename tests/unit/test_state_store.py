import json
import multiprocessing
import os
import random
import signal
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from swarmctl.errors import SwarmctlError
from swarmctl.state import SCHEMA_VERSION, StateStore

# fork keeps each child's start-up to milliseconds; every test here runs on Linux.
FORK = multiprocessing.get_context("fork")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def counter(store: StateStore) -> int:
    with store.read() as db:
        return db.table("counters").get(doc_id=1)["counter"]


def read_once(store: StateStore) -> None:
    with store.read():
        pass


def transact_once(store: StateStore) -> None:
    with store.transaction():
        pass


def error_of(action: Callable[[], object]) -> str:
    with pytest.raises(SwarmctlError) as caught:
        action()
    return str(caught.value)


def increment(store: StateStore) -> None:
    with store.transaction() as db:
        table = db.table("counters")
        table.update({"counter": table.get(doc_id=1)["counter"] + 1}, doc_ids=[1])


def increment_times(path: str, times: int) -> None:
    store = StateStore(path)
    for _ in range(times):
        increment(store)


def increment_forever(path: str) -> None:
    store = StateStore(path)
    while True:
        increment(store)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "state" / "prod.json")
    store.create()
    with store.transaction() as db:
        db.table("counters").insert({"counter": 0})
    return store


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value))
    return path


def test_create_writes_a_private_file_with_the_meta_record(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "a" / "b" / "prod.json")
    store.create()
    assert mode_of(store.path) == 0o600
    assert mode_of(tmp_path / "a") == 0o700
    assert mode_of(tmp_path / "a" / "b") == 0o700
    with store.read() as db:
        (meta,) = db.table("meta").all()
    assert meta["app"] == "swarmctl"
    assert meta["schema"] == SCHEMA_VERSION
    assert meta["created_at"].endswith("+00:00")


def test_create_refuses_when_the_state_file_exists(store: StateStore) -> None:
    before = store.path.read_bytes()
    message = error_of(store.create)
    assert message == f"cluster state already exists at {store.path}: refusing to overwrite it"
    assert store.path.read_bytes() == before


def test_a_transaction_commits_its_changes(store: StateStore) -> None:
    with store.transaction() as db:
        db.table("items").insert({"name": "node-1"})
    assert json.loads(store.path.read_text())["items"] == {"1": {"name": "node-1"}}
    assert mode_of(store.path) == 0o600


def test_an_exception_in_a_transaction_writes_nothing(store: StateStore) -> None:
    before = store.path.read_bytes()
    with pytest.raises(ZeroDivisionError), store.transaction() as db:
        db.table("items").insert({"name": "node-1"})
        _ = 1 / 0
    assert store.path.read_bytes() == before


def test_a_transaction_that_changes_nothing_does_not_rewrite_the_file(store: StateStore) -> None:
    inode = store.path.stat().st_ino
    with store.transaction() as db:
        db.table("counters").all()
    assert store.path.stat().st_ino == inode


def test_read_sees_only_committed_data(store: StateStore) -> None:
    with store.transaction() as db:
        db.table("counters").update({"counter": 7}, doc_ids=[1])
        assert counter(store) == 0
    assert counter(store) == 7


def test_changes_made_through_read_are_never_written(store: StateStore) -> None:
    before = store.path.read_bytes()
    with store.read() as db:
        db.table("items").insert({"name": "node-1"})
        db.table("counters").truncate()
    assert store.path.read_bytes() == before


def test_read_of_a_missing_file_says_to_run_init(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "nowhere.json")
    expected = f"no cluster state at {store.path}: run `swarmctl init` first (or pass --state)"
    assert error_of(lambda: read_once(store)) == expected
    assert error_of(lambda: transact_once(store)) == expected
    assert list(tmp_path.iterdir()) == []


def test_two_processes_incrementing_the_same_counter_lose_no_update(store: StateStore) -> None:
    workers = [FORK.Process(target=increment_times, args=(str(store.path), 100)) for _ in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert counter(store) == 200


def test_two_threads_incrementing_the_same_counter_lose_no_update(store: StateStore) -> None:
    threads = [threading.Thread(target=increment_times, args=(str(store.path), 50)) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter(store) == 100


def test_reads_during_writes_always_see_a_whole_committed_file(store: StateStore) -> None:
    writer = FORK.Process(target=increment_forever, args=(str(store.path),))
    writer.start()
    try:
        seen = [0]
        while seen[-1] < 100 and writer.is_alive():
            seen.append(counter(store))
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
    assert seen == sorted(seen)
    assert seen[-1] >= 100


def test_a_writer_killed_at_any_moment_leaves_a_file_that_loads(store: StateStore) -> None:
    rng = random.Random()
    last = 0
    kills = 0
    # 15 kills at least, and on until some writes landed: a loaded machine may start a
    # writer so slowly that 15 short lives commit nothing.
    while kills < 15 or (last == 0 and kills < 200):
        kills += 1
        writer = FORK.Process(target=increment_forever, args=(str(store.path),))
        writer.start()
        time.sleep(rng.uniform(0.005, 0.05))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        now = counter(store)
        assert now >= last
        last = now
    assert last > 0


def test_a_commit_removes_temp_files_left_by_a_killed_writer(store: StateStore) -> None:
    stale = store.path.parent / ".prod.json.tmp-k1ll3d_x"
    stale.write_text("half a state")
    other_cluster = store.path.parent / ".prod.json.tmp-k1ll3d.json.tmp-abc"
    other_cluster.write_text("not ours to remove")
    increment(store)
    assert not stale.exists()
    assert other_cluster.exists()


def test_commits_leave_no_temp_files_behind(store: StateStore) -> None:
    for _ in range(5):
        increment(store)
    names = {p.name for p in store.path.parent.iterdir()} - {"prod.json.lock"}
    assert names == {"prod.json"}


def test_a_corrupt_file_is_reported_with_its_position_and_left_untouched(store: StateStore) -> None:
    store.path.write_bytes(b'{"meta": {"1": {"app": "swarmctl",\n  "schema": 1}')
    before = store.path.read_bytes()
    expected = (
        f"state file {store.path} is corrupt (line 2 column 15: Expecting ',' delimiter): "
        "restore a backup with `swarmctl state restore FILE`"
    )
    assert error_of(lambda: increment(store)) == expected
    assert error_of(lambda: read_once(store)) == expected
    assert store.path.read_bytes() == before


def test_a_table_that_is_not_a_table_of_documents_is_reported_as_corrupt(store: StateStore) -> None:
    state = json.loads(store.path.read_text())
    write_json(store.path, {**state, "nodes": ["node-1"]})
    assert error_of(lambda: increment(store)) == (
        f"state file {store.path} is corrupt (table 'nodes' is not a table of documents): "
        "restore a backup with `swarmctl state restore FILE`"
    )


@pytest.mark.parametrize(
    "content",
    [
        {"_default": {"1": {"counter": 3}}},
        {"meta": {"1": {"app": "other", "schema": 1}}},
        {"meta": {"1": {"app": "swarmctl", "schema": "1"}}},
        [1, 2],
    ],
)
def test_a_json_file_that_is_not_ours_is_refused(tmp_path: Path, content: object) -> None:
    path = write_json(tmp_path / "foreign.json", content)
    assert error_of(lambda: read_once(StateStore(path))) == f"{path} is not a swarmctl state file"


def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = write_json(tmp_path / "new.json", {"meta": {"1": {"app": "swarmctl", "schema": 2}}})
    before = path.read_bytes()
    assert error_of(lambda: transact_once(StateStore(path))) == (
        f"{path} was written by a newer swarmctl (schema 2, this one reads up to 1)"
    )
    assert path.read_bytes() == before


def test_an_unreadable_path_is_reported(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    store = StateStore(tmp_path / "dir.json")
    assert (
        error_of(lambda: read_once(store)) == f"cannot read state file {store.path}: Is a directory"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_file_without_read_permission_is_reported(store: StateStore) -> None:
    store.path.chmod(0o000)
    message = error_of(lambda: read_once(store))
    assert message == f"cannot read state file {store.path}: Permission denied"


def test_a_lock_held_past_the_timeout_is_reported_as_busy(store: StateStore) -> None:
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            holding.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    try:
        impatient = StateStore(store.path, lock_timeout=0.1)
        assert error_of(lambda: increment(impatient)) == (
            f"state file {store.path} is busy: "
            "another swarmctl has held its lock for more than 0.1 s"
        )
    finally:
        done.set()
        holder.join()


def test_a_nested_transaction_in_one_thread_raises_instead_of_deadlocking(
    store: StateStore,
) -> None:
    with store.transaction():
        with pytest.raises(RuntimeError, match="nested transaction"), store.transaction():
            pass
        with pytest.raises(RuntimeError, match="nested transaction"):
            StateStore(str(store.path.parent / ".." / "state" / "prod.json")).backup(store.path)
    increment(store)
    assert counter(store) == 1


def test_a_backup_then_restore_brings_the_state_back(store: StateStore, tmp_path: Path) -> None:
    increment(store)
    backup = store.backup(tmp_path / "saved.json")
    assert mode_of(backup) == 0o600
    increment(store)
    store.restore(backup)
    assert counter(store) == 1
    before = StateStore(f"{store.path}.before-restore")
    assert counter(before) == 2


def test_a_backup_into_a_directory_gets_a_stamped_name(store: StateStore, tmp_path: Path) -> None:
    first = store.backup(tmp_path)
    second = store.backup(tmp_path)
    assert first.parent == tmp_path
    assert first.name.startswith("prod-") and first.suffix == ".json"
    assert second != first
    assert first.read_bytes() == second.read_bytes() == store.path.read_bytes()


@pytest.mark.parametrize(
    "content",
    [
        b'{"meta": ',
        b'{"_default": {}}',
        b'{"meta": {"1": {"app": "swarmctl", "schema": 99}}}',
    ],
)
def test_restore_refuses_a_bad_file_and_keeps_the_current_state(
    store: StateStore, tmp_path: Path, content: bytes
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    before = store.path.read_bytes()
    assert str(bad) in error_of(lambda: store.restore(bad))
    assert store.path.read_bytes() == before
    assert not Path(f"{store.path}.before-restore").exists()


def test_restore_repairs_a_corrupt_state_and_keeps_the_corrupt_bytes(
    store: StateStore, tmp_path: Path
) -> None:
    backup = store.backup(tmp_path / "saved.json")
    store.path.write_bytes(b"\x00\x00garbage")
    store.restore(backup)
    assert counter(store) == 0
    assert Path(f"{store.path}.before-restore").read_bytes() == b"\x00\x00garbage"


def test_restore_recreates_a_lost_state_file(store: StateStore, tmp_path: Path) -> None:
    backup = store.backup(tmp_path / "saved.json")
    fresh = StateStore(tmp_path / "new-control-node" / "prod.json")
    fresh.restore(backup)
    assert counter(fresh) == 0
    assert mode_of(fresh.path) == 0o600
