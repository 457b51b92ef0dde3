"""A node's Docker Engine API over its SSH connection: sshd joins the channel to dockerd's
socket, and where its configuration forbids that, `docker system dial-stdio` does."""

import time
from pathlib import Path

import pytest

from swarmctl.inventory import load_inventory
from swarmctl.runtime.engine import DockerHost
from swarmctl.transport.ssh import Trust
from tests.integration.conftest import RunningLab

pytestmark = pytest.mark.lab

DIAL_STDIO = "docker system dial-stdio"


def worker1(lab: RunningLab) -> DockerHost:
    return DockerHost(load_inventory(lab.layout.inventory).get("worker1"), Trust(accept_new=True))


def processes(lab: RunningLab) -> str:
    return lab.ssh("worker1", "ps -eo args").stdout  # the host's own pid namespace


@pytest.fixture
def no_forwarding(lab: RunningLab):
    """worker1's sshd with forwarding disabled, as on a hardened host."""
    config = Path(lab.host("worker1").dir) / "ssh" / "sshd_config"
    kept = config.read_text()
    config.write_text("DisableForwarding yes\n" + kept)
    reload_sshd(lab)
    yield
    config.write_text(kept)
    reload_sshd(lab)


def reload_sshd(lab: RunningLab) -> None:
    """SIGHUP: sshd starts itself again and reads its config; wait until it listens."""
    lab.ssh("worker1", "kill -HUP $(cat /run/sshd.pid)")
    deadline = time.monotonic() + 10
    while lab.ssh("worker1", "true", check=False).returncode != 0:
        assert time.monotonic() < deadline, "worker1's sshd did not come back"
        time.sleep(0.1)


def test_the_engine_is_read_with_no_process_started_on_the_host(lab: RunningLab) -> None:
    host = worker1(lab)
    try:
        version = host.engine().get("/version")
        assert host.containers("no-such-cluster") == []

        assert version["ApiVersion"]
        assert DIAL_STDIO not in processes(lab)
    finally:
        host.close()


def test_a_host_that_forbids_forwarding_is_read_through_dial_stdio(
    lab: RunningLab, no_forwarding: None
) -> None:
    host = worker1(lab)
    try:
        first = host.engine().get("/version")
        assert DIAL_STDIO in processes(lab)
        host.engine().close()
        second = host.engine().get("/version")

        assert first == second
        assert host.engine_sessions == 2
    finally:
        host.close()
