"""Rolling updates, rollbacks and drains carried out round by round (`update` decides).

Each round looks at the service's tasks, asks the planner (`update.step`,
`update.drain_step`) which slots to renew, and applies that under the service's lease;
everything it goes by is in the state, so a rerun or the supervisor carries on an
interrupted one without repeating a batch.
"""

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace
from datetime import UTC, datetime

from swarmctl import (
    clock,
    convergence,
    executor,
    observe,
    services,
    sightings,
    update,
)
from swarmctl.errors import SwarmctlError
from swarmctl.models import (
    Availability,
    Mode,
    Node,
    NodeState,
    Service,
    Task,
    TaskState,
    UpdateState,
    UpdateStatus,
)
from swarmctl.network import networking
from swarmctl.reconciler import Plan
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from swarmctl.transport.group import Pool

UPDATE_POLL = 0.5  # seconds between looks at an update's new tasks


ROLLED_BACK = "update rolled back"

# Told each round the slots whose new task the roll still waits on: a task recorded as
# running there is not done yet (its node is not seen ready, or its old task still runs).
Waiting = Callable[[Collection[update.SlotKey]], None]


def roll(
    store: StateStore,
    pool: Pool,
    service_id: str,
    progress: convergence.Progress | None = None,
    waiting: Waiting | None = None,
) -> tuple[UpdateStatus | None, list[str]]:
    """Carry the service's update (or rollback) on until it completes or pauses; returns
    its last status and warnings. Everything it goes by is in the state, so a rerun (or
    the supervisor) takes over where an interrupted one stopped, without repeating a batch."""
    warnings: list[str] = []
    endpoints = _endpoints(store, service_id)
    while True:
        # The lease is taken round by round, not for the whole update: between rounds
        # the supervisor may carry the update on too, and one killed in a sleep holds none.
        with convergence.leased(store, {service_id}):
            status, wake_at = advance(store, pool, service_id, progress, waiting)
        serving = _endpoints(store, service_id)
        if serving is not None and serving != endpoints:
            warnings += networking.converge_mesh(store, pool)  # new tasks in, old ones out
        endpoints = serving
        if status is None or not status.state.in_progress:
            if _reached_differently(store, service_id):
                warnings += networking.converge_mesh(store, pool)  # virtual IPs or ports gone too
            return status, warnings
        pause_for = UPDATE_POLL
        if wake_at is not None:
            pause_for = min(pause_for, (wake_at - datetime.now(UTC)).total_seconds())
        time.sleep(max(0.05, pause_for))


def _reached_differently(store: StateStore, service_id: str) -> bool:
    """Whether the service's networks or ports differ from its previous spec's."""
    with store.read() as db:
        service = Repo(db).services.find(service_id)
    before = service.previous_spec if service else None
    return before is not None and (before.networks, before.ports) != (
        service.spec.networks,
        service.spec.ports,
    )


def _endpoints(store: StateStore, service_id: str) -> frozenset | None:
    """The service's running endpoints, or None when the mesh does not carry it."""
    with store.read() as db:
        repo = Repo(db)
        service = repo.services.find(service_id)
        if service is None or not (service.spec.ports or service.spec.networks):
            return None
        return observe.running_endpoints(t for t in repo.tasks.all() if t.service_id == service_id)


def advance(
    store: StateStore,
    pool: Pool,
    service_id: str,
    progress: convergence.Progress | None = None,
    waiting: Waiting | None = None,
) -> tuple[UpdateStatus | None, datetime | None]:
    """One round of the service's update, under its lease: look at its tasks, then renew
    the slots the planner names, or record the update's end. Returns its status and when
    to look again."""
    _, restart, _ = sightings.catch_up(store, pool, {service_id}, always=True)
    now = datetime.now(UTC)
    with store.read() as db:
        repo = Repo(db)
        service = repo.services.find(service_id)
        decided = decide(service, repo.tasks.all(), now, repo.nodes.all()) if service else None
        if service is None or decided is None:
            return service.update_status if service else None, None
        plan = convergence.reconcile_now(
            repo, now, only={service_id}, renew={service_id: decided.renew}
        )
    if waiting is not None:
        waiting(decided.in_flight)
    if decided.outcome is not None:
        return finish(store, service_id, decided, service.update_status), None
    if restart:
        plan = replace(plan, update=plan.update + tuple(restart))
    leave_mesh_first(store, pool, plan)
    if not plan.empty:
        executor.apply(store, pool, plan, progress)
    return service.update_status, decided.wake_at


