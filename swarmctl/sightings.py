"""Reading and tidying what the nodes run, around the pure merge of observe.py.

The supervisor's observe round lists containers and removes strays with these; a command
about to change services catches up with them first (catch_up), so that what a command
interrupted mid-way started or failed to start is adopted, removed or started again
instead of being planned around. Deciding stays in observe.py and reconciler.py.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime

from swarmctl import executor, observe
from swarmctl.commands import steps
from swarmctl.errors import SwarmctlError
from swarmctl.models import HealthCheck, Node, NodeState, Task, TaskState
from swarmctl.runtime.containers import Container
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from swarmctl.transport.group import Pool
from swarmctl.transport.host import Host, Hosts

# An image's own HEALTHCHECK, unknown here, is waited for at most docker's defaults'
# worst case; a slack covers the node's clock and our polling.
DEFAULT_HEALTH_WAIT = (30.0 + 30.0) * 3
HEALTH_SLACK = 2.0
HEALTH_POLL = 0.5  # seconds between looks at tasks whose health check has not passed yet


def _lister(cluster_id: str) -> Callable[[Host], list[Container]]:
    return lambda host: host.containers(cluster_id)


def remove_strays(
    store: StateStore,
    pool: Hosts,
    remove: dict[str, list[str]],
    nodes: list[Node],
    seen: dict[str, list[Container]],
) -> list[str]:
    """Remove containers no task wants (node id -> container IDs, among those `seen`);
    record the tasks whose containers are now gone as shut down. Returns warnings."""
    if not remove:
        return []
    names = {n.id: n.hostname for n in nodes}
    task_of = {c.id: c.task_id for containers in seen.values() for c in containers}
    by_host = {
        names[node_id]: sorted({task_of[c] for c in ids})
        for node_id, ids in remove.items()
        if node_id in names
    }
    results = executor.run_steps(pool, [steps.remove_strays(h, ids) for h, ids in by_host.items()])
    gone = {
        task_id
        for host, ids in by_host.items()
        if not isinstance(results[host], SwarmctlError)
        for task_id in ids
    }
    with store.read() as db:
        tasks = Repo(db).tasks.all()
    # States only move forward: a failed task stays failed, its container gone.
    shut = [
        observe.stamp(t, TaskState.SHUTDOWN, message="shut down")
        for t in tasks
        if t.id in gone and t.desired_state != TaskState.RUNNING and not t.state.terminal
    ]
    executor.save(store, shut, known_only=True)
    return [str(r) for r in results.values() if isinstance(r, SwarmctlError)]


def catch_up(
    store: StateStore, pool: Pool, service_ids: set[str], always: bool = False
) -> tuple[bool, list[Task], list[str]]:
    """Before a command plans for these services (under their leases): if a start or a
    stop of theirs was never recorded, look at what the nodes run — adopt the containers
    of tasks, remove those no task of theirs wants, and return the tasks that never got
    a container, to be started at once (the lease says nobody else is starting them; a
    start still in flight is taken over by its container's name). `always`: look even
    when the records tell of nothing unsettled (a rolling update watching its new tasks).

    Returns (whether anything was recorded or removed, tasks to start, warnings). Nodes
    that cannot be read tell nothing: their tasks stay as recorded."""
    with store.read() as db:
        repo = Repo(db)
        tasks = [t for t in repo.tasks.all() if t.service_id in service_ids]
        if not always and not observe.unsettled(tasks):
            return False, [], []
        cluster_id = repo.cluster().id
        # A node the supervisor saw miss its heartbeat (unknown) or down would cost a
        # connect timeout and tell nothing; the supervisor looks again when it answers.
        nodes = [n for n in repo.nodes.all() if n.state == NodeState.READY]

    looked_at = datetime.now(UTC)  # before the listing: what it cannot have seen
    results = pool.each(_lister(cluster_id), [n.hostname for n in nodes])
    seen = {
        n.id: [c for c in found if c.service_id in service_ids]
        for n in nodes
        if isinstance(found := results.get(n.hostname), list)
    }
    merged = observe.merge(tasks, seen, looked_at, grace=0)
    executor.save(store, merged.changed, known_only=True)
    warnings = remove_strays(store, pool, merged.remove, nodes, seen)
    acted = bool(merged.changed or merged.remove or merged.start)
    return acted, merged.start, warnings


def await_health(
    store: StateStore,
    pool: Pool,
    service_ids: set[str],
    deadline: float,
    progress: Callable[[Task], None] | None = None,
) -> bool:
    """Watch the services' STARTING tasks (running, their health check not passed yet)
    until each is healthy (RUNNING) or unhealthy (FAILED), or `deadline` (monotonic) comes.
    Returns whether any task changed: their endpoints are then new to the mesh."""
    changed_any = False
    while True:
        with store.read() as db:
            repo = Repo(db)
            waiting = [
                t
                for t in repo.tasks.all()
                if t.service_id in service_ids
                and t.state == TaskState.STARTING
                and t.desired_state == TaskState.RUNNING
                and t.container_id
            ]
            nodes = {n.id: n for n in repo.nodes.all() if n.state == NodeState.READY}
            cluster_id = repo.cluster().id if waiting else ""
        waiting = [t for t in waiting if t.node_id in nodes]
        if not waiting or time.monotonic() >= deadline:
            return changed_any
        time.sleep(HEALTH_POLL)
        hosts = {nodes[t.node_id].hostname for t in waiting}
        results = pool.each(_lister(cluster_id), sorted(hosts))
        by_task = {
            c.task_id: c for found in results.values() if isinstance(found, list) for c in found
        }
        changed = [
            seen
            for t in waiting
            if t.id in by_task and (seen := observe.observed(t, by_task[t.id])).state != t.state
        ]
        if not changed and all(isinstance(r, SwarmctlError) for r in results.values()):
            return changed_any  # nobody to ask any more
        executor.save(store, changed, known_only=True)
        for task in changed:
            if progress:
                progress(task)
        changed_any = changed_any or bool(changed)


def health_wait(health: HealthCheck | None) -> float:
    """How long docker may take to call a new container healthy or unhealthy: its start
    period, then `retries` checks each an interval apart and up to a timeout long (docker's
    defaults, 30 s, 30 s and 3, where the service leaves the image's)."""
    if health is None or health.disabled:
        return DEFAULT_HEALTH_WAIT  # the image may have a HEALTHCHECK of its own
    interval = 30.0 if health.interval is None else health.interval
    timeout = 30.0 if health.timeout is None else health.timeout
    retries = 3 if health.retries is None else health.retries
    return (health.start_period or 0.0) + (interval + timeout) * retries + HEALTH_SLACK
