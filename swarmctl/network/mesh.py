"""What each node should have so services can be reached: the routing mesh and the
virtual IPs behind service names, as plain data (pure).

This kernel has no IPVS, which swarm's mesh needs, so the mesh is built like
kube-proxy's iptables mode (docs/design/services.md):
- Ingress: a published port answers on every node. nat PREROUTING/OUTPUT DNATs it to a
  running task's address on the `ingress` overlay, chosen at random with equal odds
  (the statistic match), and masquerades it to the node's own address there so replies
  come back through the node that DNATed them.
- Service names: on every node, a helper container on each of the service's networks
  holds the service's virtual IP and the service name as a network alias, so Docker's
  embedded DNS answers the name with the VIP; the node itself answers for the VIP (the
  helper ignores ARP), and nat PREROUTING DNATs it to a running task of the service on
  that network and masquerades it, as the ingress.
templates/services/converge.sh.j2 turns a NodeServices into commands.
"""

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swarmctl.models import Network, Node, PublishMode, Service, ServiceSpec, Task, TaskState
from swarmctl.network.overlay import device_names

INGRESS = "ingress"
MESH_MARK = "0x100000"


def task_networks(spec: ServiceSpec) -> list[str]:
    """The Docker networks a task joins: the service's, and `ingress` for its mesh ports."""
    names = list(spec.networks)
    if any(p.mode == PublishMode.INGRESS for p in spec.ports):
        names.append(INGRESS)
    return names


@dataclass(frozen=True)
class Destination:
    """One balanced set of targets, in its own nat chain."""

    chain: str
    targets: tuple[str, ...]  # "ip:port" (ingress) or "ip" (VIP: every port)


@dataclass(frozen=True)
class IngressPort:
    protocol: str
    published: int
    destination: Destination


@dataclass(frozen=True)
class VirtualIP:
    address: str
    destination: Destination


@dataclass(frozen=True)
class Helper:
    name: str  # container name
    service: str  # the DNS name it answers for
    network: str
    address: str
    aliases: tuple[str, ...] = ()  # more names it answers for on this network


@dataclass(frozen=True)
class NodeServices:
    cluster_id: str
    node: str
    ports: tuple[IngressPort, ...]
    vips: tuple[VirtualIP, ...]
    helpers: tuple[Helper, ...]
    helper_image: str
    # (host's port, IP, MAC) of every running task on the node's overlay networks: the
    # host knows where each task is and does not flood the overlay with ARP for one.
    neighbours: tuple[tuple[str, str, str], ...] = ()
    shims: tuple[str, ...] = ()  # the host's macvlan ports, whose neighbours it owns


def chain(kind: str, *parts: str) -> str:
    """A stable nat chain name (iptables allows 28 characters)."""
    return f"SW{kind}-" + hashlib.sha1("/".join(parts).encode()).hexdigest()[:12]


def _ipv4(address: str) -> str:
    return str(ipaddress.IPv4Address(address))


def node_services(
    cluster_id: str,
    node: Node,
    services: Sequence[Service],
    tasks: Iterable[Task],
    networks: Sequence[Network],
    helper_image: str,
) -> NodeServices:
    running: dict[str, list[Task]] = {}
    for task in tasks:
        if task.state == TaskState.RUNNING and task.desired_state == TaskState.RUNNING:
            running.setdefault(task.service_id, []).append(task)
    by_id = {n.id: n for n in networks}
    ingress = next((n for n in networks if n.name == INGRESS), None)
    ports, vips, helpers = [], [], []
    for service in sorted(services, key=lambda s: s.spec.name):
        tasks_of = sorted(running.get(service.id, []), key=lambda t: t.id)
        for port in service.spec.ports:
            if port.mode != PublishMode.INGRESS or ingress is None:
                continue
            published = service.published.get(f"{port.target}/{port.protocol}", port.published)
            targets = tuple(
                f"{_ipv4(t.addresses[INGRESS])}:{port.target}"
                for t in tasks_of
                if INGRESS in t.addresses
            )
            ports.append(
                IngressPort(
                    port.protocol,
                    int(published),
                    Destination(chain("I", service.id, str(published), port.protocol), targets),
                )
            )
        for network_id, vip in sorted(service.vips.items()):
            network = by_id.get(network_id)
            if network is None:
                continue
            targets = tuple(
                _ipv4(t.addresses[network.name]) for t in tasks_of if network.name in t.addresses
            )
            vips.append(
                VirtualIP(_ipv4(vip), Destination(chain("V", service.id, network_id), targets))
            )
            if node.id in network.node_ranges:
                aliases = service.spec.network_aliases.get(network.name, ())
                helpers.append(
                    Helper(
                        _helper_name(service.spec.name, network.name, aliases),
                        service.spec.name,
                        network.name,
                        _ipv4(vip),
                        aliases,
                    )
                )
    mine = {n.name: device_names(n.id)[1] for n in networks if node.id in n.node_ranges}
    neighbours = sorted(
        {
            (mine[name], _ipv4(ip), _mac(task.macs[name]))
            for tasks_of in running.values()
            for task in tasks_of
            for name, ip in task.addresses.items()
            if name in mine and name in task.macs
        }
    )
    return NodeServices(
        cluster_id,
        node.hostname,
        tuple(ports),
        tuple(vips),
        tuple(helpers),
        helper_image,
        tuple(neighbours),
        tuple(sorted(mine.values())),
    )


def _helper_name(service: str, network: str, aliases: Sequence[str]) -> str:
    """Docker cannot change a running container's aliases: other aliases, another name,
    so the script starts a new helper and removes the old one."""
    if not aliases:
        return f"swarmctl-vip.{service}.{network}"
    digest = hashlib.sha1(" ".join(aliases).encode()).hexdigest()[:8]
    return f"swarmctl-vip.{service}.{network}.{digest}"


def _mac(text: str) -> str:
    """A MAC address as `ip neigh` takes it, or an error (it reaches a command line)."""
    if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", text.lower()):
        raise ValueError(f"not a MAC address: {text!r}")
    return text.lower()


def probability(index: int, count: int) -> str:
    """kube-proxy's odds: rule i of n takes 1/(n-i) of what reaches it, so each target
    ends up with 1/n."""
    return f"{1 / (count - index):.5f}"
