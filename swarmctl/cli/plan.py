"""`--dry-run` of every command that changes a cluster, and the printing of its plan.

The command's change is recorded, with the code the real command records it with, on a
snapshot of the state that is never written (as `stack deploy --dry-run` does); what
applying it would do is then read off the two snapshots: spec fields that change, tasks
the reconciler would start (where the scheduler puts them) and stop, nodes and networks,
and the overlays and routing-mesh rules each node would gain or lose. No host is asked.
Exit status as `nomad job plan`: 0 nothing would change, 2 something would.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import NoReturn

import typer

from swarmctl.models import Availability, Mode, Network, Node, Service, StoredFile, Task, TaskState
from swarmctl.stack.plan import diff, shown

CHANGES_PLANNED = 2  # --dry-run's exit status when the command would change something


@dataclass
class Change:
    """What a command's record step says beyond the records: the services it converges
    next, and what it does on hosts that no record shows (a host cleaned on leave)."""

    converge: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _View:
    cluster_id: str
    helper_image: str
    services: list[Service]
    tasks: list[Task]
    nodes: list[Node]
    networks: list[Network]
    files: dict[tuple[str, str], StoredFile]  # (kind, id): secrets and configs

    @classmethod
    def of(cls, repo) -> "_View":
        cluster = repo.cluster()
        return cls(
            cluster.id,
            cluster.helper_image,
            repo.services.all(),
            repo.tasks.all(),
            repo.nodes.all(),
            repo.networks.all(),
            {(k, f.id): f for k in ("secret", "config") for f in repo.files(k).all()},
        )


def dry_run(store, change: Callable[..., object]) -> NoReturn:
    """Record `change(repo)` on a snapshot, print what it would do, and exit 2 (or 0 when
    it would change nothing). Bad input raises from `change` as it would for real; a
    `change` that returns no Change converges the services whose records it changed."""
    from swarmctl.state.repo import Repo

    with store.read() as db:
        repo = Repo(db)
        before = _View.of(repo)
        done = change(repo)
        done = done if isinstance(done, Change) else Change()
        after = _View.of(repo)
    lines = plan_lines(before, after, done, datetime.now(UTC))
    typer.echo("\n".join(lines or ["Nothing would change."]))
    raise typer.Exit(CHANGES_PLANNED if lines else 0)


def plan_lines(before: _View, after: _View, change: Change, now: datetime) -> list[str]:
    from swarmctl.naming import new_id
    from swarmctl.reconciler import reconcile

    services = _service_lines(before, after)
    only = change.converge | {s.id for s in _changed(before.services, after.services)}
    tasks: list[str] = []
    if only:
        renew = _renew(after, only, now)
        plan = reconcile(
            after.services,
            after.tasks,
            after.nodes,
            now,
            new_id,
            only=only,
            networks=after.networks,
            renew=renew,
        )
        tasks = _task_lines(before, after, plan, renew)
    return [
        *_file_lines(before.files, after.files),
        *services,
        *_node_lines(before.nodes, after.nodes),
        *_network_lines(before.networks, after.networks),
        *_overlay_lines(before, after),
        *_mesh_lines(before, after),
        *tasks,
        *change.notes,
    ]


def _changed(before: list[Service], after: list[Service]) -> list[Service]:
    old = {s.id: s for s in before}
    new = {s.id: s for s in after}
    return [s for i, s in {**old, **new}.items() if old.get(i) != new.get(i)]


def _file_lines(before: dict, after: dict) -> list[str]:
    """Secrets and configs created, given a new value or removed: never the value."""
    lines = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: (after.get(k) or before[k]).name):
        kind, was, now = key[0], before.get(key), after.get(key)
        if was is None:
            lines.append(f"+ {kind} {now.name}")
        elif now is None:
            lines.append(f"- {kind} {was.name}")
        elif was.version != now.version:
            lines.append(f"~ {kind} {now.name}: a new value (version {now.version})")
    return lines


def _service_lines(before: _View, after: _View) -> list[str]:
    old = {s.id: s for s in before.services}
    lines = []
    for service in sorted(after.services, key=lambda s: s.spec.name):
        was = old.pop(service.id, None)
        spec = service.spec
        if was is None:
            count = "global" if spec.mode == Mode.GLOBAL else f"{spec.replicas} replica(s)"
            lines.append(f"+ service {spec.name} ({spec.image}, {count})")
        elif was.spec != spec:
            lines.append(f"~ service {spec.name}")
            lines += [f"    {change}" for change in diff(was.spec, spec)]
        elif was.update_status != service.update_status:
            lines.append(f"~ service {spec.name} (every task replaced, spec unchanged)")
    lines += [f"- service {s.spec.name}" for s in sorted(old.values(), key=lambda s: s.spec.name)]
    return lines


def _renew(view: _View, only: set[str], now: datetime) -> dict:
    """The slots an update, a rollback or a drain renews in its first batch, as the
    command's first round would name them."""
    from swarmctl.rolling import decide, decide_drain

    renew = {}
    for service in view.services:
        if service.id in only:
            step = decide(service, view.tasks, now) or decide_drain(
                service, view.tasks, view.nodes, now
            )
            if step and step.renew:
                renew[service.id] = step.renew
    return renew


