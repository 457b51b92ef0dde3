"""Overlay networks end to end: create, remove, and converging nodes to them.

The state is written first (the network, each node's block, "pending" for every node),
then every node converges over SSH in parallel; a node that cannot be reached stays
pending with the reason and catches up at the next converge (the next `network`
command, join, or supervisor tick), since converging is level-triggered.
The routing mesh and virtual IPs of every node are converged the same way
(`converge_mesh`), from network/mesh's per-node data.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from swarmctl import clock, executor, pause
from swarmctl.commands import steps
from swarmctl.commands.render import render
from swarmctl.errors import SwarmctlError
from swarmctl.hoststep import HostStep
from swarmctl.models import Cluster, Network, Node, NodeState, Service, Task
from swarmctl.naming import new_id, valid_name
from swarmctl.network import ipam
from swarmctl.network.mesh import (
    INGRESS,
    MESH_MARK,
    NodeServices,
    node_services,
    probability,
    task_networks,
)
from swarmctl.network.overlay import assign_ranges, node_overlays
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from swarmctl.transport.group import Pool

DOCKER_BRIDGE = "172.17.0.0/16"  # each node's docker0


@dataclass(frozen=True)
class NetworkOptions:
    name: str
    subnet: str | None = None
    gateway: str | None = None
    mtu: int = 1450
    vxlan_port: int | None = None
    attachable: bool = False
    labels: dict[str, str] | None = None


def parse_opts(opts: Sequence[str]) -> dict[str, int]:
    """`--opt mtu=1400 --opt vxlan-port=4790` (docker's driver options we support)."""
    known = {
        "mtu": ipam.validate_mtu,
        "vxlan-port": ipam.validate_vxlan_port,
        "com.docker.network.driver.mtu": ipam.validate_mtu,
    }
    values = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or key not in known:
            raise SwarmctlError(f"--opt {opt!r}: expected mtu=N or vxlan-port=N")
        values["mtu" if "mtu" in key else key] = known[key](value)
    return values


def create(store: StateStore, pool: Pool, opts: NetworkOptions) -> tuple[Network, list[str]]:
    """Record the network, then set it up on every node; returns it and any warnings."""
    with store.transaction() as db:
        repo = Repo(db)
        network = record_new(repo, opts)
        nodes = repo.nodes.all()
    return network, converge(store, pool, nodes)


def record_new(repo: Repo, opts: NetworkOptions) -> Network:
    """`network create`'s checks and record, in the caller's transaction (or snapshot)."""
    if not valid_name(opts.name):
        raise SwarmctlError(
            f"network name {opts.name!r}: use letters, digits, '_' and '-' "
            "(at most 63, starting with a letter or digit)"
        )
    repo.cluster()
    if any(n.name == opts.name for n in repo.networks.all()):
        raise SwarmctlError(f"network with name {opts.name} already exists")
    if opts.name == INGRESS:
        raise SwarmctlError("network name ingress is kept for the routing mesh")
    return record(repo, opts)


def add_ingress(repo: Repo) -> Network:
    """The routing mesh's network, made when a service first publishes an ingress port."""
    return record(repo, NetworkOptions(name=INGRESS, labels={"swarmctl.ingress": "true"}))


def record(repo: Repo, opts: NetworkOptions) -> Network:
    """Record a new network in the caller's transaction; its nodes converge afterwards."""
    networks, nodes = repo.networks.all(), repo.nodes.all()
    network = assign_ranges(_new_network(repo.cluster(), networks, nodes, opts), nodes)
    repo.networks.put(network)
    return network


def _new_network(
    cluster: Cluster, networks: list[Network], nodes: list[Node], opts: NetworkOptions
) -> Network:
    underlays = [n.facts.network or f"{n.address}/32" for n in nodes] + [DOCKER_BRIDGE]
    if opts.subnet:
        subnet, gateway = ipam.check_subnet(
            opts.subnet, opts.gateway, {n.name: n.subnet for n in networks}, underlays
        )
    else:
        if opts.gateway:
            raise SwarmctlError("--gateway needs --subnet")
        subnet = ipam.allocate_subnet(
            cluster.default_addr_pool, cluster.subnet_size, [n.subnet for n in networks], underlays
        )
        subnet, gateway = ipam.check_subnet(subnet, None, {}, [])
    return Network(
        id=new_id(),
        name=opts.name,
        subnet=subnet,
        gateway=gateway,
        vni=ipam.allocate_vni(n.vni for n in networks),
        created_at=clock.now(),
        mtu=opts.mtu,
        vxlan_port=opts.vxlan_port or cluster.vxlan_port,
        attachable=opts.attachable,
        labels=dict(opts.labels or {}),
    )


def remove(store: StateStore, pool: Pool, ref: str) -> tuple[Network, list[str]]:
    with store.transaction() as db:
        repo = Repo(db)
        network = record_remove(repo, ref)
        nodes = repo.nodes.all()
    return network, converge(store, pool, nodes)


def record_remove(repo: Repo, ref: str) -> Network:
    """Forget the network in the caller's transaction (or snapshot), if no service uses it."""
    network = repo.networks.get(ref)
    users = [s.spec.name for s in repo.services.all() if network.name in task_networks(s.spec)]
    if users:
        raise SwarmctlError(
            f"network {network.name} is in use by service "
            f"{', '.join(sorted(users))}: remove the service first"
        )
    repo.networks.delete([network.id])
    return network


def converge(store: StateStore, pool: Pool, targets: Iterable[Node]) -> list[str]:
    """Bring `targets` to the overlay state the cluster wants; returns warnings, one line
    for each node that has networks and could not be converged."""
    targets = list(targets)
    with store.read() as db:
        repo = Repo(db)
        cluster, networks, nodes = repo.cluster(), repo.networks.all(), repo.nodes.all()
    members = {n.id for n in nodes}
    targets = [t for t in targets if t.id in members]
    results = executor.run_steps(
        pool, [steps.overlay(node_overlays(cluster, networks, nodes, t)) for t in targets]
    )
    errors = {
        t.id: str(results[t.hostname])
        for t in targets
        if isinstance(results[t.hostname], SwarmctlError)
    }
    _record_pending(store, {t.id for t in targets}, errors)
    with_networks = {i for n in networks for i in n.node_ranges}
    return [
        f"{error}: its overlay networks will be set up when it is reachable again"
        for node_id, error in errors.items()
        if node_id in with_networks
    ]


def _record_pending(store: StateStore, converged: set[str], errors: dict[str, str]) -> None:
    with store.transaction() as db:
        repo = Repo(db)
        for network in repo.networks.all():
            # A node without a block waits for address space, not for a converge.
            pending = {
                k: v
                for k, v in network.pending.items()
                if k not in converged or k in errors or k not in network.node_ranges
            }
            pending.update({k: v for k, v in errors.items() if k in network.node_ranges})
            if pending != network.pending:
                repo.networks.put(replace(network, pending=pending))


# The helpers' built-in image, carried by every converge script that may need it.
PAUSE_ARCHIVES = {arch: pause.archive_base64(arch) for arch in ("amd64", "arm64")}


def converge_mesh(store: StateStore, pool: Pool, skip: Collection[str] = ()) -> list[str]:
    """Every reachable node but those in `skip` (ids of nodes known not to answer now,
    brought up to date when they are back): virtual-IP helpers, ingress and VIP rules
    as they should be."""
    with store.read() as db:
        repo = Repo(db)
        cluster, nodes = repo.cluster(), repo.nodes.all()
        services, tasks, networks = repo.services.all(), repo.tasks.all(), repo.networks.all()
    results = executor.run_steps(pool, mesh_steps(cluster, nodes, services, tasks, networks, skip))
    warnings = []
    for name, result in results.items():
        if isinstance(result, SwarmctlError):
            warnings.append(f"{result}: its routing mesh will be updated at the next change")
        elif result.exit_code != 0:  # one line per failed step; the other steps were done
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            warnings += [f"{name}: {line}" for line in lines or [f"exit {result.exit_code}"]]
    return warnings


def mesh_steps(
    cluster: Cluster,
    nodes: Sequence[Node],
    services: Sequence[Service],
    tasks: Sequence[Task],
    networks: Sequence[Network],
    skip: Collection[str] = (),
) -> list[HostStep]:
    """The mesh script of every node seen ready (not down or unknown) and not in `skip`."""
    return [
        steps.mesh(
            n.hostname,
            mesh_script(
                node_services(cluster.id, n, services, tasks, networks, cluster.helper_image)
            ),
        )
        for n in nodes
        if n.state == NodeState.READY and n.id not in skip
    ]


def mesh_script(wanted: NodeServices) -> str:
    return render(
        "services/converge.sh.j2",
        s=wanted,
        mark=MESH_MARK,
        probability=probability,
        pause_image=pause.IMAGE,
        pause=PAUSE_ARCHIVES,
        at_once=executor.PER_NODE,
    )
