"""Reading and tidying what the nodes run, around the pure merge of observe.py.

The supervisor's observe round lists containers and removes strays with these; a command
about to change services catches up with them first (catch_up), so that what a command
interrupted mid-way started or failed to start is adopted, removed or started again
instead of being planned around. Deciding stays in observe.py and reconciler.py.
"""

from datetime import UTC, datetime

from swarmctl import executor, observe
from swarmctl.errors import SwarmctlError
from swarmctl.models import Node, NodeState, Task, TaskState
from swarmctl.naming import LABEL_CLUSTER, LABEL_TASK_ID
from swarmctl.repo import Repo
from swarmctl.state import StateStore
from swarmctl.transport.engine import Engine, NotFound
from swarmctl.transport.group import Pool
from swarmctl.transport.ssh import SSHConnection

ENGINE_TIMEOUT = 10.0


def list_containers(engine: Engine, cluster_id: str) -> list[observe.Container]:
    """Every task container of the cluster on the engine's node, in one request."""
    listed = engine.get(
        "/containers/json",
        all="1",
        filters={"label": [f"{LABEL_CLUSTER}={cluster_id}", LABEL_TASK_ID]},
    )
    # Only a container that stopped needs its full record (exit code, OOM); one removed
    # meanwhile is simply gone.
    containers = []
    for summary in listed:
        try:
            detail = (
                None
                if summary.get("State") == "running"
                else engine.get(f"/containers/{summary['Id']}/json")
            )
        except NotFound:
            continue
        containers.append(observe.from_api(summary, detail))
    return containers


def remove_strays(
    store: StateStore, pool: Pool, remove: dict[str, list[str]], nodes: list[Node]
) -> list[str]:
    """Remove containers no task wants (node id -> container IDs); record the tasks
    whose containers are now gone as shut down. Returns warnings."""
    if not remove:
        return []
    names = {n.id: n.hostname for n in nodes}
    by_host = {names[node_id]: ids for node_id, ids in remove.items() if node_id in names}
    results = pool.each(lambda conn: _rm(conn, by_host[conn.name]), list(by_host))
    gone = {
        cid
        for host, ids in by_host.items()
        if not isinstance(results[host], SwarmctlError)
        for cid in ids
    }
    with store.read() as db:
        tasks = Repo(db).tasks.all()
    # States only move forward: a failed task stays failed, its container gone.
    shut = [
        observe.stamp(t, TaskState.SHUTDOWN, message="shut down")
        for t in tasks
        if t.container_id in gone and t.desired_state != TaskState.RUNNING and not t.state.terminal
    ]
    executor.save(store, shut, known_only=True)
    return [str(r) for r in results.values() if isinstance(r, SwarmctlError)]


def _rm(conn: SSHConnection, ids: list[str]) -> None:
    """docker rm -f, where a container already gone, or going (a command removing the
    same service right now), is as good as removed."""
    result = conn.run(["docker", "rm", "-f", *ids], timeout=30, check=False)
    errors = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "already in progress" not in line and "No such container" not in line
    ]
    if result.exit_code and errors:
        raise SwarmctlError(f"{conn.name}: docker rm -f failed: {errors[-1]}")


def catch_up(
    store: StateStore, pool: Pool, service_ids: set[str]
) -> tuple[bool, list[Task], list[str]]:
    """Before a command plans for these services (under their leases): if a start or a
    stop of theirs was never recorded, look at what the nodes run — adopt the containers
    of tasks, remove those no task of theirs wants, and return the tasks that never got
    a container, to be started at once (the lease says nobody else is starting them; a
    start still in flight is taken over by its container's name).

    Returns (whether anything was recorded or removed, tasks to start, warnings). Nodes
    that cannot be read tell nothing: their tasks stay as recorded."""
    with store.read() as db:
        repo = Repo(db)
        tasks = [t for t in repo.tasks.all() if t.service_id in service_ids]
        if not observe.unsettled(tasks):
            return False, [], []
        cluster_id = repo.cluster().id
        nodes = [n for n in repo.nodes.all() if n.state != NodeState.DOWN]

    def look(conn: SSHConnection) -> list[observe.Container]:
        engine = Engine(conn, ENGINE_TIMEOUT)
        try:
            return list_containers(engine, cluster_id)
        finally:
            engine.close()

    results = pool.each(look, [n.hostname for n in nodes])
    seen = {
        n.id: [c for c in found if c.service_id in service_ids]
        for n in nodes
        if isinstance(found := results.get(n.hostname), list)
    }
    merged = observe.merge(tasks, seen, datetime.now(UTC), grace=0)
    executor.save(store, merged.changed, known_only=True)
    warnings = remove_strays(store, pool, merged.remove, nodes)
    acted = bool(merged.changed or merged.remove or merged.start)
    return acted, merged.start, warnings