def _task_lines(before: _View, after: _View, plan, renew: dict) -> list[str]:
    nodes = {n.id: n.hostname for n in (*before.nodes, *after.nodes)}
    services = {s.id: s for s in (*before.services, *after.services)}
    was = {t.id: t for t in after.tasks}

    def name(task: Task) -> str:
        service = services.get(task.service_id)
        slot = nodes.get(task.node_id, task.node_id[:12]) if task.slot == 0 else task.slot
        return f"{service.spec.name if service else task.service_id[:12]}.{slot}"

    def where(task: Task) -> str:
        if task.state == TaskState.PENDING:
            return f": pending ({task.error})"
        return f" on {nodes.get(task.node_id, task.node_id[:12])}"

    lines = []
    for service_id in renew:
        service = services[service_id]
        policy = service.update_policy
        stale = [
            t
            for t in after.tasks
            if t.service_id == service_id
            and t.desired_state == TaskState.RUNNING
            and (t.spec_version < service.version or t.node_id not in _schedulable(after.nodes))
        ]
        lines.append(
            f"~ tasks of {service.spec.name}: {len(stale)} to replace, "
            f"{policy.parallelism or 'all'} at a time ({shown(policy.order)}); the first batch:"
        )
    for task in plan.shutdown:
        lines.append(f"- task {name(task)}{where(task)} ({task.message})")
    for task in plan.create:
        lines.append(f"+ task {name(task)}{where(task)}")
    for task in plan.update:
        old = was.get(task.id)
        if old is None or (old.node_id, old.state) != (task.node_id, task.state):
            lines.append(f"~ task {name(task)}{where(task)}")
    return lines


def _schedulable(nodes: list[Node]) -> set[str]:
    return {n.id for n in nodes if n.availability != Availability.DRAIN}


def _unstamped(node: Node) -> Node:
    return replace(node, updated_at="", version=0)  # bookkeeping of every change


def _node_lines(before: list[Node], after: list[Node]) -> list[str]:
    old = {n.id: n for n in before}
    lines = []
    for node in sorted(after, key=lambda n: n.hostname):
        was = old.pop(node.id, None)
        if was is None:
            lines.append(f"+ node {node.hostname}")
            continue
        changes = diff(_unstamped(was), _unstamped(node))
        if changes:
            lines += [f"~ node {node.hostname}", *(f"    {c}" for c in changes)]
    lines += [f"- node {n.hostname}" for n in sorted(old.values(), key=lambda n: n.hostname)]
    return lines


def _network_lines(before: list[Network], after: list[Network]) -> list[str]:
    old = {n.id for n in before}
    new = {n.id for n in after}
    return [f"+ network {n.name} ({n.subnet})" for n in after if n.id not in old] + [
        f"- network {n.name}" for n in before if n.id not in new
    ]


