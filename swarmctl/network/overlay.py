"""What each node should have for the cluster's overlay networks, as plain data (pure).

For every network a node takes part in: a VXLAN device (head-end replication to every
peer, MAC learning), a Docker macvlan network on it bound to the node's own block of the
subnet, and the host's own macvlan port on it (the shim) with the node's overlay address.
templates/overlay/converge.sh.j2 turns a NodeOverlays into commands; docs/design/overlay.md
tells why it looks like this.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace

from swarmctl.errors import SwarmctlError
from swarmctl.models import Cluster, Network, Node
from swarmctl.network import ipam


def device_names(network_id: str) -> tuple[str, str]:
    """(vxlan, shim) interface names: 14 characters, within Linux's 15."""
    return f"swv{network_id[:11]}", f"swb{network_id[:11]}"


def underlay_address(node: Node) -> str:
    """Where VXLAN reaches `node`; checked, since it lands in commands and firewall rules."""
    return str(ipaddress.IPv4Address(node.facts.address or node.address))


def node_address(node_range: str) -> str:
    """The node's own address on a network: the first of its block, reserved from Docker."""
    return str(ipaddress.IPv4Network(node_range).network_address)


@dataclass(frozen=True)
class NetworkOnNode:
    network_id: str
    name: str
    vni: int
    subnet: str
    gateway: str
    ip_range: str
    address: str  # the node's own address on this network
    mtu: int
    port: int
    vxlan: str
    shim: str  # the host's macvlan on the VXLAN device
    local: str  # the node's underlay address: VXLAN's source
    iface: str  # the underlay interface
    peers: tuple[str, ...]  # the other nodes' underlay addresses
    reserved: str  # block 0: gateway and virtual IPs, answered by each node for itself
    labels: tuple[tuple[str, str], ...]

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen


@dataclass(frozen=True)
class NodeOverlays:
    cluster_id: str
    node: str  # hostname, for messages
    networks: tuple[NetworkOnNode, ...]
    peers: tuple[str, ...]  # every other node's underlay address: allowed to send VXLAN
    ports: tuple[int, ...]  # the VXLAN ports in use here, guarded from containers on every node


def node_overlays(
    cluster: Cluster, networks: Iterable[Network], nodes: Iterable[Node], node: Node
) -> NodeOverlays:
    """The overlay state `node` should converge to: every network it has a block in."""
    nodes = list(nodes)
    by_id = {n.id: n for n in nodes}
    others = tuple(sorted(underlay_address(n) for n in nodes if n.id != node.id))
    wanted = []
    for network in sorted(networks, key=lambda n: n.name):
        ip_range = network.node_ranges.get(node.id)
        if not ip_range:
            continue
        vxlan, shim = device_names(network.id)
        peers = tuple(
            sorted(
                underlay_address(by_id[i])
                for i in network.node_ranges
                if i != node.id and i in by_id
            )
        )
        wanted.append(
            NetworkOnNode(
                network_id=network.id,
                name=network.name,
                vni=network.vni,
                subnet=network.subnet,
                gateway=network.gateway,
                ip_range=ip_range,
                address=node_address(ip_range),
                mtu=network.mtu,
                port=network.vxlan_port,
                vxlan=vxlan,
                shim=shim,
                local=underlay_address(node),
                iface=node.facts.iface,
                peers=peers,
                reserved=ipam.reserved_range(network.subnet),
                labels=tuple(sorted(network.labels.items())),
            )
        )
    ports = tuple(sorted({n.port for n in wanted}))
    return NodeOverlays(cluster.id, node.hostname, tuple(wanted), others if wanted else (), ports)


def assign_ranges(network: Network, nodes: Iterable[Node]) -> Network:
    """Give every node without a block of `network` one; nodes that find none go pending."""
    ranges, pending = dict(network.node_ranges), dict(network.pending)
    for node in nodes:
        if node.id in ranges:
            continue
        try:
            ranges[node.id] = ipam.allocate_node_range(
                network.subnet, network.gateway, ranges.values()
            )
            pending[node.id] = "not set up yet"
        except SwarmctlError as exc:
            pending[node.id] = str(exc)
    return replace(network, node_ranges=ranges, pending=pending)


def forget_node(network: Network, node_id: str) -> Network:
    return replace(
        network,
        node_ranges={k: v for k, v in network.node_ranges.items() if k != node_id},
        pending={k: v for k, v in network.pending.items() if k != node_id},
    )
