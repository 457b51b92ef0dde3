"""A host's Docker Engine API, spoken over its SSH connection.

One long-lived channel per host carries HTTP/1.1 requests to the engine, so reading a
node's containers costs one round trip and no process on the host — what the
supervisor does every tick on every node. sshd joins the channel to dockerd's socket
itself; where it may not (forwarding disabled, a login that needs sudo, a socket
elsewhere), `docker system dial-stdio` does, a process that takes ~15 ms to start. The
channel is reopened when it breaks (the engine restarted, the host rebooted);
`reconnects` counts that, and tells the caller that the engine may have lost what it had
set up. `DockerHost` is a node as the control loop sees it (transport/host.Host): its
SSH connection, and the engine behind it.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from swarmctl import pinning
from swarmctl.errors import SwarmctlError
from swarmctl.naming import LABEL_CLUSTER, LABEL_TASK_ID
from swarmctl.runtime.containers import Container, from_api, from_inspect
from swarmctl.transport.ssh import SSHConnection

# paramiko is imported where a channel is used (see transport/ssh.py): commands that reach
# no host never pay for it.
if TYPE_CHECKING:
    import paramiko

    from swarmctl.transport.group import Pool

API = "/v1.41"  # docker 20.10's; newer engines answer it too
# Docker's default socket, which sshd joins. A host whose docker CLI is pointed at another
# daemon (DOCKER_HOST, a context) while this one runs too is not supported.
SOCKET = "/var/run/docker.sock"
# An engine that has not answered a small request in this long is hung: a command waits
# on it no longer than this, whatever its pool allows a remote command.
ENGINE_TIMEOUT = 10.0


class EngineError(SwarmctlError):
    pass


class Refused(EngineError):
    """The engine answered, with an error status."""


class NotFound(Refused):
    pass


class _Stream:
    """What http.client.HTTPResponse needs of a socket: one file kept across responses
    (so bytes buffered while reading one are not lost to the next), which a response
    may not close when it is done."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.file = channel.makefile("rb")

    def makefile(self, mode: str) -> _Stream:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def close(self) -> None:
        pass


class Engine:
    def __init__(self, conn: SSHConnection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.reconnects = 0
        self._channel: paramiko.Channel | None = None
        self._forwarding = True  # until sshd refuses the socket while dockerd answers
        self._refused = False  # sshd refused the socket for the channel now open
        self._stream: _Stream | None = None
        self._lock = threading.Lock()

    def get(self, path: str, **query: Any) -> Any:
        """GET an API path; query values that are not strings are sent as JSON."""
        if query:
            path += "?" + urllib.parse.urlencode(
                {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
            )
        import paramiko

        with self._lock:
            try:
                answer = self._get(API + path)
                # dockerd answers through dial-stdio where sshd would not join its
                # socket: forwarding is disabled there (OpenSSH says only "connect
                # failed"), so the socket is not asked for again.
                self._forwarding = self._forwarding and not self._refused
                return answer
            except (OSError, EOFError, http.client.HTTPException, paramiko.SSHException) as exc:
                self._drop()
                raise EngineError(
                    f"{self.conn.name}: the Docker engine did not answer "
                    f"({str(exc) or type(exc).__name__})"
                ) from None

    def open(self) -> None:
        """Open the channel now, not at the first request: it is joined to the engine once
        this first request is answered."""
        self.get("/version")

    def _open(self) -> paramiko.Channel:
        if self._channel is not None and (self._channel.closed or self._channel.eof_received):
            self._drop()  # dockerd closed its end (it restarted): sshd sends only EOF
        if self._channel is None:
            self._channel = self._join()
            self._channel.settimeout(self.timeout)
            self._stream = _Stream(self._channel)
            self.reconnects += 1
        return self._channel

    def _join(self) -> paramiko.Channel:
        import paramiko

        self._refused = False
        if self._forwarding and not self.conn.sudo:
            try:
                return self.conn.open_unix_socket(SOCKET)
            except paramiko.ChannelException:
                # Forwarding disabled, or dockerd down: the answer through dial-stdio
                # tells which (see get).
                self._refused = True
        return self.conn.open_stream(["docker", "system", "dial-stdio"])

    def _get(self, path: str) -> Any:
        self._open().sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
        response = http.client.HTTPResponse(self._stream)  # type: ignore[arg-type]
        response.begin()
        body = response.read()
        if response.status >= 400:
            raise (NotFound if response.status == 404 else Refused)(
                f"{self.conn.name}: GET {path}: {response.status} "
                f"{body.decode(errors='replace').strip()}"
            )
        return json.loads(body) if body else None

    def _drop(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stream = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class DockerHost(SSHConnection):
    """A node: commands over SSH, and its containers read from the engine's API over a
    channel of the same connection, kept open from one call to the next."""

    _engine: Engine | None = None

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(self, min(self.command_timeout, ENGINE_TIMEOUT))
        return self._engine

    @property
    def engine_sessions(self) -> int:
        return self._engine.reconnects if self._engine else 0

    def containers(self, cluster_id: str) -> list[Container]:
        return list_containers(self.engine(), cluster_id)

    def container(self, container_id: str) -> Container:
        return from_inspect(
            self.engine().get(f"/containers/{urllib.parse.quote(container_id)}/json")
        )


def list_containers(engine: Engine, cluster_id: str) -> list[Container]:
    """Every task container of the cluster on the engine's node, in one request."""
    listed = engine.get(
        "/containers/json",
        all="1",
        filters={"label": [f"{LABEL_CLUSTER}={cluster_id}", LABEL_TASK_ID]},
    )
    # Only a container that stopped needs its full record (exit code, OOM); one removed
    # meanwhile is simply gone.
    containers = []
    for summary in listed:
        try:
            detail = (
                None
                if summary.get("State") == "running"
                else engine.get(f"/containers/{summary['Id']}/json")
            )
        except NotFound:
            continue
        containers.append(from_api(summary, detail))
    return containers


def distribution(pool: Pool) -> Callable[[str, str, float], dict]:
    """Ask a node's engine what its registry says a reference is (its digest)."""

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        if hostname not in pool.connections:
            raise SwarmctlError(f"{hostname}: not in the inventory")
        engine = Engine(pool[hostname], timeout)
        try:
            return engine.get(f"/distribution/{reference}/json")
        except NotFound as error:
            raise pinning.UnknownImage(str(error)) from None
        except Refused as error:
            raise pinning.RegistryUnreachable(str(error)) from None
        finally:
            engine.close()

    return inspect
