"""What the control loop needs of a node, and of the nodes it reaches at once.

The executor, the converges and the supervisor reach nodes only through these two
protocols: `Hosts.each` runs an action on many hosts in parallel, an action gets a
`Host` to run commands (built in commands/ or templates) and list the cluster's
containers. Production passes transport/group.Pool, whose hosts are SSH connections
with their Docker engine's API (runtime/engine.DockerHost); unit tests pass the
in-memory transport/fake.FakeHosts. Errors are SwarmctlErrors: SSHError when the host
cannot be reached, CommandFailed when a command it ran failed.
"""

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from swarmctl.errors import SwarmctlError
from swarmctl.runtime.containers import Container
from swarmctl.transport.ssh import Result

T = TypeVar("T")


class Host(Protocol):
    @property
    def name(self) -> str: ...

    def run(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> Result:
        """Run an argv (quoted by the host) or a shell script; CommandFailed with check."""
        ...

    def output(self, command: str | Sequence[str], *, timeout: float | None = None) -> bytes:
        """The raw standard output of a command that must succeed (an image archive…)."""
        ...

    def containers(self, cluster_id: str) -> list[Container]:
        """Every container of the cluster's tasks on the host, running or not."""
        ...

    def container(self, container_id: str) -> Container:
        """One container's record, by id or name, from the host's Docker engine."""
        ...

    @property
    def engine_sessions(self) -> int:
        """How often the link to the host's Docker engine was (re)made: a change means
        dockerd restarted or the host rebooted."""
        ...


class Hosts(Protocol):
    def each(
        self, action: Callable[[Host], T], names: Sequence[str] | None = None
    ) -> dict[str, T | SwarmctlError]:
        """`action` on every named host in parallel; a SwarmctlError per host that failed."""
        ...

    def __getitem__(self, name: str) -> Host: ...

    def __contains__(self, name: object) -> bool: ...
