"""Rolling updates as a pure function: which slots get a new task next, and when it failed.

Given a service's slots (each with its task history), the service version whose tasks
run the new spec, when the update started and its policy, `step` says what to do now:
the slots to renew (at most `parallelism` in flight), the new tasks that failed, and
whether the update is over (completed) or its failure action fires. It does nothing
itself: the reconciler gives renewed slots their new task, as stop-first or start-first.

A slot is *outdated* while its current task was made for an older version, *in flight*
from its renewal until its new task runs (healthy), and *updated* after that. A new task
*fails* if it ends within `monitor` of running (or before ever running), or is still not
running (healthy) `start_timeout` after it was made. A new task that ended because its
node went down or could not be reached (`Task.lost_with_node`) did not fail: the
reconciler replaces it at once and its slot stays in flight, as in swarm mode (so does a
slot whose new task runs on a node that is away, down or unknown, until it is replaced
or the node answers). Failed slots free their place, so with failure action continue the
update goes on; pause and rollback stop renewing at the first failure past
`max_failure_ratio`.

A drain (`drain_step`) is the same roll with other words: a slot is outdated while its
current task is on a drained node, and the drain's new tasks are those made elsewhere
after the slot's latest task there. A drain cannot pause nor roll back (the node must be
emptied): it goes on past failures, as with failure action continue.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from swarmctl import clock
from swarmctl.models import FailureAction, Task, TaskState, UpdatePolicy

SlotKey = int | str

_ENDED_BADLY = (TaskState.FAILED, TaskState.REJECTED, TaskState.COMPLETE)
# How long past its monitor a new task running on a node not seen ready is waited on
# before it counts (a supervisor declares a lost node down well within this).
AWAY_GRACE = 30.0


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"  # the failure action (pause or rollback) fires


@dataclass(frozen=True)
class Failure:
    task: Task
    reason: str


@dataclass(frozen=True)
class Step:
    renew: tuple[SlotKey, ...] = ()
    failures: tuple[Failure, ...] = ()
    outcome: Outcome | None = None
    wake_at: datetime | None = None  # when to look again, if sooner than any change
    outdated: tuple[SlotKey, ...] = ()  # slots still to renew after this step
    in_flight: tuple[SlotKey, ...] = ()  # slots renewed whose new task does not run yet


def is_new(task: Task, version: int, since: datetime) -> bool:
    """Whether the task was made by this update (for its version, after it began)."""
    return task.spec_version >= version and clock.parse(task.created_at) >= since


def step(
    slots: Mapping[SlotKey, Sequence[Task]],
    version: int,
    since: datetime,
    policy: UpdatePolicy,
    now: datetime,
    start_timeout: float,
    away: Collection[str] = (),
) -> Step:
    """The next move of an update to `version` begun at `since` (see the module's doc).
    `slots` are the slots the service wants, in the order to update them; `away`: the
    nodes not seen ready now (down or unknown)."""
    return _roll(
        slots,
        lambda _, task: is_new(task, version, since),
        lambda task: task.spec_version < version,
        policy,
        now,
        start_timeout,
        away,
    )


def drain_step(
    slots: Mapping[SlotKey, Sequence[Task]],
    drained: Collection[str],
    policy: UpdatePolicy,
    now: datetime,
    start_timeout: float,
) -> Step:
    """The next move of a drain of the `drained` nodes (ids) for one service's slots
    (see the module's doc); its outcome is COMPLETED once no slot is outdated or in flight
    and the moved tasks ran for `monitor`."""
    left = {
        key: max(t.created_at for t in history if t.node_id in drained)
        for key, history in slots.items()
        if any(t.node_id in drained for t in history)
    }
    return _roll(
        slots,
        lambda key, task: (
            key in left and task.created_at > left[key] and task.node_id not in drained
        ),
        lambda task: task.node_id in drained,
        replace(policy, failure_action=FailureAction.CONTINUE),
        now,
        start_timeout,
    )


def _roll(
    slots: Mapping[SlotKey, Sequence[Task]],
    made_by_it: Callable[[SlotKey, Task], bool],
    outdated_task: Callable[[Task], bool],
    policy: UpdatePolicy,
    now: datetime,
    start_timeout: float,
    away: Collection[str] = (),
) -> Step:
    """The next move of a roll that renews the slots whose current task is
    `outdated_task`, its new tasks being those `made_by_it`."""
    outdated: list[SlotKey] = []
    in_flight: list[SlotKey] = []
    failures: list[Failure] = []
    ran_at: list[datetime] = []  # when each updated slot's new task started running
    wakes: list[datetime] = []
    for key, history in slots.items():
        ordered = sorted(history, key=lambda t: t.created_at)
        new = [t for t in ordered if made_by_it(key, t)]
        current = [t for t in ordered if t.desired_state == TaskState.RUNNING]
        if not new:
            if current and outdated_task(current[-1]):
                outdated.append(key)
            continue
        failure = _failure(new, policy.monitor, now, start_timeout)
        if failure is not None:
            failures.append(failure)
            continue
        latest = new[-1]
        alone = current == [latest]  # start-first: the old task has been told to stop
        if latest.state == TaskState.RUNNING and alone and latest.node_id in away:
            # Not done: it is replaced if the node is lost, and counts once it answers;
            # but a node nobody declares lost (no supervisor running) is not waited on
            # for ever: past the grace it counts as it did when last seen.
            until = _entered(latest, TaskState.RUNNING) + timedelta(
                seconds=max(policy.monitor, start_timeout) + AWAY_GRACE
            )
            if now < until:
                in_flight.append(key)
                wakes.append(until)
                continue
        if latest.state == TaskState.RUNNING and alone:
            running = _entered(latest, TaskState.RUNNING)
            ran_at.append(running)
            if now < running + timedelta(seconds=policy.monitor):
                wakes.append(running + timedelta(seconds=policy.monitor))
            continue
        in_flight.append(key)
        wakes.append(clock.parse(latest.created_at) + timedelta(seconds=start_timeout))
    fired = (
        policy.failure_action != FailureAction.CONTINUE
        and failures
        and len(failures) > policy.max_failure_ratio * len(slots)
    )
    if fired:
        return Step((), tuple(failures), Outcome.FAILED, None, tuple(outdated), tuple(in_flight))
    if not outdated and not in_flight and not wakes:
        return Step((), tuple(failures), Outcome.COMPLETED)
    room = (policy.parallelism or len(slots)) - len(in_flight)
    renew: tuple[SlotKey, ...] = ()
    if outdated and room > 0:
        ready_at = max(ran_at) + timedelta(seconds=policy.delay) if ran_at else now
        if policy.delay and ready_at > now:
            wakes.append(ready_at)
        else:
            renew = tuple(outdated[:room])
    return Step(
        renew,
        tuple(failures),
        None,
        min(wakes, default=None),
        tuple(k for k in outdated if k not in renew),
        tuple(in_flight),
    )


def _failure(
    new: list[Task], monitor: float, now: datetime, start_timeout: float
) -> Failure | None:
    """The first of a slot's new tasks that failed as the update counts failures."""
    for task in new:
        if task.state in _ENDED_BADLY and not task.lost_with_node:
            running = task.timestamps.get(TaskState.RUNNING.value)
            ended = _entered(task, task.state)
            if running is None or ended <= clock.parse(running) + timedelta(seconds=monitor):
                return Failure(task, _reason(task))
    latest = new[-1]
    if (
        latest.state != TaskState.RUNNING
        and not latest.state.terminal
        and latest.desired_state == TaskState.RUNNING
        and now >= clock.parse(latest.created_at) + timedelta(seconds=start_timeout)
    ):
        return Failure(
            latest, f"{latest.state.value}: not running (healthy) within {start_timeout:g}s"
        )
    return None


def _reason(task: Task) -> str:
    why = task.error or task.message or "ended"
    return f"{task.state.value}: {why}"


def _entered(task: Task, state: TaskState) -> datetime:
    return clock.parse(task.timestamps.get(state.value) or task.created_at)
