"""The events log: events made from task and node records with a frozen clock, their
swarm-daemon-log lines as exact text, and the JSON-lines file written, read, filtered
and followed in a temp directory.
"""

import json
import os
import stat
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from swarmctl import clock
from swarmctl.models import Node, NodeState, Role, Task, TaskState
from swarmctl.state import events
from swarmctl.state.events import Event

STAMP = "2024-05-01T12:00:00.000+00:00"  # what the frozen clock says
SERVICES = {"svc-id": "nginx"}
NODES = {"node-id": "worker1"}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: STAMP)


def task(id: str, state: TaskState, **fields: object) -> Task:
    return Task(
        id=id,
        service_id="svc-id",
        slot=1,
        created_at="2024-05-01T11:00:00.000+00:00",
        node_id="node-id",
        state=state,
        **fields,  # type: ignore[arg-type]
    )


def task_event(id: str = "t1", service: str = "nginx", at: str = STAMP, **fields: str) -> Event:
    fields.setdefault("transition", "RUNNING->FAILED")
    return Event(at, "task", id, service=service, node="worker1", **fields)  # type: ignore[misc]


def node(state: NodeState, message: str = "") -> Node:
    return Node(
        id="node-id",
        hostname="worker1",
        role=Role.WORKER,
        address="192.168.56.11",
        created_at=STAMP,
        updated_at=STAMP,
        state=state,
        message=message,
    )


# ---------------------------------------------------------------- task_changes


def test_a_task_whose_state_moved_gives_one_event_with_names_resolved() -> None:
    before = {"t1": task("t1", TaskState.RUNNING)}
    after = [task("t1", TaskState.FAILED, error="task: non-zero exit (137)")]

    assert events.task_changes(before, after, SERVICES, NODES) == [
        Event(
            STAMP,
            "task",
            "t1",
            "RUNNING->FAILED",
            service="nginx",
            node="worker1",
            message="task: non-zero exit (137)",
            desired="RUNNING",
        )
    ]


def test_a_task_whose_state_did_not_move_gives_no_event() -> None:
    before = {"t1": task("t1", TaskState.RUNNING)}
    after = [task("t1", TaskState.RUNNING, message="something else changed")]

    assert events.task_changes(before, after, SERVICES, NODES) == []


def test_a_task_with_no_previous_record_moves_from_new_through_pending() -> None:
    found = events.task_changes({}, [task("t2", TaskState.ASSIGNED)], SERVICES, NODES)

    assert [e.transition for e in found] == ["NEW->PENDING", "PENDING->ASSIGNED"]


def test_a_new_task_still_in_state_new_gives_no_event() -> None:
    assert events.task_changes({}, [task("t2", TaskState.NEW)], SERVICES, NODES) == []


def test_an_assigned_task_seen_running_gives_every_step_swarms_agent_logs() -> None:
    before = {"t1": task("t1", TaskState.ASSIGNED)}
    started = task(
        "t1",
        TaskState.RUNNING,
        timestamps={
            "starting": "2024-05-01T11:59:58.000+00:00",
            "running": "2024-05-01T11:59:59.000+00:00",
        },
    )

    found = events.task_changes(before, [started], SERVICES, NODES)

    assert [(e.transition, e.time, e.desired) for e in found] == [
        ("ASSIGNED->ACCEPTED", "2024-05-01T11:59:58.000+00:00", "RUNNING"),
        ("ACCEPTED->PREPARING", "2024-05-01T11:59:58.000+00:00", "RUNNING"),
        ("PREPARING->STARTING", "2024-05-01T11:59:58.000+00:00", "RUNNING"),
        ("STARTING->RUNNING", "2024-05-01T11:59:59.000+00:00", "RUNNING"),
    ]


def test_a_killed_task_shut_down_by_the_orchestrator_says_so_in_state_desired() -> None:
    before = {"t1": task("t1", TaskState.RUNNING)}
    failed = task("t1", TaskState.FAILED, desired_state=TaskState.SHUTDOWN, error="gone")

    [event] = events.task_changes(before, [failed], SERVICES, NODES)

    assert (event.transition, event.desired, event.message) == (
        "RUNNING->FAILED",
        "SHUTDOWN",
        "gone",
    )
    assert 'state.desired=SHUTDOWN state.transition="RUNNING->FAILED"' in event.line()


def test_a_rejected_task_is_rejected_while_preparing_as_swarm_rejects() -> None:
    before = {"t1": task("t1", TaskState.ASSIGNED)}

    found = events.task_changes(before, [task("t1", TaskState.REJECTED)], SERVICES, NODES)

    assert [e.transition for e in found] == [
        "ASSIGNED->ACCEPTED",
        "ACCEPTED->PREPARING",
        "PREPARING->REJECTED",
    ]


def test_a_task_never_started_is_shut_down_from_where_it_was() -> None:
    before = {"t1": task("t1", TaskState.PENDING)}

    [event] = events.task_changes(before, [task("t1", TaskState.SHUTDOWN)], SERVICES, NODES)

    assert event.transition == "PENDING->SHUTDOWN"


def test_only_the_tasks_that_moved_give_events() -> None:
    before = {t.id: t for t in [task("t1", TaskState.RUNNING), task("t2", TaskState.RUNNING)]}
    after = [task("t1", TaskState.RUNNING), task("t2", TaskState.SHUTDOWN)]

    assert [e.id for e in events.task_changes(before, after, SERVICES, NODES)] == ["t2"]


def test_a_task_of_an_unknown_service_or_node_is_named_by_its_ids() -> None:
    [event, _] = events.task_changes({}, [task("t1", TaskState.ASSIGNED)], {}, {})

    assert (event.service, event.node) == ("svc-id", "node-id")


