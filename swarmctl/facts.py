"""What a host is, read from the output of templates/host/facts.sh.j2, and what joining
it takes (parsing and decisions only: the commands are built in commands/steps.py,
provision.py reads the host and the executor runs them)."""

import ipaddress
import shlex
from dataclasses import dataclass, field

from swarmctl.commands import steps
from swarmctl.errors import SwarmctlError
from swarmctl.models import NodeFacts


@dataclass(frozen=True)
class HostFacts:
    kernel: str = ""
    arch: str = ""
    os: str = ""
    os_id: str = ""
    os_like: str = ""
    cpus: int = 0
    memory_bytes: int = 0
    docker_cli: bool = False
    dockerd: bool = False
    engine: str = ""  # the running daemon's version; empty when it does not answer
    tools: frozenset[str] = frozenset()
    addresses: tuple[tuple[str, str], ...] = ()  # (interface, CIDR)
    default_iface: str = ""
    features: dict[str, bool] = field(default_factory=dict)  # vxlan, macvlan, iptables…


def parse_facts(text: str) -> HostFacts:
    values: dict[str, str] = {}
    tools, addresses, features = set(), [], {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "tool":
            tools.add(value)
        elif key == "addr":
            iface, _, cidr = value.partition(" ")
            try:
                cidr = str(ipaddress.IPv4Interface(cidr))
            except ValueError:
                continue  # never let a malformed line reach a command or a rule
            addresses.append((iface, cidr))
        elif key in ("vxlan", "macvlan", "iptables", "arptables"):
            features[key] = value == "yes"
        else:
            values[key] = value
    return HostFacts(
        kernel=values.get("kernel", ""),
        arch=values.get("arch", ""),
        os=values.get("os", ""),
        os_id=values.get("os_id", ""),
        os_like=values.get("os_like", ""),
        cpus=_int(values.get("cpus")),
        memory_bytes=_int(values.get("memory_kb")) * 1024,
        docker_cli=bool(values.get("docker_cli")),
        dockerd=bool(values.get("dockerd")),
        engine=values.get("engine", ""),
        tools=frozenset(tools),
        addresses=tuple(addresses),
        default_iface=values.get("default_iface", ""),
        features=features,
    )


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def underlay(facts: HostFacts, host: str, address: str, iface: str | None) -> tuple[str, str]:
    """(interface, address) the overlay should use: the inventory's `iface`, else the
    interface holding the address we reach the host at, else the default route's; on an
    interface with several addresses, the one we reach the host at, else its primary."""
    ips = [(name, cidr.split("/")[0]) for name, cidr in facts.addresses]
    for name, ip in ips:
        if ip == address and (not iface or name == iface):
            return name, ip
    wanted = iface or facts.default_iface
    for name, ip in ips:
        if name == wanted:
            return name, ip
    if iface:
        raise SwarmctlError(
            f"{host}: interface {iface!r} has no IPv4 address "
            f"(interfaces: {', '.join(sorted({n for n, _ in ips})) or 'none'})"
        )
    raise SwarmctlError(
        f"{host}: cannot tell which interface carries the overlay: "
        "set `iface` for it in the inventory"
    )


def underlay_network(facts: HostFacts, address: str) -> str:
    for _, cidr in facts.addresses:
        if cidr.split("/")[0] == address:
            return str(ipaddress.ip_interface(cidr).network)
    return ""


def to_node_facts(facts: HostFacts, iface: str, address: str) -> NodeFacts:
    return NodeFacts(
        os=facts.os,
        kernel=facts.kernel,
        arch=facts.arch,
        engine_version=facts.engine,
        cpus=facts.cpus,
        memory_bytes=facts.memory_bytes,
        iface=iface,
        address=address,
        network=underlay_network(facts, address),
    )


@dataclass(frozen=True)
class JoinPlan:
    install_docker: list[str] | None = None  # argv, when Docker is absent
    start_docker: list[str] | None = None  # argv, when the daemon does not answer
    problems: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        steps = ["check login and root", "read facts"]
        if self.install_docker:
            steps.append("install Docker: " + shlex.join(self.install_docker))
        if self.start_docker:
            steps.append("start Docker: " + shlex.join(self.start_docker))
        steps.append("record the node in the cluster state")
        return steps


def plan_join(facts: HostFacts, host: str) -> JoinPlan:
    """Decide what joining takes; problems that no step can fix are listed, not raised."""
    problems = [
        f"{host}: the kernel cannot create {feature} devices"
        for feature in ("vxlan", "macvlan")
        if not facts.features.get(feature)
    ]
    for tool in ("iptables", "arptables"):
        if not facts.features.get(tool):
            problems.append(f"{host}: {tool} does not work (is the package installed?)")
    install = None
    if not (facts.docker_cli and facts.dockerd):
        install = steps.install_docker(facts.tools, {facts.os_id, *facts.os_like.split()})
        if install is None:
            problems.append(
                f"{host}: Docker is not installed and swarmctl cannot install it "
                f"on {facts.os or 'this system'}: install Docker, then join again"
            )
    start = None
    if not facts.engine:
        start = steps.start_docker(facts.tools)
        if start is None and install is None and not problems:
            problems.append(
                f"{host}: the Docker daemon is not running and there is no "
                "systemctl or service command to start it"
            )
    return JoinPlan(install, start, tuple(problems))
