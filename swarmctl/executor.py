"""The one place that changes hosts: it applies a reconciler Plan and records what
happened, and carries out the other host steps (hoststep.HostStep) commands decide.

The plan is written to the state first (desired states, new tasks), so that a crash
mid-way leaves a state that the next reconcile finishes; then, per node in parallel,
containers of shut-down tasks are removed and assigned tasks are started; last, each
task's outcome (observed state, container, addresses, error) is written back.
"""

import json
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from swarmctl import health, secrets
from swarmctl.commands import docker
from swarmctl.errors import SwarmctlError
from swarmctl.hoststep import HostStep, Kind
from swarmctl.models import NODE_UNREACHABLE, Node, NodeState, Service, Task, TaskState
from swarmctl.network.mesh import task_networks
from swarmctl.observe import STARTABLE, observed, stamp
from swarmctl.reconciler import Plan
from swarmctl.runtime.containers import Container, from_inspect
from swarmctl.runtime.engine import EngineError
from swarmctl.state import StateStore, events
from swarmctl.state.repo import Repo
from swarmctl.transport.host import Host, Hosts
from swarmctl.transport.ssh import CommandFailed, HostUnreachable, Result

PER_NODE = 4  # containers started at once on one node
START_TIMEOUT = 300.0  # a pull can be slow

Progress = Callable[[Task], None]


class Guard(Protocol):
    """Who may still act on a service while a plan is carried out (the supervisor's
    leases, holds.Holding); a command holds its leases throughout and needs none."""

    def may_act(self, service_id: str) -> bool: ...

    def waiting(self, service_ids: Collection[str]) -> AbstractContextManager[object]: ...


class Unguarded:
    def may_act(self, service_id: str) -> bool:
        return True

    def waiting(self, service_ids: Collection[str]) -> AbstractContextManager[object]:
        return nullcontext()


@dataclass(frozen=True)
class Outcome:
    unreachable: dict[str, str]  # node id -> why


def save(
    store: StateStore,
    tasks: Sequence[Task],
    forget: Sequence[str] = (),
    nodes: dict[str, health.Heartbeat] | None = None,
    known_only: bool = False,
) -> list[tuple[Node, Node]]:
    """Write task records and node statuses in one transaction, then log the state
    changes as events; returns (before, after) of every node whose status changed.

    The one writer of observed state: the supervisor's observations and the executor's
    outcomes both come here. With `known_only` the tasks are observations: what they say
    of their containers is laid over the records as they are now, so a record forgotten
    meanwhile is not brought back and a desired state changed meanwhile (by another
    command) is not undone. A node's status is decided (health.assess) on its record as
    it is now, so a change made meanwhile (availability, labels) is kept."""
    nodes = nodes or {}
    if not tasks and not forget and not nodes:
        return []
    now = datetime.now(UTC)
    with store.transaction() as db:
        repo = Repo(db)
        before = {t.id: t for t in repo.tasks.all()}
        if known_only:
            kept = [_observed_over(before[t.id], t) for t in tasks if t.id in before]
        else:
            kept = list(tasks)
        repo.tasks.put_many(kept)
        if forget:
            repo.tasks.delete(forget)
        moved = []
        for node in repo.nodes.all():
            if node.id in nodes and (updated := health.assess(node, nodes[node.id], now)) != node:
                repo.nodes.put(updated)
                if updated.state != node.state:
                    moved.append((node, updated))
        names = {s.id: s.spec.name for s in repo.services.all()}
        hosts = {n.id: n.hostname for n in repo.nodes.all()}
    changes = [events.node_change(after, was.state.value) for was, after in moved]
    changes += events.task_changes(before, kept, names, hosts)
    events.append(events.path_for(store.path), changes)
    return moved


def _observed_over(record: Task, seen: Task) -> Task:
    """The record with what an observation says of its container (the observed state)."""
    if seen.state.rank < record.state.rank:
        return record  # someone recorded a later state meanwhile: states only move forward
    return replace(
        record,
        state=seen.state,
        timestamps={**record.timestamps, **seen.timestamps},
        message=seen.message,
        error=seen.error,
        container_id=seen.container_id,
        exit_code=seen.exit_code,
        addresses=seen.addresses,
        macs=seen.macs,
    )


