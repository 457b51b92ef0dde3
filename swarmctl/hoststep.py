"""A change on one host other than a task's start or stop, as a record: which host, what
it is for, the command text (built in commands/ or rendered from templates/), how long
it may take. Pure code and the builders decide them; only executor.run_steps runs them.
"""

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    REMOVE_CONTAINERS = "remove containers"  # strays: containers no task wants
    OVERLAY = "overlay"  # converge the node's VXLAN overlays
    MESH = "routing mesh"  # converge its virtual-IP helpers, ingress and VIP rules
    CLEAN = "clean up"  # what the cluster put on a host that leaves
    INSTALL_DOCKER = "install Docker"
    START_DOCKER = "start Docker"
    CREATE_VOLUME = "create volume"
    REMOVE_VOLUME = "remove volume"


@dataclass(frozen=True)
class HostStep:
    host: str  # the node's hostname (its inventory name)
    kind: Kind
    command: str | tuple[str, ...]  # a shell script, or an argv the host quotes
    timeout: float | None  # None: the connection's own
    check: bool = True  # False: a failed command is a result to read, not an error