def _overlay_lines(before: _View, after: _View) -> list[str]:
    """Each node's overlays (VXLAN device, macvlan shim, peers, firewall rules) that change."""
    from swarmctl.models import Cluster
    from swarmctl.network.overlay import node_overlays, underlay_address

    def per_node(view: _View) -> dict[str, dict]:
        cluster = Cluster(id=view.cluster_id, created_at="")
        return {
            n.hostname: {
                o.name: o for o in node_overlays(cluster, view.networks, view.nodes, n).networks
            }
            for n in view.nodes
        }

    hosts = {underlay_address(n): n.hostname for n in (*before.nodes, *after.nodes)}
    old, new = per_node(before), per_node(after)
    changes: dict[str, list[str]] = defaultdict(list)
    for host in sorted(old.keys() | new.keys()):
        had, has = old.get(host, {}), new.get(host, {})
        for network in sorted(had.keys() | has.keys()):
            if network not in had:
                changes[f"+ overlay {network}"].append(host)
            elif network not in has:
                changes[f"- overlay {network}"].append(host)
            else:
                was, now = had[network], has[network]
                for peer in sorted(set(now.peers) - set(was.peers)):
                    changes[f"+ overlay {network} peer {hosts[peer]} ({peer})"].append(host)
                for peer in sorted(set(was.peers) - set(now.peers)):
                    changes[f"- overlay {network} peer {hosts[peer]} ({peer})"].append(host)
                for line in diff(replace(was, peers=()), replace(now, peers=())):
                    changes[f"~ overlay {network}: {line}"].append(host)
    return _grouped(changes)


def _mesh_lines(before: _View, after: _View) -> list[str]:
    """Each node's routing-mesh ports, virtual IPs and VIP helpers that change."""
    from swarmctl.network.mesh import node_services

    def per_node(view: _View) -> dict[str, set[tuple[int, str]]]:
        found = {}
        for node in view.nodes:
            wanted = node_services(
                view.cluster_id, node, view.services, (), view.networks, view.helper_image
            )
            found[node.hostname] = {
                *((1, f"ingress port {p.published}/{p.protocol}") for p in wanted.ports),
                *((2, f"virtual IP {v.address}") for v in wanted.vips),
                *((3, f"VIP helper {h.name} ({h.address})") for h in wanted.helpers),
            }
        return found

    old, new = per_node(before), per_node(after)
    changes: dict[str, list[str]] = defaultdict(list)
    for host in sorted(old.keys() & new.keys()):  # a node that goes is cleaned whole
        for _, rule in sorted(new[host] - old[host]):
            changes[f"+ {rule}"].append(host)
        for _, rule in sorted(old[host] - new[host]):
            changes[f"- {rule}"].append(host)
    return _grouped(changes)


def _grouped(changes: dict[str, list[str]]) -> list[str]:
    return [f"{change} on {', '.join(hosts)}" for change, hosts in changes.items()]


def leaving(repo, nodes: list[Node], inventory_hosts) -> Change:
    """`leave` and `node rm` on a snapshot: the nodes forgotten, their hosts cleaned; the
    supervisor then replaces their tasks elsewhere, which the plan shows."""
    from swarmctl.membership import record_leave

    notes = []
    for node in nodes:
        record_leave(repo, node)
        notes.append(
            f"- every container of the cluster on {node.hostname} (the host is cleaned)"
            if node.hostname in inventory_hosts
            else f"  {node.hostname} is not in the inventory: its containers are left as they are"
        )
    gone = {n.id for n in nodes}
    moved = {t.service_id for t in repo.tasks.all() if t.node_id in gone}
    if moved:
        notes.append("  (the supervisor starts the tasks of a node that left elsewhere)")
    return Change(moved, notes)


def print_stack_plan(plan, files: list[str]) -> None:
    """`stack deploy --dry-run`: the stack's services and networks, field by field."""
    lines = [f"{'+' if f.startswith('Creating') else '~'} {f.split(' ', 1)[1]}" for f in files]
    lines += [f"+ network {n.name}" for n in plan.networks]
    lines += [f"+ service {s.name}" for s in plan.create]
    for update in plan.update:
        lines.append(f"~ service {update.spec.name}")
        lines += [f"    {change}" for change in update.changes]
    lines += [f"- service {s.spec.name}" for s in plan.remove]
    lines += [f"= service {s.spec.name} (unchanged)" for s in plan.unchanged]
    counts = (
        f"{len(plan.create)} to create, {len(plan.update)} to update, "
        f"{len(plan.remove)} to remove, {len(plan.unchanged)} unchanged"
        + (f", {len(plan.networks)} network(s) to create" if plan.networks else "")
    )
    typer.echo("\n".join([f"Stack {plan.stack}:", *lines, counts]))
