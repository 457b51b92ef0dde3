"""Where everything of a lab lives: names, addresses, MACs and paths (pure, no I/O).

A lab is identified by a short name ("lab" by default). Every namespace, veth and
cgroup it creates carries the lab's prefix, so teardown can find exactly what it made
and nothing else; every file lives under the lab's directory.
"""

import ipaddress
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from swarmctl.errors import SwarmctlError

DEFAULT_LAB = "lab"
LAB_ROOT = Path("/var/lib/swarmctl")
MAX_HOSTS = 200
FIRST_HOST_OCTET = 11
REGISTRY_PORT = 5000
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")


@dataclass(frozen=True)
class LabHost:
    name: str
    role: str  # "manager" or "worker"
    address: str
    mac: str
    netns: str
    veth: str  # the host's cable, seen from the switch namespace
    dir: Path

    @property
    def docker_socket(self) -> Path:
        """The host's dockerd socket, reachable from the root namespace."""
        return self.dir / "run" / "docker.sock"


@dataclass(frozen=True)
class LabLayout:
    name: str = DEFAULT_LAB

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise SwarmctlError(
                f"lab name {self.name!r}: use 1-6 lowercase letters or digits, "
                "starting with a letter"
            )

    @property
    def prefix(self) -> str:
        return "swl" if self.name == DEFAULT_LAB else f"swl{self.name}"

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        # The default lab owns 10.99.0.0/24; others get a stable /24 from their name.
        index = 0 if self.name == DEFAULT_LAB else 1 + zlib.crc32(self.name.encode()) % 250
        return ipaddress.IPv4Network(f"10.99.{index}.0/24")

    def _address(self, octet: int) -> str:
        return str(self.subnet.network_address + octet)

    @property
    def gateway(self) -> str:
        """The switch's own address: a dead end that forwards nothing."""
        return self._address(1)

    @property
    def gateway_mac(self) -> str:
        """The switch's own MAC, fixed: a bridge left to itself takes its ports' lowest,
        which changes when a host's cable is made anew (a reboot in the lab), and every
        host kept sending to the old one until its ARP entry aged out (~45 s of DNS
        queries unanswered after a worker's reboot: docker waited 5 s per lookup)."""
        return mac_of(self.gateway)

    @property
    def ctl_address(self) -> str:
        return self._address(2)

    @property
    def dns_sink(self) -> str:
        """The control namespace's dead resolver (a loopback address of that namespace)."""
        return f"127.99.{self.subnet.network_address.packed[2]}.53"

    @property
    def registry_address(self) -> str:
        return self._address(3)

    @property
    def registry(self) -> str:
        return f"{self.registry_address}:{REGISTRY_PORT}"

    @property
    def switch_netns(self) -> str:
        return f"{self.prefix}-net"

    @property
    def ctl_netns(self) -> str:
        return f"{self.prefix}-ctl"

    @property
    def registry_netns(self) -> str:
        return f"{self.prefix}-registry"

    @property
    def dir(self) -> Path:
        return LAB_ROOT / ("lab" if self.name == DEFAULT_LAB else f"lab-{self.name}")

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    @property
    def description(self) -> Path:
        return self.dir / "lab.json"

    def hosts(self, count: int, managers: int = 1) -> list[LabHost]:
        if not 1 <= count <= MAX_HOSTS:
            raise SwarmctlError(f"--hosts {count}: a lab has 1 to {MAX_HOSTS} hosts")
        if not 1 <= managers <= count:
            raise SwarmctlError(f"--managers {managers}: need 1 to {count} managers")
        names = [(f"manager{i}", "manager") for i in range(1, managers + 1)]
        names += [(f"worker{i}", "worker") for i in range(1, count - managers + 1)]
        return [self._host(name, role, index) for index, (name, role) in enumerate(names)]

    def _host(self, name: str, role: str, index: int) -> LabHost:
        octet = FIRST_HOST_OCTET + index
        address = self._address(octet)
        return LabHost(
            name=name,
            role=role,
            address=address,
            mac=mac_of(address),
            netns=f"{self.prefix}-{name}",
            veth=f"{self.prefix}-h{octet}",
            dir=self.dir / "hosts" / name,
        )

    def cgroup_name(self, host: LabHost) -> str:
        return f"{self.prefix}-{host.name}"


def mac_of(address: str) -> str:
    """A locally administered MAC made of an IPv4 address: the same at every boot."""
    return "02:99:" + ":".join(f"{int(part):02x}" for part in address.split("."))
