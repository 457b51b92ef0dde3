"""What the hosts' containers say about the tasks, merged into the task records (pure).

The containers come as runtime/containers records; this module turns them into observed
task states and into the containers that must go: those of tasks no longer meant to run
(an orphan on a node that came back, a replica left behind by a crash) and those no task
knows. A node that could not be read tells nothing: its tasks are left as they were.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from swarmctl import clock
from swarmctl.models import Task, TaskState
from swarmctl.runtime.containers import Container

# An ASSIGNED task with no container this long after it was assigned was never started
# (its starter died): start it.
START_GRACE = 10.0
# Placed but, as far as the state knows, not running yet: what a start may pick up.
STARTABLE = (TaskState.ASSIGNED, TaskState.ACCEPTED, TaskState.PREPARING, TaskState.STARTING)


@dataclass(frozen=True)
class Merge:
    changed: list[Task]  # task records with a new observed state
    remove: dict[str, list[str]]  # node id -> container IDs to remove
    start: list[Task]  # assigned tasks that nobody started


def observed(task: Task, container: Container) -> Task:
    """A task as its container shows it (an ended task stays ended: states only move
    forward, and the reconciler shuts it down)."""
    if task.state.terminal:
        return task
    task = replace(
        task,
        container_id=container.id,
        addresses=dict(container.addresses),
        macs=dict(container.macs),
    )
    if container.status == "running" and container.health == "starting":
        # Not RUNNING (so not in the mesh or a VIP) until its health check first passes.
        if task.state.rank >= TaskState.STARTING.rank:
            return task
        return stamp(task, TaskState.STARTING, at=container.created, message="starting")
    if container.status == "running" and container.health != "unhealthy":
        if task.state == TaskState.RUNNING:
            return task
        return stamp(
            stamp(task, TaskState.STARTING, at=container.created),
            TaskState.RUNNING,
            at=container.started,
            message="started",
            error="",
            exit_code=None,
        )
    if container.status in ("created", "restarting", "paused"):
        return task  # not running now, but not ended either
    if container.health == "unhealthy":  # swarm's words, and the exit code once it ended
        code = f"non-zero exit ({container.exit_code}): " if container.exit_code else ""
        error = f"task: {code}dockerexec: unhealthy container"
    elif container.oom:
        error = "task: container was killed: out of memory"
    elif container.exit_code:
        error = f"task: non-zero exit ({container.exit_code})"
    else:
        return stamp(
            task, TaskState.COMPLETE, at=container.finished, message="finished", exit_code=0
        )
    return stamp(
        task,
        TaskState.FAILED,
        at=container.finished,
        message="failed",
        error=error,
        exit_code=container.exit_code,
    )


def stamp(task: Task, state: TaskState, at: str = "", **changes) -> Task:
    """The task in `state`, entered `at` (docker's time when known) or now."""
    return replace(
        task, state=state, timestamps={**task.timestamps, state.value: at or clock.now()}, **changes
    )


def merge(
    tasks: Sequence[Task],
    seen: dict[str, list[Container]],
    now: datetime,
    grace: float = START_GRACE,
) -> Merge:
    """Tasks against the containers of the nodes in `seen` (node id -> containers), as
    listed from `now` on; an assigned task with no container is to be started once
    `grace` seconds passed."""
    by_task: dict[str, Container] = {}
    remove: dict[str, list[str]] = {}
    known = {t.id for t in tasks}
    for node_id, containers in seen.items():
        for container in containers:
            if container.task_id in known:
                by_task[container.task_id] = container
            else:
                remove.setdefault(node_id, []).append(container.id)  # nobody's task
    changed, start = [], []
    for task in tasks:
        if task.node_id not in seen:
            continue
        container = by_task.get(task.id)
        if task.desired_state != TaskState.RUNNING:
            if container is not None:
                remove.setdefault(task.node_id, []).append(container.id)
            elif not task.state.terminal:
                changed.append(stamp(task, TaskState.SHUTDOWN, message="shut down"))
            continue
        if container is not None:
            updated = observed(task, container)
            if updated != task:
                changed.append(updated)
        elif task.state == TaskState.RUNNING and _older_than(task, now, 0):
            # Only a task that ran before the look (`now`) can be missed by it: one a
            # command started meanwhile is recorded running after the look, whose
            # listing came too early to show its container.
            changed.append(
                stamp(
                    task,
                    TaskState.FAILED,
                    message="failed",
                    error="task: container is gone (removed or lost)",
                )
            )
        elif task.state in STARTABLE and _older_than(task, now, grace):
            start.append(task)
    return Merge(changed, remove, start)


def unsettled(tasks: Iterable[Task]) -> bool:
    """Whether a record may not say what its node runs: a start or a stop was written
    as planned but its outcome never was (the command doing it was interrupted)."""
    return any(
        t.state in STARTABLE if t.desired_state == TaskState.RUNNING else not t.state.terminal
        for t in tasks
    )


def _older_than(task: Task, now: datetime, seconds: float) -> bool:
    since = task.timestamps.get(task.state.value, task.created_at)
    return now - datetime.fromisoformat(since) >= timedelta(seconds=seconds)


def running_endpoints(tasks: Iterable[Task]) -> frozenset[tuple[str, str, str, str]]:
    """(service, network, address, MAC) of every running task: what the mesh is made from.
    The MAC counts too: an address handed out again may come with another one."""
    return frozenset(
        (t.service_id, name, ip, t.macs.get(name, ""))
        for t in tasks
        if t.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING
        for name, ip in t.addresses.items()
    )