def apply(
    store: StateStore,
    pool: Hosts,
    plan: Plan,
    progress: Progress | None = None,
    guard: Guard | None = None,
) -> Outcome:
    """Write the plan, carry it out on the nodes, record the outcome. Work for a service
    the `guard` no longer lets act on is left as recorded, for whoever holds it now."""
    guard = guard or Unguarded()
    save(store, [*plan.create, *plan.update, *plan.shutdown], plan.forget)
    with store.read() as db:
        repo = Repo(db)
        cluster = repo.cluster()
        services = {s.id: s for s in repo.services.all()}
        nodes = {n.id: n for n in repo.nodes.all()}
        networks = {n.name for n in repo.networks.all()}
        starts = [t for t in [*plan.create, *plan.update] if t.state in STARTABLE]
        files = _task_files(repo, [services[t.service_id] for t in starts])
    # Orphans, and tasks on nodes that are down, sit on nodes that do not answer: their
    # containers go when the supervisor sees the node again. A node only unknown (one
    # missed heartbeat) is tried: a container left running there would be a duplicate.
    stops = [
        t
        for t in plan.shutdown
        if t.node_id in nodes
        and t.state != TaskState.ORPHANED
        and nodes[t.node_id].state != NodeState.DOWN
    ]
    work: dict[str, tuple[list[Task], list[Task]]] = defaultdict(lambda: ([], []))
    for task in stops:
        work[task.node_id][0].append(task)
    for task in starts:
        work[task.node_id][1].append(task)
    by_host = {nodes[node_id].hostname: node_id for node_id in work}
    notify = progress or (lambda task: None)

    def on_node(conn: Host) -> list[Task]:
        node_id = by_host[conn.name]
        stopping = [t for t in work[node_id][0] if guard.may_act(t.service_id)]
        # A service removed meanwhile: its containers' own grace, docker's default here.
        grace = max(
            (
                services[t.service_id].spec.stop_grace_period
                for t in stopping
                if t.service_id in services
            ),
            default=10.0,
        )
        done = []
        if stopping:
            with guard.waiting({t.service_id for t in stopping}):
                done = _stop(conn, stopping, grace)

        def start(task: Task) -> Task | None:
            if not guard.may_act(task.service_id):
                return None
            with guard.waiting({task.service_id}):
                return _start(
                    conn,
                    cluster.id,
                    services[task.service_id],
                    task,
                    networks,
                    pool,
                    nodes,
                    notify,
                    files.get(task.service_id, b""),
                )

        with ThreadPoolExecutor(max_workers=PER_NODE) as threads:
            done += [t for t in threads.map(start, work[node_id][1]) if t is not None]
        return done

    def ours(node_id: str) -> list[Task]:
        return [t for t in work[node_id][1] if guard.may_act(t.service_id)]

    results = pool.each(on_node, list(by_host))
    changed: list[Task] = []
    unreachable: dict[str, str] = {}
    for host, result in results.items():
        node_id = by_host[host]
        # The node itself is out of reach: down. A command that timed out or a host key
        # refused says nothing of the node's tasks: they fail as with any other error.
        if isinstance(result, HostUnreachable):
            unreachable[node_id] = str(result)
            changed += [_rejected(t, f"{NODE_UNREACHABLE}: {result}") for t in ours(node_id)]
        elif isinstance(result, SwarmctlError):  # its engine failed us: try elsewhere
            changed += [_rejected(t, str(result)) for t in ours(node_id)]
        else:
            changed += result
    for task in changed:
        notify(task)
    down = {node_id: health.unreachable(why) for node_id, why in unreachable.items()}
    save(store, changed, nodes=down, known_only=True)
    return Outcome(unreachable)


def _task_files(repo: Repo, services: Sequence[Service]) -> dict[str, bytes | SwarmctlError]:
    """Each service's secrets and configs as the archive its tasks get (or why not: no
    key, a wrong key), made once per apply: the values stay in this process's memory."""
    files: dict[str, bytes | SwarmctlError] = {}
    for service in services:
        if service.id not in files and (service.spec.secrets or service.spec.configs):
            try:
                files[service.id] = secrets.archive(repo, service.spec)
            except SwarmctlError as error:
                files[service.id] = error
    return files


def _rejected(task: Task, error: str) -> Task:
    return stamp(task, TaskState.REJECTED, error=error, message="rejected")


def _stop(conn: Host, tasks: list[Task], grace: float) -> list[Task]:
    _remove(conn, docker.stop_tasks([t.id for t in tasks]), timeout=60 + grace)
    return [
        t if t.state.terminal and t.state != TaskState.ORPHANED else stamp(t, TaskState.SHUTDOWN)
        for t in tasks
    ]


