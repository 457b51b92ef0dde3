"""Address management for overlay networks: VNIs, subnets, per-node ranges, virtual IPs.

Pure functions over the strings stored in the state file (CIDRs, IPs), IPv4 only. It
decides addresses and validates user input; it does not read state, talk to Docker or
build commands, and it does not remember anything between calls.
"""

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

from swarmctl.errors import SwarmctlError

VNI_FIRST = 4096  # where swarm's overlay driver starts too
VNI_LAST = 2**24 - 1  # a VNI is 24 bits
SMALLEST_SUBNET_PREFIX = 28
MTU_MIN, MTU_MAX = 68, 9000

# Ranges no overlay subnet may touch, whatever the caller passes as `avoid`. Docker's
# default bridge is on every node, and Docker refuses a network that overlaps it.
RESERVED_RANGES = {
    "0.0.0.0/8": "the 'this network' range",
    "127.0.0.0/8": "the loopback range",
    "169.254.0.0/16": "the link-local range",
    "172.17.0.0/16": "Docker's default bridge network",
    "224.0.0.0/4": "the multicast range",
    "240.0.0.0/4": "the reserved range",
}


# ----------------------------------------------------------------------------- VNIs


def allocate_vni(used: Iterable[int]) -> int:
    """The lowest VXLAN network identifier from VNI_FIRST that is not in `used`."""
    in_use = {vni for vni in used if VNI_FIRST <= vni <= VNI_LAST}
    vni = VNI_FIRST
    while vni in in_use:
        vni += 1
    if vni > VNI_LAST:
        raise SwarmctlError(
            f"no VXLAN network identifier left ({VNI_FIRST}-{VNI_LAST} are all in use)"
        )
    return vni


# -------------------------------------------------------------------------- subnets