# ----------------------------------------------------------------- node_change


def test_a_node_change_gives_its_transition_hostname_and_message() -> None:
    down = node(NodeState.DOWN, message="ssh: connection refused")

    assert events.node_change(down, "ready") == Event(
        STAMP,
        "node",
        "node-id",
        "READY->DOWN",
        node="worker1",
        message="ssh: connection refused",
    )


def test_a_node_coming_back_is_down_to_ready() -> None:
    assert events.node_change(node(NodeState.READY), "down").transition == "DOWN->READY"


# ------------------------------------------------------------------- Event.line


def test_a_task_event_line_reads_as_swarms_daemon_log() -> None:
    event = task_event()

    assert event.line() == (
        f'time="{STAMP}" level=info msg="state changed" '
        'state.transition="RUNNING->FAILED" task.id=t1 service=nginx node=worker1'
    )


def test_a_task_event_line_with_an_error_ends_with_it_quoted() -> None:
    event = task_event(message="task: non-zero exit (137)")

    assert event.line() == (
        f'time="{STAMP}" level=info msg="state changed" '
        'state.transition="RUNNING->FAILED" task.id=t1 service=nginx node=worker1 '
        'error="task: non-zero exit (137)"'
    )


def test_a_node_event_line_names_the_node_by_id_and_hostname() -> None:
    event = Event(STAMP, "node", "node-id", "READY->DOWN", node="worker1", message="unreachable")

    assert event.line() == (
        f'time="{STAMP}" level=info msg="state changed" '
        'state.transition="READY->DOWN" node.id=node-id node=worker1 error="unreachable"'
    )


def test_quotes_in_an_error_are_escaped_as_logrus_does() -> None:
    event = task_event(message='exec: "nginxx": executable file not found')

    assert event.line().endswith(r'error="exec: \"nginxx\": executable file not found"')


# ------------------------------------------------------------------ the file


def test_the_events_file_sits_beside_the_state_file() -> None:
    assert events.path_for(Path("/srv/swarm/prod.json")) == Path(
        "/srv/swarm/prod.json.events.jsonl"
    )


def test_appended_events_read_back_equal_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    written = [task_event("t1"), task_event("t2", message="oops")]
    events.append(path, written[:1])
    events.append(path, written[1:])

    assert list(events.read(path)) == written


def test_each_event_is_one_json_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events.append(path, [task_event("t1"), task_event("t2")])

    lines = path.read_text().splitlines()

    assert [json.loads(line) for line in lines] == [
        asdict(task_event("t1")),
        asdict(task_event("t2")),
    ]


def test_the_events_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events.append(path, [task_event()])

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_appending_no_events_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"

    events.append(path, [])

    assert not path.exists()


def test_reading_a_missing_file_gives_no_events(tmp_path: Path) -> None:
    assert list(events.read(tmp_path / "events.jsonl")) == []


def test_reading_by_service_keeps_only_that_services_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    nginx, redis = task_event("t1", "nginx"), task_event("t2", "redis")
    down = Event(STAMP, "node", "node-id", "READY->DOWN", node="worker1")
    events.append(path, [nginx, down, redis])

    assert list(events.read(path, service="redis")) == [redis]


def test_reading_since_a_time_keeps_the_events_at_or_after_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    times = ["2024-05-01T11:59:59.999+00:00", STAMP, "2024-05-01T12:00:00.001+00:00"]
    events.append(path, [task_event(f"t{i}", at=t) for i, t in enumerate(times)])

    assert [e.id for e in events.read(path, since=STAMP)] == ["t1", "t2"]


def test_a_partial_last_line_is_not_read_until_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events.append(path, [task_event("t1")])
    line = json.dumps(asdict(task_event("t2")), separators=(",", ":"))
    with open(path, "a") as handle:
        handle.write(line[:20])

    assert [e.id for e in events.read(path)] == ["t1"]

    with open(path, "a") as handle:
        handle.write(line[20:] + "\n")

    assert [e.id for e in events.read(path)] == ["t1", "t2"]


def collect(path: Path, count: int, timeout: float = 5.0) -> list[Event]:
    """The first `count` events of following `path`, read in a thread; fails after `timeout`."""
    got: list[Event] = []

    def follow() -> None:
        for event in events.read(path, follow=True, poll=0.01):
            got.append(event)
            if len(got) == count:
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    reader.join(timeout)
    assert not reader.is_alive(), f"only {len(got)} of {count} events after {timeout} s"
    return got


def test_following_yields_the_events_another_thread_appends_later(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events.append(path, [task_event("t0")])

    def writer() -> None:
        for i in range(1, 4):
            time.sleep(0.05)
            events.append(path, [task_event(f"t{i}")])

    threading.Thread(target=writer, daemon=True).start()

    assert [e.id for e in collect(path, 4)] == ["t0", "t1", "t2", "t3"]


def test_following_a_file_not_yet_created_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    threading.Timer(0.05, events.append, (path, [task_event("t1")])).start()

    assert [e.id for e in collect(path, 1)] == ["t1"]


def test_following_yields_a_line_written_in_two_pieces_once_and_whole(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line = json.dumps(asdict(task_event("t1", message="split")), separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def writer() -> None:
        os.write(fd, line[:25].encode())
        time.sleep(0.1)  # several polls see only the first piece
        os.write(fd, line[25:].encode())
        os.close(fd)
        events.append(path, [task_event("t2")])

    threading.Thread(target=writer, daemon=True).start()

    assert collect(path, 2) == [task_event("t1", message="split"), task_event("t2")]


def test_an_event_record_survives_a_round_trip_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    full = replace(task_event(), message='ünïcode "quoted" \\ back\\slash')
    events.append(path, [full])

    assert list(events.read(path)) == [full]
