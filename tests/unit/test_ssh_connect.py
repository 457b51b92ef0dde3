"""One connect at a time per host, and the threads that waited for it share its outcome."""

import socket
import subprocess
import sys
import threading
import time

import pytest

from swarmctl.inventory import InventoryHost
from swarmctl.transport.ssh import HostUnreachable, SSHConnection, SSHError


class WaitedLock:
    """A lock that tells when a second thread has started waiting for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting = threading.Event()

    def __enter__(self) -> None:
        if not self.lock.acquire(blocking=False):
            self.waiting.set()
            self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def acquire(self, blocking: bool = True) -> bool:
        return self.lock.acquire(blocking)

    def release(self) -> None:
        self.lock.release()


class SilentHost(SSHConnection):
    """A host whose connects fail once another thread waits for them (as after a timeout)."""

    def __init__(self, **options: bool) -> None:
        super().__init__(InventoryHost("w1", "10.0.0.9"), **options)
        self._lock = WaitedLock()  # type: ignore[assignment]
        self.opened = 0

    def _open(self):
        self.opened += 1
        if self.opened == 1:
            self._lock.waiting.wait()
        raise HostUnreachable(f"w1 (10.0.0.9): cannot connect (timed out, try {self.opened})")


def test_threads_that_waited_for_a_failed_connect_get_its_error_without_trying_again() -> None:
    host = SilentHost()
    errors: list[str] = []

    def use() -> None:
        with pytest.raises(HostUnreachable) as caught:
            host.connect()
        errors.append(str(caught.value))

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert host.opened == 1
    assert errors == ["w1 (10.0.0.9): cannot connect (timed out, try 1)"] * 2


def test_a_later_use_tries_to_connect_again() -> None:
    host = SilentHost()
    host._lock.waiting.set()

    for _ in range(2):
        with pytest.raises(HostUnreachable):
            host.connect()

    assert host.opened == 2


def test_a_commands_connection_does_not_try_a_host_it_could_not_reach_again() -> None:
    """Each try of a silent host costs the connect timeout: a command pays it once."""
    host = SilentHost(retry_unreachable=False)
    host._lock.waiting.set()

    errors = []
    for _ in range(3):
        with pytest.raises(HostUnreachable) as caught:
            host.connect()
        errors.append(str(caught.value))

    assert host.opened == 1
    assert errors == ["w1 (10.0.0.9): cannot connect (timed out, try 1)"] * 3


class RefusingHost(SSHConnection):
    def __init__(self) -> None:
        super().__init__(InventoryHost("w1", "10.0.0.9"), retry_unreachable=False)
        self.opened = 0

    def _open(self):
        self.opened += 1
        raise SSHError("w1 (10.0.0.9): authentication failed for user root")


def test_a_commands_connection_tries_again_after_a_failure_other_than_unreachable() -> None:
    host = RefusingHost()
    for _ in range(2):
        with pytest.raises(SSHError):
            host.connect()
    assert host.opened == 2


# A pool whose one host never answers its connect: the command is done at once.
EXITS_AT_ONCE = """
import time
from swarmctl.inventory import InventoryHost
from swarmctl.runtime.engine import DockerHost
from swarmctl.transport.group import Pool

DockerHost.connect = lambda self: time.sleep(60)
with Pool([InventoryHost("w1", "10.0.0.9")]) as pool:
    pool.connect(["w1"], engine=True)
"""


def test_a_background_connect_does_not_keep_the_process_from_exiting() -> None:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", EXITS_AT_ONCE], check=True, timeout=30)
    assert time.monotonic() - started < 10


def test_the_connection_to_sshd_sends_small_messages_at_once() -> None:
    """Nagle's algorithm off: paramiko's second message in a row (the next channel's open
    after a close) would wait for the host's delayed ACK, 40 ms per command."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        host = SSHConnection(InventoryHost("w1", "10.0.0.9", port=port))

        with host._socket("127.0.0.1") as sock:  # the address the ssh config gave
            assert sock.getpeername() == ("127.0.0.1", port)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
def test_what_sshd_sends_is_acknowledged_at_once() -> None:
    """sshd sends some messages back to back under Nagle's algorithm (the host keys after
    authentication, then the first channel's answer): the second waits for the ACK of the
    first, which Linux holds 40 ms once a connection is seen as request and answer."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        host = SSHConnection(InventoryHost("w1", "10.0.0.9", port=server.getsockname()[1]))
        with host._socket("127.0.0.1") as sock:
            sshd, _ = server.accept()
            with sshd:
                for _ in range(3):  # request and answer: Linux would go to delayed ACKs
                    sshd.sendall(b"answer")
                    sock.recv(64)
                    sock.sendall(b"request")
                    sshd.recv(64)
                sshd.sendall(b"answer")
                sock.recv(64)

                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1


def test_paramiko_logs_nothing_on_stderr() -> None:
    """paramiko logs, at ERROR, what it then raises (a refused channel); the user gets
    swarmctl's one-line error, not that line as well. (In a process of its own: pytest
    sets up logging, which a swarmctl command does not.)"""
    script = (
        "import logging, swarmctl.transport.ssh\n"
        "logging.getLogger('paramiko.transport').error('Secsh channel 1 open FAILED')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    assert (done.returncode, done.stderr) == (0, "")


def test_a_host_name_no_resolver_could_take_is_one_line_naming_it() -> None:
    host = SSHConnection(InventoryHost("w1", "a..b"))

    with pytest.raises(SSHError, match=r"^w1 \(a\.\.b:22\): 'a\.\.b' is not a valid host name$"):
        host._socket("a..b")