def allocate_subnet(
    pools: Sequence[str], size: int, taken: Iterable[str], avoid: Iterable[str]
) -> str:
    """The first /`size` subnet of `pools`, in order, that overlaps nothing taken or avoided.

    A sweep rather than a walk: the conflicts inside a pool are sorted by start address
    and the candidate jumps past each one it hits (aligned up to `size`), so the cost
    grows with the number of conflicts, not with the 65,536 /24s of 10.0.0.0/8.
    """
    if not 1 <= size <= SMALLEST_SUBNET_PREFIX:
        raise SwarmctlError(f"subnet size /{size} is out of range (/1-/{SMALLEST_SUBNET_PREFIX})")
    conflicts = [
        *_ipv4_networks(taken, "subnet"),
        *_ipv4_networks(avoid, "address"),
        *map(IPv4Network, RESERVED_RANGES),
    ]
    block = 1 << (32 - size)
    for text in pools:
        pool = _ipv4_network(text, "address pool")
        if pool.prefixlen > size:
            continue
        pool_first, pool_last = int(pool.network_address), int(pool.broadcast_address)
        spans = sorted(
            (int(c.network_address), int(c.broadcast_address))
            for c in conflicts
            if c.overlaps(pool)
        )
        candidate = pool_first
        for first, last in spans:
            if candidate + block - 1 < first:
                break  # spans are sorted by start, so none further along can reach it
            if last >= candidate:
                candidate = (last // block + 1) * block
        if candidate + block - 1 <= pool_last:
            return f"{IPv4Address(candidate)}/{size}"
    raise SwarmctlError(
        f"address pools {', '.join(pools)} are exhausted (no free /{size} subnet left; "
        "remove unused networks or pass --subnet)"
    )


def check_subnet(
    subnet: str, gateway: str | None, taken: dict[str, str], avoid: Iterable[str]
) -> tuple[str, str]:
    """Validate a user's --subnet and --gateway; return them normalised.

    `taken` maps other networks' names to their subnets; `avoid` lists the hosts'
    underlay networks. The gateway defaults to the subnet's first host address.
    """
    network = _user_subnet(subnet)
    if network.prefixlen > SMALLEST_SUBNET_PREFIX:
        raise SwarmctlError(
            f"subnet {network} is too small (use /{SMALLEST_SUBNET_PREFIX} or larger)"
        )
    address = _user_gateway(gateway, network)
    for reserved, what in RESERVED_RANGES.items():
        if network.overlaps(IPv4Network(reserved)):
            raise SwarmctlError(f"subnet {network} overlaps {what} {reserved}")
    for underlay in _ipv4_networks(avoid, "address"):
        if network.overlaps(underlay):
            raise SwarmctlError(f"subnet {network} overlaps the hosts' underlay network {underlay}")
    for name, other in taken.items():
        if network.overlaps(_ipv4_network(other, "subnet")):
            raise SwarmctlError(f"subnet {network} overlaps network {name} ({other})")
    return str(network), str(address)


def _user_subnet(text: str) -> IPv4Network:
    if "/" not in text:  # a bare address would silently become a /32
        raise SwarmctlError(f"invalid subnet {text!r}")
    network = _parse_network(text, "subnet")
    if not isinstance(network, IPv4Network):
        raise SwarmctlError("only IPv4 subnets are supported")
    if network.network_address != ipaddress.ip_interface(text).ip:
        raise SwarmctlError(f"subnet {text} has host bits set (did you mean {network}?)")
    return network


def _user_gateway(text: str | None, network: IPv4Network) -> IPv4Address:
    if text is None:
        return network.network_address + 1
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise SwarmctlError(f"invalid gateway {text!r}") from None
    if address not in network:
        raise SwarmctlError(f"gateway {address} is not in subnet {network}")
    if address == network.network_address:
        raise SwarmctlError(f"gateway {address} is the network address of subnet {network}")
    if address == network.broadcast_address:
        raise SwarmctlError(f"gateway {address} is the broadcast address of subnet {network}")
    return IPv4Address(address)


# ---------------------------------------------------------------------- node ranges


def node_range_prefix(subnet: str) -> int:
    """The prefix length of each node's block of `subnet`.

    A block bounds one node's tasks on the network; the number of blocks bounds the
    number of nodes. Eight bits more than the subnet gives up to 256 blocks (255 nodes),
    but blocks stay /28 or larger while the subnet allows, so a node has room for 16
    tasks: a /16 has 256 /24s, a /20 256 /28s, the default /24 16 /28s (15 nodes). Below
    a /26 that would leave under 4 blocks, so small subnets are cut in 4 instead: a /28
    still serves 3 nodes, with 4 addresses each.
    """
    prefix = _ipv4_network(subnet, "subnet").prefixlen
    return min(prefix + 8, max(SMALLEST_SUBNET_PREFIX, prefix + 2))


def reserved_range(subnet: str) -> str:
    """Block 0: the network address, the usual gateway and the services' virtual IPs."""
    network = _ipv4_network(subnet, "subnet")
    return str(IPv4Network((network.network_address, node_range_prefix(subnet))))


def allocate_node_range(subnet: str, gateway: str, taken: Iterable[str]) -> str:
    """The first block of `subnet` free for a new node, as a CIDR for `--ip-range`.

    Docker on each node hands out container addresses from its own block only, so blocks
    must never overlap. Block 0 is kept back (network address, gateway, virtual IPs), and
    so is the block holding the gateway when the user put it elsewhere. The last block is
    handed out: Docker reserves the subnet's broadcast address in its pool bitmap, and
    --ip-range only narrows where it searches that bitmap, so no container ever gets it.
    """
    network = _ipv4_network(subnet, "subnet")
    prefix = node_range_prefix(subnet)
    block = 1 << (32 - prefix)
    base, last = int(network.network_address), int(network.broadcast_address)
    used = {0, (int(IPv4Address(gateway)) - base) // block}
    users: set[IPv4Network] = set()
    for cidr in taken:
        other = _ipv4_network(cidr, "address range")
        if other.overlaps(network):
            users.add(other)
            first_index = (max(int(other.network_address), base) - base) // block
            last_index = (min(int(other.broadcast_address), last) - base) // block
            used.update(range(first_index, last_index + 1))
    for index in range(1 << (prefix - network.prefixlen)):
        if index not in used:
            return f"{IPv4Address(base + index * block)}/{prefix}"
    raise SwarmctlError(
        f"network subnet {network} has no address range left for another node "
        f"({len(users)} nodes use it; create the network with a larger --subnet)"
    )


def allocate_vip(subnet: str, gateway: str, taken: Iterable[str]) -> str:
    """A free virtual IP in block 0; `taken` may hold plain IPs or IPs with a prefix."""
    network = _ipv4_network(subnet, "subnet")
    block = IPv4Network(reserved_range(subnet))
    in_use = {_parse_interface(address, "virtual IP").ip for address in taken}
    kept = {network.network_address, network.broadcast_address, IPv4Address(gateway)}
    for address in block:
        if address not in kept and address not in in_use:
            return str(address)
    raise SwarmctlError(
        f"network subnet {network} has no virtual IP left ({sum(a in block for a in in_use)} "
        f"in use in {block}; create the network with a larger --subnet)"
    )


# ---------------------------------------------------------------------- other knobs


def validate_mtu(mtu: int | str) -> int:
    return _int_in_range(mtu, "mtu", MTU_MIN, MTU_MAX)


def validate_vxlan_port(port: int | str) -> int:
    return _int_in_range(port, "vxlan port", 1, 65535)


def _int_in_range(value: int | str, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SwarmctlError(f"{what} {value!r} is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise SwarmctlError(f"{what} {value!r} is not an integer") from None
    if not low <= number <= high:
        raise SwarmctlError(f"{what} {number} is out of range ({low}-{high})")
    return number


# -------------------------------------------------------------------------- parsing
# Stored data and the hosts' facts may carry host bits ("10.99.0.5/24" names its
# network too), so only user input (`_user_subnet`) is refused for host bits.


def _parse_network(text: str, what: str) -> IPv4Network | IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise SwarmctlError(f"invalid {what} {text!r}") from None


def _parse_interface(text: str, what: str) -> IPv4Interface | IPv6Interface:
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise SwarmctlError(f"invalid {what} {text!r}") from None


def _ipv4_network(text: str, what: str) -> IPv4Network:
    network = _parse_network(text, what)
    if not isinstance(network, IPv4Network):
        raise SwarmctlError(f"{what} {text} is not IPv4")
    return network


def _ipv4_networks(texts: Iterable[str], what: str) -> list[IPv4Network]:
    """The IPv4 networks among `texts`: IPv6 ones cannot collide with an IPv4 subnet."""
    networks = (_parse_network(text, what) for text in texts)
    return [network for network in networks if isinstance(network, IPv4Network)]
