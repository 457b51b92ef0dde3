"""Run on many hosts at once: one connection per host, a result or an error per host.

Like Fabric's GroupResult: one dead host never stalls or fails the others; the caller
decides what a per-host error means.
"""

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from swarmctl.errors import SwarmctlError
from swarmctl.inventory import InventoryHost
from swarmctl.transport.ssh import SSHConnection, Trust

T = TypeVar("T")


class Pool:
    """The connections of one run, shared by every step of it."""

    def __init__(
        self, hosts: Iterable[InventoryHost], trust: Trust | None = None, **timeouts: float
    ) -> None:
        self.trust = trust or Trust()
        self.connections = {h.name: SSHConnection(h, self.trust, **timeouts) for h in hosts}

    def __getitem__(self, name: str) -> SSHConnection:
        return self.connections[name]

    def each(
        self, action: Callable[[SSHConnection], T], names: Sequence[str] | None = None
    ) -> dict[str, T | SwarmctlError]:
        """Run `action` on every named host in parallel; SwarmctlErrors are returned, per host."""
        names = list(self.connections) if names is None else list(names)
        if not names:
            return {}

        def attempt(name: str) -> T | SwarmctlError:
            connection = self.connections.get(name)
            if connection is None:
                return SwarmctlError(f"{name}: not in the inventory, so swarmctl cannot reach it")
            try:
                return action(connection)
            except SwarmctlError as exc:
                return exc

        executor = ThreadPoolExecutor(max_workers=len(names))
        try:
            futures = [executor.submit(attempt, name) for name in names]
            pending = set(futures)
            while pending:
                # Short waits: Ctrl-C may land on a worker thread, and only a main thread
                # that wakes up runs the handler.
                pending = wait(pending, timeout=0.1).not_done
            return {name: future.result() for name, future in zip(names, futures, strict=True)}
        finally:
            # On Ctrl-C, do not wait here for hosts that are still being tried.
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
