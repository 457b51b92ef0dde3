"""swarmctl run as from an ops laptop whose resolver is dead: no lookup on the control path."""

import subprocess
import sys

import pytest

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.lab

LOOKUP = """
import socket
try:
    socket.gethostbyname("dead-dns.example")
except OSError:
    print("no answer")
"""


@pytest.mark.modes("offline")
def test_offline_hosts_have_no_registry(lab) -> None:
    assert lab.lab.recorded_offline()
    pulled = lab.ssh("worker1", "docker pull nginx", check=False)
    assert pulled.returncode != 0
    assert "nginx" in lab.ssh("worker1", "docker image ls --format '{{.Repository}}'").stdout
    lab.lab.up(3)  # a later `lab up` keeps the mode
    assert lab.lab.recorded_offline()


def test_the_control_resolver_drops_and_logs_every_query(lab) -> None:
    result = subprocess.run(
        lab.lab.control_argv([sys.executable, "-c", LOOKUP]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip() == "no answer"
    assert ("dead-dns.example.", "A") in lab.lab.dns_queries()


def test_control_side_hides_the_lab_host_names(lab) -> None:
    result = subprocess.run(
        lab.lab.control_argv(["cat", "/etc/hosts", "/etc/resolv.conf"]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "manager1" not in result.stdout
    assert f"nameserver {lab.layout.dns_sink}" in result.stdout


def test_service_create_makes_no_dns_query(cluster: Cluster, tmp_path) -> None:
    # an ops laptop's usual ssh config: paramiko renders %l (the local FQDN) for IdentityFile
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host *\n    IdentityFile ~/.ssh/id_ed25519\n")
    cluster.env["HOME"] = str(tmp_path)
    cluster.dead_dns = True
    before = len(cluster.lab.lab.dns_queries())
    cluster("init", "manager1")
    cluster("join", "--all")
    created = cluster("service", "create", "--name", "web", "--replicas", "3", "nginx")
    assert "verify: Service converged" in created.stdout
    assert cluster.lab.lab.dns_queries()[before:] == []
