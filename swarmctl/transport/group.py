"""Run on many hosts at once: one connection per host, a result or an error per host.

Like Fabric's GroupResult: one dead host never stalls or fails the others; the caller
decides what a per-host error means.
"""

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from swarmctl.errors import SwarmctlError
from swarmctl.inventory import InventoryHost
from swarmctl.runtime.engine import DockerHost
from swarmctl.transport.ssh import Trust, load_libraries

T = TypeVar("T")


class Pool:
    """The connections of one run, shared by every step of it (a transport/host.Hosts)."""

    def __init__(
        self,
        hosts: Iterable[InventoryHost],
        trust: Trust | None = None,
        retry_unreachable: bool = True,
        **timeouts: float,
    ) -> None:
        """`retry_unreachable`: False for a command, whose hosts that could not be reached
        are not tried again (see SSHConnection)."""
        self.trust = trust or Trust()
        self.connections = {
            h.name: DockerHost(h, self.trust, retry_unreachable=retry_unreachable, **timeouts)
            for h in hosts
        }
        # Kept for the pool's life: starting threads anew made up most of an idle
        # supervisor tick. Actions never call each() themselves, so one thread per host does.
        self.threads = ThreadPoolExecutor(
            max_workers=max(1, len(self.connections)), thread_name_prefix="swarmctl-host"
        )

    def __getitem__(self, name: str) -> DockerHost:
        return self.connections[name]

    def connect(self, names: Sequence[str], engine: bool = False) -> None:
        """Start connecting to these hosts in the background, so that the work to come
        finds them connected (or knows at once that they cannot be reached); `engine`:
        and open the channel to their Docker engine, which the work reads from.

        Daemon threads of their own: a host that does not answer neither holds up the
        pool's threads, which the work needs, nor keeps the process from exiting until
        its connect timeout."""
        load_libraries()
        for name in names:
            if name in self.connections:
                threading.Thread(
                    target=self._connect_quietly,
                    args=(self.connections[name], engine),
                    name=f"swarmctl-connect-{name}",
                    daemon=True,
                ).start()

    @staticmethod
    def _connect_quietly(connection: DockerHost, engine: bool) -> None:
        with contextlib.suppress(SwarmctlError):  # the work to come gets the error
            connection.connect()
            if engine:
                connection.engine().open()

    def __contains__(self, name: object) -> bool:
        return name in self.connections

    def each(
        self, action: Callable[[DockerHost], T], names: Sequence[str] | None = None
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

        load_libraries()
        futures = [self.threads.submit(attempt, name) for name in names]
        try:
            pending = set(futures)
            while pending:
                # Short waits: Ctrl-C may land on a worker thread, and only a main thread
                # that wakes up runs the handler.
                pending = wait(pending, timeout=0.1).not_done
            return {name: future.result() for name, future in zip(names, futures, strict=True)}
        except BaseException:
            # On Ctrl-C, do not wait here for hosts that are still being tried.
            for future in futures:
                future.cancel()
            raise

    def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        for connection in self.connections.values():
            connection.close()

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