def leave_mesh_first(
    store: StateStore, pool: Pool, plan: Plan, skip: Collection[str] = ()
) -> list[str]:
    """Take the plan's running tasks out of the routing mesh and their virtual IPs before
    they are stopped, so that no new connection reaches a container going away (on the
    nodes but those in `skip`, as networking.converge_mesh)."""
    serving = [t for t in plan.shutdown if t.state == TaskState.RUNNING and t.addresses]
    if not serving:
        return []
    executor.save(store, serving)
    return networking.converge_mesh(store, pool, skip)


def decide(
    service: Service, tasks: Iterable[Task], now: datetime, nodes: Iterable[Node] = ()
) -> update.Step | None:
    """The planner's next step of the service's update, if one is in progress (`nodes`:
    the cluster's, so that a new task on a node not seen ready does not count as done)."""
    status = service.update_status
    if status is None or not status.state.in_progress:
        return None
    return update.step(
        _slots(service, [t for t in tasks if t.service_id == service.id]),
        status.spec_version,
        clock.parse(status.started_at),
        service.update_policy,
        now,
        sightings.health_wait(service.spec.health),
        {n.id for n in nodes if n.state != NodeState.READY},
    )


def _slots(service: Service, tasks: list[Task]) -> dict:
    """The service's tasks by slot, for the slots it wants, in slot order."""
    if service.spec.mode == Mode.REPLICATED:
        keys: list = list(range(1, service.spec.replicas + 1))
    else:
        keys = sorted({t.slot_key for t in tasks if t.desired_state == TaskState.RUNNING}, key=str)
    return {key: [t for t in tasks if t.slot_key == key] for key in keys}


def finish(
    store: StateStore, service_id: str, decided: update.Step, on: UpdateStatus
) -> UpdateStatus | None:
    """Record the end of the update `decided` was made `on`: completed, paused, or a
    rollback begun. A command records a new update (or rollback) without the service's
    lease: if one came meanwhile, it is left going on, not ended with the old one."""
    with store.transaction() as db:
        repo = Repo(db)
        service = repo.services.find(service_id)
        if service is None or service.update_status != on:
            return service.update_status if service else None
        status = on
        now = clock.now()
        rolling_back = status.state.rollback
        if decided.outcome == update.Outcome.COMPLETED:
            state = UpdateState.ROLLBACK_COMPLETED if rolling_back else UpdateState.COMPLETED
            done = "rollback completed" if rolling_back else "update completed"
            why = status.message if status.message.startswith(ROLLED_BACK) else ""
            message = f"{done} ({why})" if why else done
            changed = replace(
                service,
                update_status=replace(status, state=state, completed_at=now, message=message),
            )
        else:
            first = decided.failures[0]
            names = {n.id: n.hostname for n in repo.nodes.all()}
            name = f"{service.spec.name}.{first.task.slot_key}"
            where = names.get(first.task.node_id, "no node")
            why = f"failure of task {name} ({first.task.id[:12]}) on {where}: {first.reason}"
            rollback_now = (
                not rolling_back and service.spec.update.failure_action.value == "rollback"
            )
            paused = f"update paused due to {why}"
            if rollback_now:
                try:
                    changed = services.rolled_back(repo, service, f"{ROLLED_BACK} due to {why}")
                except SwarmctlError as error:
                    rollback_now, paused = False, f"{paused}; {error}"
            if not rollback_now:
                state = UpdateState.ROLLBACK_PAUSED if rolling_back else UpdateState.PAUSED
                message = f"rollback paused due to {why}" if rolling_back else paused
                changed = replace(
                    service, update_status=replace(status, state=state, message=message)
                )
        repo.services.put(changed)
    return changed.update_status


def decide_drain(
    service: Service, tasks: Iterable[Task], nodes: Iterable[Node], now: datetime
) -> update.Step | None:
    """The planner's next step moving the service's tasks off drained nodes with its
    update policy, if it is replicated and a task of it is or was on one (a global
    service's task there just ends: the reconciler ends it)."""
    drained = {n.id for n in nodes if n.availability == Availability.DRAIN}
    mine = [t for t in tasks if t.service_id == service.id]
    if service.spec.mode != Mode.REPLICATED or not any(t.node_id in drained for t in mine):
        return None
    return update.drain_step(
        _slots(service, mine),
        drained,
        service.spec.update,
        now,
        sightings.health_wait(service.spec.health),
    )


