"""A host's Docker Engine API, spoken over its SSH connection (`docker system dial-stdio`).

One long-lived channel per host carries HTTP/1.1 requests to the engine, so reading a
node's containers costs one round trip and no process on the host — what the
supervisor does every tick on every node. The channel is reopened when it breaks (the
engine restarted, the host rebooted); `reconnects` counts that, and tells the caller
that the engine may have lost what it had set up.
"""

import http.client
import json
import threading
import urllib.parse
from typing import Any

import paramiko

from swarmctl.errors import SwarmctlError
from swarmctl.transport.ssh import SSHConnection

API = "/v1.41"  # docker 20.10's; newer engines answer it too


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

    def makefile(self, mode: str) -> "_Stream":
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
        self._stream: _Stream | None = None
        self._lock = threading.Lock()

    def get(self, path: str, **query: Any) -> Any:
        """GET an API path; query values that are not strings are sent as JSON."""
        if query:
            path += "?" + urllib.parse.urlencode(
                {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
            )
        with self._lock:
            try:
                return self._get(API + path)
            except (OSError, EOFError, http.client.HTTPException, paramiko.SSHException) as exc:
                self._drop()
                raise EngineError(
                    f"{self.conn.name}: the Docker engine did not answer "
                    f"({exc or type(exc).__name__})"
                ) from None

    def _get(self, path: str) -> Any:
        if self._channel is None or self._channel.closed:
            self._channel = self.conn.open_stream(["docker", "system", "dial-stdio"])
            self._channel.settimeout(self.timeout)
            self._stream = _Stream(self._channel)
            self.reconnects += 1
        self._channel.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
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
