"""SSH to one host: a persistent connection, commands with timeouts, verified host keys.

paramiko connects as ~/.ssh/config says (HostName, IdentityFile, ProxyCommand, ProxyJump
through OpenSSH's `ssh -W`) and with the ssh-agent; commands then run on raw channels of
the one connection, several at a time. Host keys are checked against known_hosts and the
keys trusted on first use that the cluster state recorded; an unknown key is refused
unless the caller accepts new keys, a changed key always is.
This module knows nothing of Docker or of the cluster.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import select
import shlex
import socket
import sys
import threading
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from swarmctl import netns
from swarmctl.commands.docker import error_line
from swarmctl.errors import SwarmctlError, cut
from swarmctl.inventory import InventoryHost

# paramiko takes ~45 ms to import: it is imported where a connection is used, so that
# commands which reach no host never pay for it.
if TYPE_CHECKING:
    import paramiko


class _DeferredInvoke(types.ModuleType):
    """What `import invoke` finds until something uses it. paramiko imports invoke (~50 ms,
    most of what connecting adds to a command's start-up) only to run the `Match exec`
    lines of ssh configs; the first attribute asked for imports the real module."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


# (The standard library's LazyLoader cannot stand in: the import system reads the
# module's __spec__ on every `import invoke`, which would load it at once.)
if "invoke" not in sys.modules and (_invoke_spec := importlib.util.find_spec("invoke")):
    sys.modules["invoke"] = _DeferredInvoke("invoke")
    sys.modules["invoke"].__spec__ = _invoke_spec  # find_spec("invoke") keeps working


# paramiko logs what it then raises (a refused channel, a reset connection) at ERROR;
# with no logging set up, Python would print those lines on stderr beside our own error.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

_ssh_config_lock = threading.Lock()


@functools.cache
def _local_fqdn() -> str:
    return socket.getfqdn()


@functools.cache
def _read_ssh_config() -> paramiko.SSHConfig:
    return parse_ssh_config(["/etc/ssh/ssh_config", os.path.expanduser("~/.ssh/config")])


def parse_ssh_config(paths: Sequence[str]) -> paramiko.SSHConfig:
    import paramiko

    class Config(paramiko.SSHConfig):
        # paramiko renders %l (the local FQDN, a DNS lookup: seconds with a dead resolver)
        # for every value of a key that allows it, whether the value uses it or not.
        def _allowed_tokens(self, key):
            return [token for token in super()._allowed_tokens(key) if token != "%l"]

        def _tokenize(self, config, target_hostname, key, value):
            if "%l" in value and "%l" in super()._allowed_tokens(key):
                value = value.replace("%l", _local_fqdn())
            return super()._tokenize(config, target_hostname, key, value)

    config = Config()
    for path in paths:
        if os.path.exists(path):
            with open(path) as file:
                config.parse(file)
    return config


def host_config(address: str) -> paramiko.SSHConfigDict:
    """What the ssh config files say of a host (one lookup at a time: a lazy module, such as
    the invoke a `Match exec` line loads, is not safe to load from several threads)."""
    with _ssh_config_lock:
        return _read_ssh_config().lookup(address)


def connect_kwargs(host: InventoryHost, config: paramiko.SSHConfigDict) -> dict:
    """SSHClient.connect's arguments for a host, as fabric made them: the inventory's
    address, port and user win; the ssh config's HostName, IdentityFile and ProxyCommand or
    ProxyJump apply (a connection in the lab's namespace needs none of them)."""
    hostname = config.get("hostname", host.address)
    kwargs: dict = {
        "hostname": hostname,
        "port": host.port,
        "username": host.user,
        "allow_agent": True,
    }
    keys = ([_readable_key(host)] if host.key else []) + config.get("identityfile", [])
    if keys:
        kwargs["key_filename"] = keys
    if (config.get("proxyjump") or "none").lower() != "none":
        hops = config["proxyjump"].split(",")
        kwargs["proxy_command"] = shlex.join(
            ["ssh", "-o", "BatchMode=yes", "-W", f"{_bracketed(hostname)}:{host.port}"]
            + (["-J", ",".join(hops[:-1])] if len(hops) > 1 else [])
            + [f"ssh://{hops[-1]}"]
        )
    elif (config.get("proxycommand") or "none").lower() != "none":
        kwargs["proxy_command"] = config["proxycommand"]
    return kwargs


def _bracketed(hostname: str) -> str:
    """An IPv6 address as `ssh -W` takes it before a port."""
    return f"[{hostname}]" if ":" in hostname else hostname


class _PromptlyAcking(socket.socket):
    """A TCP socket that acknowledges what it receives at once. sshd sends some messages
    back to back under Nagle's algorithm (the host keys after authentication, then the
    answer to the first channel's open): the second waits for the ACK of the first, which
    Linux holds up to 40 ms unless asked for it at once. The kernel leaves that mode by
    itself, so it is asked for before every read."""

    @classmethod
    def wrap(cls, sock: socket.socket) -> socket.socket:
        try:  # Linux only (and not every kernel that claims to be): elsewhere as it comes
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except (AttributeError, OSError):
            return sock
        timeout = sock.gettimeout()
        wrapped = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        wrapped.settimeout(timeout)
        return wrapped

    def recv(self, size: int, flags: int = 0) -> bytes:
        with contextlib.suppress(OSError):  # a closed socket says so in recv
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return super().recv(size, flags)


STREAMLOCAL = "direct-streamlocal@openssh.com"


@functools.cache
def _transport_class() -> type[paramiko.Transport]:
    import paramiko
    from paramiko.common import cMSG_CHANNEL_OPEN

    class Transport(paramiko.Transport):
        """paramiko's, able to open a channel to a Unix socket on the host, forwarded by
        sshd itself (OpenSSH's direct-streamlocal, what `ssh -L PORT:/PATH` uses).
        paramiko writes only the fields of the channel kinds it knows into the open
        request, so the socket's path is added as the request leaves the calling thread."""

        _socket_path = threading.local()

        def open_unix_socket(self, path: str, timeout: float) -> paramiko.Channel:
            self._socket_path.value = path
            try:
                return self.open_channel(STREAMLOCAL, timeout=timeout)
            finally:
                self._socket_path.value = None

        def _send_user_message(self, data) -> None:
            path = getattr(self._socket_path, "value", None)
            if path is not None and data.asbytes()[:1] == cMSG_CHANNEL_OPEN:
                self._socket_path.value = None
                data.add_string(path)
                data.add_string("")  # reserved
                data.add_int(0)  # reserved
            super()._send_user_message(data)

    return Transport


def load_libraries() -> None:
    """Import paramiko in the calling thread, before threads that connect need it: modules
    first imported by several threads at once can deadlock on each other."""
    import paramiko  # noqa: F401


DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_COMMAND_TIMEOUT = 120.0
# OpenSSH allows 10 sessions per connection (MaxSessions); stay below it.
MAX_CHANNELS = 8


class SSHError(SwarmctlError):
    """A host could not be reached, or would not let us in."""


class HostUnreachable(SSHError):
    pass


class HostKeyError(SSHError):
    pass


class CommandTimeout(SSHError):
    pass


class CommandFailed(SwarmctlError):
    def __init__(self, message: str, result: Result) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Result:
    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float


def fingerprint(key_type: str, key_base64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key."""
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return f"{key_type} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


@dataclass
class Trust:
    """Which host keys to accept beyond known_hosts.

    `recorded` maps host name -> "<type> <base64>" kept in the cluster state; with
    `accept_new`, keys of hosts that have none are accepted and put in `learned`.
    """

    recorded: dict[str, str] = field(default_factory=dict)
    accept_new: bool = False
    learned: dict[str, str] = field(default_factory=dict)


class _Policy:  # paramiko's MissingHostKeyPolicy, which paramiko takes by its method
    def __init__(self, host: InventoryHost, trust: Trust) -> None:
        self.host = host
        self.trust = trust

    def missing_host_key(self, client, hostname, key) -> None:
        text = f"{key.get_name()} {key.get_base64()}"
        if self.trust.accept_new:
            self.trust.learned[self.host.name] = text
            return
        raise HostKeyError(
            f"{_where(self.host)}: host key not known ({fingerprint(*text.split())}): "
            "check it, then add it to known_hosts or pass --accept-new-host-keys"
        )


_warned: set[str] = set()


def read_known_hosts(path: str) -> list[tuple[str, paramiko.PKey]]:
    """(host pattern, key) pairs of a known_hosts file; missing or unreadable reads as empty.

    A line that does not parse is skipped with one warning, as OpenSSH does, so one bad
    line does not lock the user out of every host.
    """
    from paramiko.hostkeys import HostKeyEntry

    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            text = lines.readlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        _warn_once(f"known_hosts {path}: cannot read it ({exc.strerror}); ignoring it")
        return []
    pairs = []
    for number, line in enumerate(text, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = HostKeyEntry.from_line(line, number)
        except Exception as exc:  # paramiko raises InvalidHostKey, binascii, ValueError …
            _warn_once(f"known_hosts {path} line {number}: {_describe_bad_line(exc)}; skipped")
            continue
        if entry is not None:
            pairs.extend((hostname, entry.key) for hostname in entry.hostnames)
    return pairs


def _describe_bad_line(exc: Exception) -> str:
    cause = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], Exception) else exc
    return f"not a host key ({cut(str(cause), 160)})" if str(cause) else "not a host key"


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"Warning: {message}", file=sys.stderr)


def _readable_key(host: InventoryHost) -> str:
    assert host.key
    path = os.path.expanduser(host.key)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SSHError(f"{_where(host)}: cannot read key file {path}: {exc.strerror}") from None
    return path


def _where(host: InventoryHost) -> str:
    return f"{host.name} ({host.address}:{host.port})"


class SSHConnection:
    """One persistent connection to one host, opened on first use, reopened when lost."""

    def __init__(
        self,
        host: InventoryHost,
        trust: Trust | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        retry_unreachable: bool = True,
    ) -> None:
        self.host = host
        self.trust = trust or Trust()
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        # False for a command: a host it could not connect to is not tried again (each try
        # of a silent host costs the connect timeout); a supervisor looks again every tick.
        self.retry_unreachable = retry_unreachable
        self.sudo = False  # set when the login user is not root and uses sudo
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()
        self._connects = 0  # connects finished, well or not
        self._failure: SSHError | None = None  # how the last one failed
        self._channels = threading.BoundedSemaphore(MAX_CHANNELS)

    @property
    def name(self) -> str:
        return self.host.name

    # ---------------------------------------------------------------- connect

    def connect(self) -> None:
        """Open the connection now (it is otherwise opened on first use)."""
        self._transport()

    def _transport(self) -> paramiko.Transport:
        connects = self._connects
        with self._lock:
            client = self._client
            transport = client.get_transport() if client else None
            if transport is None or not transport.is_active():
                # A connect that failed while this thread waited for it is its answer too:
                # a host that does not answer costs the connect timeout once, not per thread.
                if self._failure is not None and (
                    self._connects != connects
                    or (not self.retry_unreachable and isinstance(self._failure, HostUnreachable))
                ):
                    raise type(self._failure)(str(self._failure))
                if client:
                    client.close()
                self._failure = None
                try:
                    self._client = client = self._open()
                except SSHError as exc:
                    self._failure = exc
                    raise
                finally:
                    self._connects += 1
                transport = client.get_transport()
            assert transport is not None
            return transport

    def _open(self) -> paramiko.SSHClient:
        import paramiko

        host = self.host
        config = host_config(host.address)
        kwargs = connect_kwargs(host, config)
        client = paramiko.SSHClient()
        self._load_host_keys(client, config)
        client.set_missing_host_key_policy(_Policy(host, self.trust))
        try:
            proxy = kwargs.pop("proxy_command", None)
            if host.netns:
                kwargs["sock"] = self._socket(kwargs["hostname"])
            else:
                kwargs["timeout"] = self.connect_timeout  # the key exchange's, too
                kwargs["sock"] = (
                    paramiko.ProxyCommand(proxy) if proxy else self._socket(kwargs["hostname"])
                )
            client.connect(**kwargs, transport_factory=_transport_class())
        except SwarmctlError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"{_where(host)}: host key changed (expected "
                f"{fingerprint(exc.expected_key.get_name(), exc.expected_key.get_base64())}, got "
                f"{fingerprint(exc.key.get_name(), exc.key.get_base64())}): refusing to connect; "
                "if the host was reinstalled, check the new key, remove the old one from "
                f"known_hosts or run `swarmctl node trust --forget {host.name}`, then pass "
                "--accept-new-host-keys"
            ) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            key = f" with key {host.key}" if host.key else ""
            raise SSHError(
                f"{_where(host)}: authentication failed for user {host.user}{key} ({exc})"
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            raise self._unreachable(exc) from None
        transport = client.get_transport()
        if transport:
            transport.set_keepalive(5)
        return client

    def _socket(self, hostname: str) -> socket.socket:
        """The TCP connection to the host's sshd: to `hostname` (what the ssh config makes of
        the address), or from the lab's control namespace when the inventory names one."""
        host = self.host
        try:
            if host.netns:
                sock = netns.connect(
                    host.address, host.port, netns=host.netns, timeout=self.connect_timeout
                )
            else:
                sock = socket.create_connection((hostname, host.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise self._unreachable(exc) from None
        except UnicodeError:  # the IDNA codec's verdict on a name such as "a..b"
            raise SSHError(f"{_where(host)}: {hostname!r} is not a valid host name") from None
        # paramiko often sends two messages in a row with no answer between (a channel's
        # close, then the next channel's open; the steps of authentication): under Nagle's
        # algorithm the second waits for the host's delayed ACK, 40 ms each time.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _PromptlyAcking.wrap(sock)

    def _unreachable(self, exc: BaseException) -> HostUnreachable:
        return HostUnreachable(f"{_where(self.host)}: {_describe(exc, self.connect_timeout)}")

    def _load_host_keys(self, client: paramiko.SSHClient, config: paramiko.SSHConfigDict) -> None:
        import paramiko

        files = config.get("userknownhostsfile", "~/.ssh/known_hosts").split()
        if self.host.known_hosts:
            files.append(self.host.known_hosts)
        for path in files:
            for hostname, key in read_known_hosts(os.path.expanduser(path)):
                client.get_host_keys().add(hostname, key.get_name(), key)
        recorded = self.trust.recorded.get(self.host.name)
        if recorded:
            key_type, key_base64 = recorded.split()[:2]
            lookup = (
                self.host.address
                if self.host.port == 22
                else f"[{self.host.address}]:{self.host.port}"
            )
            client.get_host_keys().add(
                lookup,
                key_type,
                paramiko.PKey.from_type_string(key_type, base64.b64decode(key_base64)),
            )

    def close(self) -> None:
        # A thread still connecting holds the lock; that connection is left to die with
        # the process rather than keep a Ctrl-C waiting for the connect timeout.
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._client:
                self._client.close()
                self._client = None
        finally:
            self._lock.release()

    # -------------------------------------------------------------------- run

    def open_stream(self, command: Sequence[str]) -> paramiko.Channel:
        """A channel running `command` for as long as the caller keeps it (one of
        OpenSSH's 10 sessions, beside the MAX_CHANNELS that run() uses)."""
        import paramiko

        line = shlex.join(["sudo", "-n", *command] if self.sudo else command)
        try:
            channel = self._transport().open_session(timeout=self.connect_timeout)
            channel.exec_command(line)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise self._unreachable(exc) from None
        return channel

    def open_unix_socket(self, path: str) -> paramiko.Channel:
        """A channel to a Unix socket on the host, joined by sshd: no process is started
        there. paramiko.ChannelException when sshd refuses it (forwarding disabled, no
        such socket, or not the login user's to open)."""
        import paramiko

        try:
            transport = self._transport()
            return transport.open_unix_socket(path, self.connect_timeout)
        except paramiko.ChannelException:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise self._unreachable(exc) from None

    def run(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> Result:
        """Run a command: an argv (quoted here) or a shell line built from quoted values."""
        line, code, out, err, seconds = self._exec(command, timeout, stdin)
        result = Result(
            self.name,
            line,
            code,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            seconds,
        )
        if check and code != 0:
            detail = error_line(result.stderr) or error_line(result.stdout) or f"exit {code}"
            raise CommandFailed(f"{self.name}: `{_short(line)}` failed: {detail}", result)
        return result

    def output(self, command: str | Sequence[str], *, timeout: float | None = None) -> bytes:
        """The raw standard output of a command that must succeed (an image archive…)."""
        line, code, out, err, seconds = self._exec(command, timeout, None)
        if code != 0:
            result = Result(self.name, line, code, "", err.decode(errors="replace"), seconds)
            detail = error_line(result.stderr) or f"exit {code}"
            raise CommandFailed(f"{self.name}: `{_short(line)}` failed: {detail}", result)
        return out

    def _exec(
        self, command: str | Sequence[str], timeout: float | None, stdin: bytes | None
    ) -> tuple[str, int, bytes, bytes, float]:
        import paramiko

        line = command if isinstance(command, str) else shlex.join(command)
        if self.sudo:
            line = shlex.join(["sudo", "-n", "sh", "-c", line])
        timeout = self.command_timeout if timeout is None else timeout
        started = time.monotonic()
        transport = self._transport()
        with self._channels:
            try:
                channel = transport.open_session(timeout=self.connect_timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self.close()
                reason = f" ({exc})" if str(exc) else ""
                raise HostUnreachable(f"{_where(self.host)}: connection lost{reason}") from None
            try:
                channel.exec_command(line)
                if stdin is not None:
                    # A command that exits before reading all its input closes the
                    # channel under us: its exit status says what happened.
                    with contextlib.suppress(OSError, paramiko.SSHException):
                        channel.sendall(stdin)
                        channel.shutdown_write()
                out, err = _drain(channel, started + timeout)
                if out is None:
                    raise CommandTimeout(
                        f"{_where(self.host)}: `{_short(line)}` did not finish within {timeout:g} s"
                    )
                code = channel.recv_exit_status()
            finally:
                channel.close()
        return line, code, out, err, time.monotonic() - started


def _drain(channel: paramiko.Channel, deadline: float) -> tuple[bytes | None, bytes]:
    """Read stdout and stderr until the command exits; (None, …) on timeout."""
    out, err = bytearray(), bytearray()
    while True:
        while channel.recv_ready():
            out += channel.recv(65536)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
        if (
            channel.exit_status_ready()
            and not channel.recv_ready()
            and not channel.recv_stderr_ready()
        ):
            return bytes(out), bytes(err)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, bytes(err)
        select.select([channel], [], [], min(remaining, 1.0))


def _describe(exc: BaseException, timeout: float) -> str:
    from paramiko.ssh_exception import NoValidConnectionsError

    if isinstance(exc, TimeoutError):
        return f"connection timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError | NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _short(line: str, limit: int = 80) -> str:
    """A command as one line of an error message."""
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
