"""What a stack's Compose files ask for, read and checked: plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmctl.models import ServiceSpec

NAMESPACE_LABEL = "com.docker.stack.namespace"  # docker's, so a file moves to real swarm
IMAGE_LABEL = "com.docker.stack.image"  # a service's image as the file names it, as docker's


@dataclass(frozen=True)
class StackNetwork:
    name: str  # as created: `<stack>_<key>`, the file's `name:`, or an external network's
    external: bool = False
    driver: str = "overlay"
    attachable: bool = False
    subnet: str = ""  # "": one from the cluster's pool
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackVolume:
    name: str
    external: bool = False
    driver: str = ""
    driver_opts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackFileObject:
    """A top-level secret or config: read from `file` at deploy time, or `external`."""

    name: str
    external: bool = False
    file: str = ""  # absolute path
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stack:
    name: str
    services: tuple[ServiceSpec, ...]  # named `<stack>_<key>`, labelled with NAMESPACE_LABEL
    networks: tuple[StackNetwork, ...] = ()
    volumes: tuple[StackVolume, ...] = ()
    secrets: tuple[StackFileObject, ...] = ()
    configs: tuple[StackFileObject, ...] = ()
    files: tuple[str, ...] = ()  # the -c files, absolute, in order
    digest: str = ""  # sha256 of the merged, interpolated document
    ignored: tuple[str, ...] = ()  # keys swarm ignores or swarmctl does not support


DEPLOYS_KEPT = 10  # per stack, as many as each service keeps specs


@dataclass(frozen=True)
class StackDeploy:
    """One `stack deploy` (or `stack rollback`) as recorded: what was deployed, when, and
    the version each service of the stack was left on, for `stack rollback`."""

    id: str
    stack: str
    number: int  # 1, 2, … per stack
    at: str
    digest: str
    files: tuple[str, ...] = ()
    services: dict[str, int] = field(default_factory=dict)  # service name -> spec version
    removed: tuple[str, ...] = ()
    note: str = ""  # "rollback to deploy 3"
    again: int = 0  # redeploys since that changed nothing: counted here, not kept apart
