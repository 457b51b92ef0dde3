"""Cluster membership: init, join, leave — seed's `docker swarm init`/`join`/`leave`.

Each host is provisioned over SSH first; the state changes in one transaction at the
end, so an interrupted join leaves the state exactly as before, and a finished one
exactly as after. Hosts are handled in parallel; one failing host fails only itself.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from swarmctl import clock, executor
from swarmctl.commands import steps
from swarmctl.errors import SwarmctlError
from swarmctl.inventory import Inventory
from swarmctl.models import Cluster, Node, Role
from swarmctl.naming import new_id
from swarmctl.network import networking
from swarmctl.network.overlay import assign_ranges, forget_node
from swarmctl.provision import Provisioned, provision
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from swarmctl.transport.group import Pool
from swarmctl.transport.ssh import Trust

Say = Callable[[str], None]


@dataclass(frozen=True)
class JoinOutcome:
    joined: list[Node]
    failed: dict[str, str]  # host -> one-line reason
    warnings: list[str] = field(default_factory=list)


def recorded_trust(store: StateStore, accept_new: bool = False) -> Trust:
    """Host keys trusted on first use earlier, as the cluster state recorded them."""
    recorded = {}
    if store.exists():
        with store.read() as db:
            recorded = {n.hostname: n.host_key for n in Repo(db).nodes.all() if n.host_key}
    return Trust(recorded=recorded, accept_new=accept_new)


def init(
    store: StateStore,
    inventory: Inventory,
    pool: Pool,
    host: str | None,
    *,
    listen_addr: str | None,
    vxlan_port: int | None,
    pools: Sequence[str],
    pool_mask: int,
    say: Say,
) -> Node:
    if store.exists():
        with store.read() as db:
            existing = Repo(db).find_cluster()
        if existing:
            raise SwarmctlError(
                f"{store.path} already holds cluster {existing.id}: use "
                "`swarmctl join` to add hosts, or --state for another cluster"
            )
    target = inventory.get(host or _first_manager(inventory))
    done = provision(pool, [target.name], listen_addr=listen_addr)[target.name]
    if isinstance(done, SwarmctlError):
        raise done
    now = clock.now()
    node = _new_node(target.name, Role.MANAGER, done, pool.trust, target.labels, now, leader=True)
    cluster = Cluster(
        id=new_id(),
        created_at=now,
        default_addr_pool=tuple(pools),
        subnet_size=pool_mask,
        vxlan_port=vxlan_port or 4789,
    )
    if not store.exists():
        store.create()
    with store.transaction() as db:
        repo = Repo(db)
        if repo.find_cluster():
            raise SwarmctlError(f"{store.path} already holds a cluster (created meanwhile)")
        repo.set_cluster(cluster)
        repo.nodes.put(node)
    say(f"Swarm initialized: current node ({node.id}) is now a manager.")
    say("")
    say("To add a worker to this swarm, run the following command:")
    say("")
    say("    swarmctl join --all      (or: swarmctl join HOST…)")
    return node


def _first_manager(inventory: Inventory) -> str:
    managers = [h.name for h in inventory.hosts.values() if h.role == Role.MANAGER]
    return (managers or list(inventory.hosts))[0]


def _new_node(
    hostname: str,
    role: Role,
    done: Provisioned,
    trust: Trust,
    labels: dict,
    now: str,
    leader: bool = False,
) -> Node:
    return Node(
        id=new_id(),
        hostname=hostname,
        role=role,
        address=done.facts.address,
        created_at=now,
        updated_at=now,
        labels=dict(labels),
        leader=leader,
        facts=done.facts,
        host_key=trust.learned.get(hostname, ""),
        last_seen=now,
    )


def join(
    store: StateStore,
    inventory: Inventory,
    pool: Pool,
    names: Sequence[str],
    *,
    role: Role | None,
    everyone: bool,
    dry_run: bool,
    say: Say,
) -> JoinOutcome:
    with store.read() as db:
        repo = Repo(db)
        repo.cluster()
        members = {n.hostname: n for n in repo.nodes.all()}
    if everyone:
        names = [n for n in inventory.hosts if n not in members]
        if not names:
            say("every inventory host is already a member")
            return JoinOutcome([], {})
    if not names:
        raise SwarmctlError("name the hosts to join, or pass --all")
    failed: dict[str, str] = {}
    targets = []
    for name in dict.fromkeys(names):
        target = inventory.get(name)
        if name in members:
            failed[name] = (
                f"{name} is already a member of this cluster (as a {members[name].role.value})"
            )
        else:
            targets.append(target)
    results = provision(pool, [t.name for t in targets], dry_run=dry_run)
    roles = {t.name: role or Role(t.role) for t in targets}
    ready = {}
    for name, result in results.items():
        if isinstance(result, SwarmctlError):
            failed[name] = str(result)
        elif dry_run:
            _say_plan(say, name, roles[name], result)
        else:
            ready[name] = result
    joined = [] if dry_run else _record(store, inventory, ready, roles, pool.trust, failed)
    warnings = networking.converge(store, pool, _nodes(store)) if joined else []
    for node in joined:
        say(f"{node.hostname}: This node joined a swarm as a {node.role.value}.")
    return JoinOutcome(joined, failed, warnings)


def _nodes(store: StateStore) -> list[Node]:
    with store.read() as db:
        return Repo(db).nodes.all()


def _say_plan(say: Say, name: str, role: Role, done: Provisioned) -> None:
    facts = done.facts
    say(
        f"{name}: would join as a {role.value} ({facts.os}, kernel {facts.kernel}, "
        f"Docker {facts.engine_version or 'absent'}, overlay via {facts.iface} {facts.address})"
    )
    for step in done.plan.describe():
        say(f"  - {step}")


def _record(
    store: StateStore,
    inventory: Inventory,
    ready: dict[str, Provisioned],
    roles: dict[str, Role],
    trust: Trust,
    failed: dict[str, str],
) -> list[Node]:
    now = clock.now()
    joined = []
    with store.transaction() as db:
        repo = Repo(db)
        nodes = repo.nodes.all()
        names = {n.hostname for n in nodes}
        addresses = {n.address: n.hostname for n in nodes}
        for name, done in ready.items():
            if name in names:
                failed[name] = f"{name} is already a member of this cluster"
                continue
            if done.facts.address in addresses:
                failed[name] = (
                    f"{name}: its overlay address {done.facts.address} is already "
                    f"used by node {addresses[done.facts.address]}"
                )
                continue
            node = _new_node(name, roles[name], done, trust, inventory.get(name).labels, now)
            repo.nodes.put(node)
            addresses[node.address] = name
            joined.append(node)
        # In the same transaction: a member always has its block of every network.
        for network in repo.networks.all():
            repo.networks.put(assign_ranges(network, joined))
    return joined


def leave(
    store: StateStore, inventory: Inventory, pool: Pool, ref: str, *, force: bool, say: Say
) -> tuple[Node, list[str]]:
    """Remove a node: clean its host when reachable, then forget it; returns warnings too."""
    warnings: list[str] = []
    with store.read() as db:
        repo = Repo(db)
        cluster = repo.cluster()
        node = check_leave(repo, inventory, ref, force)
    if node.hostname in inventory.hosts:
        outcome = executor.run_steps(pool, steps.clean(cluster.id, node.hostname))[node.hostname]
        if isinstance(outcome, SwarmctlError):
            if not force:
                raise SwarmctlError(
                    f"{outcome}: use --force to remove {node.hostname} from the cluster anyway"
                )
            warnings.append(f"{outcome} (its containers were left as they are)")
    with store.transaction() as db:
        record_leave(Repo(db), node)
    warnings += networking.converge(store, pool, _nodes(store))
    say(f"{node.hostname}: Node left the swarm.")
    return node, warnings


def check_leave(repo: Repo, inventory: Inventory, ref: str, force: bool) -> Node:
    """The node `leave` would remove, if it may (a host it cannot clean needs --force)."""
    node = repo.nodes.get(ref)
    if node.leader and len(repo.nodes.all()) > 1 and not force:
        raise SwarmctlError(
            f"node {node.hostname} is the leader: removing it needs --force "
            "(another manager, if any, becomes the leader)"
        )
    if node.hostname not in inventory.hosts and not force:
        raise SwarmctlError(
            f"node {node.hostname} is not in inventory {inventory.path}: "
            "use --force to remove it without cleaning the host"
        )
    return node


def record_leave(repo: Repo, node: Node) -> None:
    """Forget the node in the caller's transaction (or snapshot): its blocks of the
    overlay networks too; another manager becomes the leader if it was."""
    repo.nodes.delete([node.id])
    for network in repo.networks.all():
        repo.networks.put(forget_node(network, node.id))
    if node.leader:
        managers = [n for n in repo.nodes.all() if n.role == Role.MANAGER]
        if managers:
            repo.nodes.put(_with_leader(managers[0]))


def _with_leader(node: Node) -> Node:
    return replace(node, leader=True, updated_at=clock.now(), version=node.version + 1)
