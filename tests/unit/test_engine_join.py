"""How an engine channel is joined to dockerd: by sshd, else by `docker system dial-stdio`."""

import paramiko

from swarmctl.runtime.engine import Engine


class Conn:
    """What Engine needs of an SSH connection; sshd answers `refusal` to a socket."""

    name = "w1"
    sudo = False

    def __init__(self, refusal: int | None) -> None:
        self.refusal = refusal
        self.asked: list[str] = []

    def open_unix_socket(self, path: str):
        self.asked.append(f"socket {path}")
        if self.refusal is not None:
            raise paramiko.ChannelException(self.refusal, "refused")
        return "forwarded"

    def open_stream(self, command: list[str]):
        self.asked.append(" ".join(command))
        return "dial-stdio"


def joins(conn: Conn, times: int = 2) -> list[str]:
    engine = Engine(conn, 1.0)  # type: ignore[arg-type]
    return [engine._join() for _ in range(times)]


def test_sshd_joins_the_socket_itself() -> None:
    conn = Conn(refusal=None)

    assert joins(conn) == ["forwarded", "forwarded"]
    assert conn.asked == ["socket /var/run/docker.sock"] * 2


def test_forwarding_disabled_is_not_asked_for_again() -> None:
    conn = Conn(refusal=paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    assert joins(conn) == ["dial-stdio", "dial-stdio"]
    assert conn.asked == [
        "socket /var/run/docker.sock",
        "docker system dial-stdio",
        "docker system dial-stdio",
    ]


def test_a_socket_that_cannot_be_joined_now_is_tried_again_next_time() -> None:
    conn = Conn(refusal=paramiko.OPEN_FAILED_CONNECT_FAILED)  # dockerd down, say

    assert joins(conn) == ["dial-stdio", "dial-stdio"]
    assert conn.asked == ["socket /var/run/docker.sock", "docker system dial-stdio"] * 2


def test_a_login_through_sudo_goes_straight_to_dial_stdio() -> None:
    conn = Conn(refusal=None)
    conn.sudo = True

    assert joins(conn) == ["dial-stdio", "dial-stdio"]
    assert conn.asked == ["docker system dial-stdio"] * 2