def drain_due(repo: Repo, now: datetime) -> bool:
    """Whether a drain has a slot to move now (a cheap look first: a task meant to run on
    a drained node)."""
    nodes = repo.nodes.all()
    drained = {n.id for n in nodes if n.availability == Availability.DRAIN}
    tasks = repo.tasks.all()
    on_drained = {
        t.service_id for t in tasks if t.node_id in drained and t.desired_state == TaskState.RUNNING
    }
    return any(
        (step := decide_drain(s, tasks, nodes, now)) and step.renew
        for s in repo.services.all()
        if s.id in on_drained
    )


def drain(
    store: StateStore,
    pool: Pool,
    service_ids: set[str],
    wait_for: set[str],
    progress: convergence.Progress | None = None,
) -> tuple[list[update.Failure], list[str]]:
    """Move the services' tasks off drained nodes, each service with its update policy,
    round by round as `roll` does, until none of `wait_for` has a slot left to move or
    moving; returns the moves that failed and warnings. A rerun, or the supervisor,
    carries on an interrupted drain: everything it goes by is in the state."""
    warnings: list[str] = []
    endpoints = _serving(store, service_ids)
    while True:
        with convergence.leased(store, service_ids):
            steps, pending, more = _drain_round(store, pool, service_ids, progress)
        warnings += more
        serving = _serving(store, service_ids)
        if serving != endpoints:
            warnings += networking.converge_mesh(store, pool)  # new tasks in
        endpoints = serving
        # A new task no node can take now holds its slot's place until the start timeout
        # (as in an update), but the command does not wait for the cluster to change.
        busy = [
            s
            for i, s in steps.items()
            if i in wait_for and (s.renew or set(s.in_flight) - pending.get(i, set()))
        ]
        if not busy:
            failures = [f for s in steps.values() for f in s.failures]
            # Records of stopped tasks, health checks and the mesh, as any command ends.
            return failures, warnings + convergence.converge(store, pool, service_ids, progress)
        wakes = [s.wake_at for s in busy if s.wake_at]
        pause_for = min([UPDATE_POLL, *((w - datetime.now(UTC)).total_seconds() for w in wakes)])
        time.sleep(max(0.05, pause_for))


def _drain_round(
    store: StateStore, pool: Pool, service_ids: set[str], progress: convergence.Progress | None
) -> tuple[dict[str, update.Step], dict[str, set], list[str]]:
    """One round of a drain, under the services' leases: look at their tasks, then move
    the slots the planner names (and end global tasks on drained nodes). Returns the
    planner's steps, the slots whose task is pending, by service, and warnings."""
    _, restart, warnings = sightings.catch_up(store, pool, service_ids, always=True)
    now = datetime.now(UTC)
    with store.read() as db:
        repo = Repo(db)
        tasks, nodes = repo.tasks.all(), repo.nodes.all()
        steps = {
            s.id: step
            for s in repo.services.all()
            if s.id in service_ids and (step := decide_drain(s, tasks, nodes, now))
        }
        renew = {i: step.renew for i, step in steps.items()}
        plan = convergence.reconcile_now(repo, now, only=service_ids, renew=renew)
    pending: dict[str, set] = {}
    for task in {t.id: t for t in (*tasks, *plan.create, *plan.update)}.values():
        if task.state == TaskState.PENDING and task.desired_state == TaskState.RUNNING:
            pending.setdefault(task.service_id, set()).add(task.slot_key)
    if restart:
        planned = {t.id for t in (*plan.shutdown, *plan.update)}
        plan = replace(plan, update=plan.update + tuple(t for t in restart if t.id not in planned))
    warnings += leave_mesh_first(store, pool, plan)
    if not plan.empty:
        outcome = executor.apply(store, pool, plan, progress)
        warnings += [
            convergence.unreachable_warning(plan, node, e)
            for node, e in outcome.unreachable.items()
        ]
    return steps, pending, warnings


def _serving(store: StateStore, service_ids: set[str]) -> frozenset:
    with store.read() as db:
        return observe.running_endpoints(
            t for t in Repo(db).tasks.all() if t.service_id in service_ids
        )