def run_steps(pool: Hosts, steps: Sequence[HostStep]) -> dict[str, Result | SwarmctlError]:
    """Carry out host steps: each host's in order, the hosts in parallel. Per host, the
    result of its last step or of the first unchecked step that failed (the steps after
    it are not run), or the error that ended its steps (SSHError: it cannot be reached;
    CommandFailed: a step with `check` failed)."""
    by_host: dict[str, list[HostStep]] = defaultdict(list)
    for step in steps:
        by_host[step.host].append(step)

    def on_host(host: Host) -> Result:
        for step in by_host[host.name]:
            if step.kind == Kind.REMOVE_CONTAINERS:  # raises unless every one is gone
                result = _remove(host, step.command, step.timeout)
                continue
            result = host.run(step.command, timeout=step.timeout, check=step.check)
            if result.exit_code != 0:  # an unchecked step failed: the next may need it
                break
        return result

    return pool.each(on_host, list(by_host))


def _remove(host: Host, command: str | Sequence[str], timeout: float | None) -> Result:
    """Remove containers. One already gone, or going (the supervisor or another command
    removing it right now: docker answers "removal … is already in progress"), is as good
    as removed, not a failure of the work that follows."""
    result = host.run(command, timeout=timeout, check=False)
    if result.exit_code == 0:
        return result
    benign = ("already in progress", "No such container")
    errors = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not any(b in line for b in benign)
    ]
    if errors or not result.stderr.strip():
        why = errors[-1] if errors else f"exit {result.exit_code}"
        raise SwarmctlError(f"{host.name}: removing containers failed: {why}")
    return result


def _start(
    conn: Host,
    cluster_id: str,
    service: Service,
    task: Task,
    networks: set[str],
    pool: Hosts,
    nodes: dict[str, Node],
    notify: Progress,
    files: bytes | SwarmctlError,
) -> Task:
    for step in (TaskState.ACCEPTED, TaskState.PREPARING):  # only forward
        if task.state.rank < step.rank:
            task = stamp(task, step, message=step.value)
    notify(task)
    if isinstance(files, SwarmctlError):
        return _rejected(task, f"secrets and configs not delivered: {files}")
    if files:
        try:  # the values go on stdin: never in a command line, a log or an error
            conn.run(docker.write_task_files(task.id), stdin=files, timeout=START_TIMEOUT)
        except CommandFailed as failure:
            return _rejected(task, f"secrets and configs not delivered: {_reason(failure)}")
    wanted = [n for n in task_networks(service.spec) if n in networks]
    script = docker.run_task(cluster_id, service, task, wanted)
    try:
        result = conn.run(script, timeout=START_TIMEOUT)
    except CommandFailed as failure:
        code, error = failure.result.exit_code, _reason(failure)
        if code == docker.PULL_FAILED and _fetch_image(conn, service.spec.image, pool, nodes):
            try:
                result = conn.run(script, timeout=START_TIMEOUT)
            except CommandFailed as again:
                return _failed(task, again.result.exit_code, _reason(again), service)
        else:
            return _failed(task, code, error, service)
    try:
        container = _container(conn, result.stdout.strip().splitlines()[-1])
    except CommandFailed as failure:
        return _failed(task, failure.result.exit_code, _reason(failure), service)
    return observed(task, container)


def _container(conn: Host, container_id: str) -> Container:
    """A container just started: from the engine's API, through the channel the node
    keeps open (no process on the node), or from `docker inspect` if that fails."""
    try:
        return conn.container(container_id)
    except EngineError:
        return from_inspect(json.loads(conn.run(docker.inspect_container(container_id)).stdout))


def _reason(failure: CommandFailed) -> str:
    return docker.error_line(failure.result.stderr) or f"exit status {failure.result.exit_code}"


def _failed(task: Task, code: int, error: str, service: Service) -> Task:
    if code == docker.DAEMON_DOWN:
        return _rejected(task, "the Docker daemon does not answer on this node")
    if code == docker.PULL_FAILED:
        return _rejected(
            task,
            f"No such image: {service.spec.image} (no node has it and pulling it failed: {error})",
        )
    if code == docker.CREATE_FAILED:
        return _rejected(task, error)
    return stamp(
        task, TaskState.FAILED, error=f"starting container failed: {error}", message="failed"
    )


def _fetch_image(conn: Host, image: str, pool: Hosts, nodes: dict[str, Node]) -> bool:
    """Air-gapped nodes: copy the image from a peer that has it (docker save | docker load)."""
    for node in nodes.values():
        if node.hostname == conn.name or node.hostname not in pool:
            continue
        peer = pool[node.hostname]
        try:  # a peer without the image fails `docker save` at once
            archive = peer.output(docker.save_image(image), timeout=START_TIMEOUT)
            conn.run(docker.load_image(), stdin=archive, timeout=START_TIMEOUT)
            return True
        except SwarmctlError:
            continue
    return False
