"""Converging services: reconcile -> apply, a few rounds, under the services' leases.

A command that recorded a change converges the services it touched, so that tasks a
node that could not be reached turned away are placed elsewhere, waits for new tasks'
health checks, then brings every node's mesh up to date. What does not converge is
reported (`status`, `problems`), not hidden: the caller exits non-zero. Rolling updates
and drains are `rolling`'s; the supervisor keeps converging afterwards.
"""

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from swarmctl import (
    executor,
    observe,
    sightings,
)
from swarmctl.errors import SwarmctlError
from swarmctl.models import (
    Node,
    Service,
    Task,
    TaskState,
    ready_node_ids,
    replicas,
)
from swarmctl.naming import new_id
from swarmctl.network import networking
from swarmctl.reconciler import Plan, reconcile
from swarmctl.state import StateStore, leases
from swarmctl.state.repo import Repo
from swarmctl.transport.group import Pool

Progress = Callable[[Task], None]


@dataclass(frozen=True)
class Convergence:
    service: Service
    running: int
    desired: int
    problems: list[str]  # one line per task that did not make it, with why

    @property
    def converged(self) -> bool:
        return self.running >= self.desired and not self.problems


MAX_ROUNDS = 4


LEASE_WAIT = 30.0  # how long a command waits for a service the supervisor is acting on


LEASE_TTL = 600.0  # a command that dies mid-way blocks the service at most this long


def converge(
    store: StateStore,
    pool: Pool,
    service_ids: set[str],
    progress: Progress | None = None,
    always_mesh: bool = False,
    wait_health: bool = True,
) -> list[str]:
    """Reconcile and apply the given services until nothing more can be done now, and
    (`wait_health`) until the new tasks' health checks tell; then, if anything changed
    (or `always_mesh`: a service's virtual IPs are new or gone) for a service the mesh
    carries, bring every node's mesh up to date. Returns warnings."""
    if (
        not always_mesh
        and _plan(store, service_ids)[0].empty
        and not _unsettled(store, service_ids)
    ):
        return []  # nothing to do: no lease taken, nothing written
    with leased(store, service_ids):
        return _converge(store, pool, service_ids, progress, always_mesh, wait_health)


def _plan(store: StateStore, service_ids: set[str]) -> tuple[Plan, bool]:
    """What reconciling the services would do now, and whether the mesh carries any of
    them (records already removed by `service rm` say nothing: then it may)."""
    with store.read() as db:
        repo = Repo(db)
        touched = [s for s in repo.services.all() if s.id in service_ids]
        plan = reconcile_now(repo, datetime.now(UTC), only=service_ids)
    return plan, not touched or any(s.spec.ports or s.spec.networks for s in touched)


def _unsettled(store: StateStore, service_ids: set[str]) -> bool:
    with store.read() as db:
        return observe.unsettled(t for t in Repo(db).tasks.all() if t.service_id in service_ids)


def reconcile_now(
    repo: Repo, now: datetime, only: set[str] | None = None, renew: dict | None = None
) -> Plan:
    """The reconciler's plan for the records of one snapshot or transaction."""
    return reconcile(
        repo.services.all(),
        repo.tasks.all(),
        repo.nodes.all(),
        now,
        new_id,
        only=only,
        networks=repo.networks.all(),
        renew=renew,
    )


@contextmanager
def leased(store: StateStore, service_ids: set[str], wait: float = LEASE_WAIT) -> Iterator[None]:
    """Hold the services' leases (a supervisor mid-tick on them holds them briefly)."""
    holder = leases.me()
    names = [leases.service_lease(i) for i in sorted(service_ids)]
    deadline = time.monotonic() + wait
    while True:
        with store.transaction() as db:
            now = datetime.now(UTC)
            held = [h for n in names if (h := leases.get(db, n)) and h.held_by_other(holder, now)]
            if not held:
                for name in names:
                    leases.take(db, name, holder, LEASE_TTL, now)
                break
        if time.monotonic() > deadline:
            raise SwarmctlError(
                f"{held[0].name} is being changed by {held[0].holder}: try again in a moment"
            )
        time.sleep(0.1)
    try:
        yield
    finally:
        with store.transaction() as db:
            for name in names:
                leases.release(db, name, holder)


