"""Every task and node state change, kept as JSON lines beside the state file and shown
as swarm's daemon log shows it:

    time="…" level=info msg="state changed" state.desired=RUNNING
    state.transition="RUNNING->FAILED" task.id=… service=nginx node=worker1   (one line)

A task that moved several states between two records (ASSIGNED to RUNNING in one
observation) gets every step of swarm's lifecycle it went through, as swarm's agent logs
them: ASSIGNED->ACCEPTED, ACCEPTED->PREPARING, PREPARING->STARTING, STARTING->RUNNING.

The CLI and the supervisor append after each committed change; `swarmctl events`
reads, filters and follows the file.
"""

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

from swarmctl import clock
from swarmctl.models import Node, Task, TaskState

# The states a task passes on its way to running, in order (swarmkit's task model).
LIFECYCLE = (
    TaskState.NEW,
    TaskState.PENDING,
    TaskState.ASSIGNED,
    TaskState.ACCEPTED,
    TaskState.PREPARING,
    TaskState.STARTING,
    TaskState.RUNNING,
)


@dataclass(frozen=True)
class Event:
    time: str
    type: str  # "task" or "node"
    id: str
    transition: str  # "RUNNING->FAILED"
    service: str = ""
    node: str = ""
    message: str = ""
    desired: str = ""  # the task's desired state, "RUNNING" or "SHUTDOWN"

    def line(self) -> str:
        who = (
            f"task.id={self.id} service={self.service} node={self.node}"
            if self.type == "task"
            else f"node.id={self.id} node={self.node}"
        )
        # Quoted as logrus quotes: an error with quotes or a newline stays one field.
        text = f" error={json.dumps(self.message)}" if self.message else ""
        desired = f"state.desired={self.desired} " if self.desired else ""
        return (
            f'time="{self.time}" level=info msg="state changed" '
            f'{desired}state.transition="{self.transition}" {who}{text}'
        )


def path_for(state: Path) -> Path:
    return state.with_name(state.name + ".events.jsonl")


def task_changes(
    before: dict[str, Task], after: Iterable[Task], services: dict[str, str], nodes: dict[str, str]
) -> list[Event]:
    """Events for tasks whose observed state moved, one a lifecycle step; services/nodes:
    id -> name. A step is timed by the record's timestamp of the state it enters (docker's
    own times where the observation had them), else by the next step's, else now."""
    events = []
    for task in after:
        old = before.get(task.id)
        steps = _steps(old.state if old else TaskState.NEW, task)
        when = clock.now()
        timed = []
        for source, target in reversed(steps):
            when = task.timestamps.get(target.value) or when
            timed.append((when, source, target))
        for when, source, target in reversed(timed):
            events.append(
                Event(
                    when,
                    "task",
                    task.id,
                    f"{source.value.upper()}->{target.value.upper()}",
                    services.get(task.service_id, task.service_id),
                    nodes.get(task.node_id, task.node_id),
                    task.error if target == task.state else "",
                    task.desired_state.value.upper(),
                )
            )
    return events


def _steps(start: TaskState, task: Task) -> list[tuple[TaskState, TaskState]]:
    """The (from, to) steps from `start` to the task's state along swarm's lifecycle; an
    ended task leaves it from the furthest state it is known to have reached (a rejected
    one from preparing, where swarm rejects)."""
    end = task.state
    if end == start:
        return []
    if start not in LIFECYCLE or end.rank < start.rank:
        return [(start, end)]
    if end in LIFECYCLE:
        path = list(LIFECYCLE[LIFECYCLE.index(start) : LIFECYCLE.index(end) + 1])
    else:
        reached = max(
            [start, *(s for s in LIFECYCLE if s.value in task.timestamps)], key=lambda s: s.rank
        )
        if end == TaskState.REJECTED:
            reached = max(reached, TaskState.PREPARING, key=lambda s: s.rank)
        path = [*LIFECYCLE[LIFECYCLE.index(start) : LIFECYCLE.index(reached) + 1], end]
    return list(pairwise(path))


def node_change(node: Node, before: str) -> Event:
    return Event(
        clock.now(),
        "node",
        node.id,
        f"{before.upper()}->{node.state.value.upper()}",
        node=node.hostname,
        message=node.message,
    )


def append(path: Path, events: Sequence[Event]) -> None:
    if not events:
        return
    text = "".join(json.dumps(asdict(e), separators=(",", ":")) + "\n" for e in events)
    # One write with O_APPEND: lines from the CLI and the supervisor never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read(
    path: Path,
    since: str | None = None,
    service: str | None = None,
    follow: bool = False,
    poll: float = 0.2,
) -> Iterator[Event]:
    """Events in the file (from `since`, an ISO time), then new ones as they come if
    `follow`."""
    offset = 0
    while True:
        found, offset = read_after(path, offset)
        for event in found:
            if since and event.time < since:
                continue
            if service and event.service != service:
                continue
            yield event
        if not follow:
            return
        time.sleep(poll)


def read_after(path: Path, offset: int) -> tuple[list[Event], int]:
    """The events written after byte `offset`, and the offset after them."""
    found = []
    try:
        with open(path) as handle:
            handle.seek(offset)
            for line in handle:
                if not line.endswith("\n"):
                    break  # a line still being written: next time
                offset += len(line.encode())
                found.append(Event(**json.loads(line)))
    except FileNotFoundError:
        pass
    return found, offset
