"""Connections from the lab's control namespace: a host name is looked up there, where
the connection is made, and an address is not looked up at all."""

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from swarmctl import netns
from swarmctl.inventory import load_inventory
from swarmctl.transport.ssh import SSHConnection, Trust
from tests.integration.conftest import RunningLab

pytestmark = pytest.mark.lab

NAME = "only-in-the-control-namespace.invalid"


@pytest.fixture
def ctl_hosts(lab: RunningLab) -> str:
    """A hosts file for the control namespace alone (`ip netns exec` binds it over
    /etc/hosts): NAME is manager1 there and unknown everywhere else."""
    folder = Path("/etc/netns") / lab.layout.ctl_netns
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hosts").write_text(f"{lab.host('manager1').address} {NAME}\n")
    yield lab.host("manager1").address
    (folder / "hosts").unlink()
    folder.rmdir()
    if not any(folder.parent.iterdir()):
        folder.parent.rmdir()


def banner(sock: socket.socket) -> bytes:
    with sock:
        return sock.recv(64)


def test_a_name_known_only_inside_the_namespace_connects(lab: RunningLab, ctl_hosts: str) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(NAME, 22)  # the machine's own resolver does not know it

    sock = netns.connect(NAME, 22, netns=lab.layout.ctl_netns, timeout=5)

    assert sock.getpeername()[0] == ctl_hosts
    assert banner(sock).startswith(b"SSH-2.0-")


def test_an_unknown_name_is_an_os_error_naming_it(lab: RunningLab) -> None:
    with pytest.raises(OSError, match=NAME):
        netns.connect(NAME, 22, netns=lab.layout.ctl_netns, timeout=5)


def test_an_address_is_used_without_any_lookup(
    lab: RunningLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lookup(*args, **kwargs):
        raise AssertionError("looked up")

    monkeypatch.setattr(netns.subprocess, "run", no_lookup)
    address = lab.host("worker1").address

    assert banner(netns.connect(address, 22, netns=lab.layout.ctl_netns, timeout=5)).startswith(
        b"SSH-2.0-"
    )


def test_a_lab_inventory_host_named_only_inside_the_namespace_runs_commands(
    lab: RunningLab, ctl_hosts: str
) -> None:
    manager1 = load_inventory(lab.layout.inventory).get("manager1")
    by_name = replace(manager1, address=NAME)

    conn = SSHConnection(by_name, Trust(accept_new=True))
    try:
        answer = conn.run(["hostname"]).stdout
    finally:
        conn.close()

    assert answer == lab.ssh("manager1", "hostname").stdout


def test_a_connection_from_the_namespace_sends_small_messages_at_once(lab: RunningLab) -> None:
    conn = SSHConnection(
        load_inventory(lab.layout.inventory).get("worker1"), Trust(accept_new=True)
    )
    try:
        conn.run(["true"])
        sock = conn._transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        conn.close()