def unreachable_warning(plan: Plan, node_id: str, error: str) -> str:
    """What becomes of a node's share of the plan when the node cannot be reached."""
    starts = any(t.node_id == node_id for t in plan.create)
    stops = any(t.node_id == node_id for t in plan.shutdown)
    fates = (["its new tasks go elsewhere"] if starts else []) + (
        ["its containers to stop are removed when it is back"] if stops else []
    )
    return f"{error}: {' and '.join(fates) or 'nothing changed there'}"


def _converge(
    store: StateStore,
    pool: Pool,
    service_ids: set[str],
    progress: Progress | None,
    always_mesh: bool,
    wait_health: bool,
) -> list[str]:
    # What an interrupted command left is taken over first, not planned around.
    acted, restart, warnings = sightings.catch_up(store, pool, service_ids)
    meshed = False
    for _ in range(MAX_ROUNDS):
        plan, meshed = _plan(store, service_ids)
        if restart:  # unless this plan ends them (their node went down meanwhile)
            planned = {t.id for t in (*plan.shutdown, *plan.update)}
            again = tuple(t for t in restart if t.id not in planned)
            plan, restart = replace(plan, update=plan.update + again), []
        if plan.empty:
            break
        acted = True
        outcome = executor.apply(store, pool, plan, progress)
        warnings += [unreachable_warning(plan, node, e) for node, e in outcome.unreachable.items()]
        # Another round helps tasks that a lost node turned away, and finishes removals
        # (records of tasks whose containers are now gone); other failures wait for the
        # restart policy, which the supervisor applies.
        if not outcome.unreachable and not plan.shutdown:
            break
    if acted and wait_health:
        # New tasks join the mesh and their VIPs once their health check passes.
        with store.read() as db:
            checks = [s.spec.health for s in Repo(db).services.all() if s.id in service_ids]
        wait = max((sightings.health_wait(h) for h in checks), default=0.0)
        sightings.await_health(store, pool, service_ids, time.monotonic() + wait, progress)
    # A service with neither ports nor networks has no mesh rule, virtual IP or neighbour.
    if (acted or always_mesh) and meshed:
        warnings += networking.converge_mesh(store, pool)
    return warnings


FAILED_STATES = (TaskState.FAILED, TaskState.REJECTED)


def status(store: StateStore, service_ids: Iterable[str]) -> list[Convergence]:
    with store.read() as db:
        repo = Repo(db)
        services = {s.id: s for s in repo.services.all()}
        tasks = repo.tasks.all()
        all_nodes = repo.nodes.all()
    ready = ready_node_ids(all_nodes)
    report = []
    for service_id in service_ids:
        service = services.get(service_id)
        if service is not None:
            running, desired = replicas(service, tasks, ready)
            why = problems(service, tasks, all_nodes, running < desired)
            report.append(Convergence(service, running, desired, why))
    return report


def problems(
    service: Service, tasks: Iterable[Task], all_nodes: Sequence[Node], short: bool
) -> list[str]:
    """One line per task of the service that did not make it, with why; `short`: fewer
    replicas run than desired, so a current task's failure or state is the reason."""
    nodes = {n.id: n.hostname for n in all_nodes}
    states = {n.id: n.state.value for n in all_nodes}
    ready = ready_node_ids(all_nodes)
    found: dict[str, str] = {}  # one line per slot: its latest task's
    for task in sorted(tasks, key=lambda t: t.created_at):
        current = task.desired_state == TaskState.RUNNING
        if task.service_id != service.id or not (current or task.state in FAILED_STATES):
            continue
        where = nodes.get(task.node_id, "no node")
        name = f"{service.spec.name}.{task.slot_key}"
        if task.state == TaskState.RUNNING:
            found.pop(name, None)  # what an earlier task of the slot met is over
            if task.node_id not in ready and task.node_id in states:
                found[name] = (
                    f"{name} on {where}: running when last seen, node {states[task.node_id]}"
                )
        elif task.error and short:
            found[name] = f"{name} on {where}: {task.state.value}: {task.error}"
        elif task.state == TaskState.STARTING and task.container_id:
            found[name] = f"{name} on {where}: starting: its health check has not passed"
        elif current and short:
            # e.g. complete: its command ended with status 0, which a service never expects
            found[name] = f"{name} on {where}: {task.state.value}"
    return sorted(found.values())
