"""How an engine channel is joined to dockerd: by sshd, else by `docker system dial-stdio`;
and when a channel is over."""

import io

import paramiko
import pytest

from swarmctl.runtime.engine import Engine, EngineError

VERSION = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Channel:
    """A channel whose far end answers `answer` (b"": closes without answering)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.closed = False
        self.eof_received = False

    def settimeout(self, timeout: float) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        pass

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.answer)

    def close(self) -> None:
        self.closed = True


class Conn:
    """What Engine needs of an SSH connection. sshd refuses the socket when `refuses`
    (OpenSSH says "connect failed" whether forwarding is disabled or dockerd is down);
    dockerd answers unless `down`."""

    name = "w1"
    sudo = False

    def __init__(self, refuses: bool = False, down: bool = False) -> None:
        self.refuses = refuses
        self.down = down
        self.asked: list[str] = []
        self.channels: list[Channel] = []

    def open_unix_socket(self, path: str) -> Channel:
        self.asked.append(f"socket {path}")
        if self.refuses or self.down:
            raise paramiko.ChannelException(paramiko.OPEN_FAILED_CONNECT_FAILED, "Connect failed")
        return self._channel()

    def open_stream(self, command: list[str]) -> Channel:
        self.asked.append(" ".join(command))
        return self._channel()

    def _channel(self) -> Channel:
        self.channels.append(Channel(b"" if self.down else VERSION))
        return self.channels[-1]


def two_channels(conn: Conn) -> Engine:
    """One request on a first channel, then one on a second."""
    engine = Engine(conn, 1.0)  # type: ignore[arg-type]
    for _ in range(2):
        engine.get("/version")
        engine.close()
    return engine


SOCKET = "socket /var/run/docker.sock"
DIAL = "docker system dial-stdio"


def test_sshd_joins_the_socket_itself() -> None:
    conn = Conn()

    two_channels(conn)

    assert conn.asked == [SOCKET, SOCKET]


def test_a_host_that_forbids_forwarding_is_asked_for_the_socket_once() -> None:
    conn = Conn(refuses=True)

    two_channels(conn)

    assert conn.asked == [SOCKET, DIAL, DIAL]


def test_a_refusal_while_dockerd_is_down_is_not_taken_for_forbidden_forwarding() -> None:
    conn = Conn(down=True)
    engine = Engine(conn, 1.0)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(EngineError):  # a miss, never an empty answer
            engine.get("/containers/json")
    conn.down = False
    engine.get("/version")

    assert conn.asked == [SOCKET, DIAL, SOCKET, DIAL, SOCKET]


def test_a_login_through_sudo_goes_straight_to_dial_stdio() -> None:
    conn = Conn()
    conn.sudo = True

    two_channels(conn)

    assert conn.asked == [DIAL, DIAL]


def test_a_channel_dockerd_closed_is_opened_again_and_counted() -> None:
    """sshd passes dockerd's close (a restart) on as EOF alone, not as the channel's end."""
    conn = Conn()
    engine = Engine(conn, 1.0)  # type: ignore[arg-type]
    engine.get("/version")
    conn.channels[-1].eof_received = True

    engine.get("/version")

    assert conn.asked == [SOCKET, SOCKET]
    assert engine.reconnects == 2
