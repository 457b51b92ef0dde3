"""Every task and node state change, kept as JSON lines beside the state file and shown
as swarm's daemon log shows it:

    time="…" level=info msg="state changed" state.transition="RUNNING->FAILED"
    task.id=… service=nginx node=worker1   (one line)

The CLI and the supervisor append after each committed change; `swarmctl events`
reads, filters and follows the file.
"""

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from swarmctl import clock
from swarmctl.models import Node, Task


@dataclass(frozen=True)
class Event:
    time: str
    type: str  # "task" or "node"
    id: str
    transition: str  # "RUNNING->FAILED"
    service: str = ""
    node: str = ""
    message: str = ""

    def line(self) -> str:
        who = (
            f"task.id={self.id} service={self.service} node={self.node}"
            if self.type == "task"
            else f"node.id={self.id} node={self.node}"
        )
        # Quoted as logrus quotes: an error with quotes or a newline stays one field.
        text = f" error={json.dumps(self.message)}" if self.message else ""
        return (
            f'time="{self.time}" level=info msg="state changed" '
            f'state.transition="{self.transition}" {who}{text}'
        )


def path_for(state: Path) -> Path:
    return state.with_name(state.name + ".events.jsonl")


def task_changes(
    before: dict[str, Task], after: Iterable[Task], services: dict[str, str], nodes: dict[str, str]
) -> list[Event]:
    """Events for tasks whose observed state moved; services/nodes: id -> name."""
    events = []
    for task in after:
        old = before.get(task.id)
        old_state = old.state.value.upper() if old else "NEW"
        if old_state == task.state.value.upper() and old is not None:
            continue
        events.append(
            Event(
                clock.now(),
                "task",
                task.id,
                f"{old_state}->{task.state.value.upper()}",
                services.get(task.service_id, task.service_id),
                nodes.get(task.node_id, task.node_id),
                task.error,
            )
        )
    return events


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
