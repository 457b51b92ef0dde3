"""`--dry-run` on real hosts: the plan it prints is the one the real command carries out,
and it starts nothing on any host."""

import re

import pytest

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.lab


def containers(cluster: Cluster) -> dict[str, list[str]]:
    return {
        h.name: cluster.lab.ssh(h.name, "docker ps -aq").stdout.split() for h in cluster.lab.hosts
    }


def test_a_dry_run_create_places_tasks_as_the_real_create_then_does(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    before = containers(cluster)
    state = cluster.env["SWARMCTL_STATE"]
    with open(state, "rb") as file:
        recorded = file.read()

    planned = cluster(
        "service", "create", "--dry-run", "--name", "web", "--replicas", "4", "nginx",
        check=False,
    )  # fmt: skip
    assert planned.returncode == 2, planned.stderr
    placed = dict(re.findall(r"^\+ task (web\.\d+) on (\S+)$", planned.stdout, re.M))
    assert sorted(placed) == ["web.1", "web.2", "web.3", "web.4"]
    assert containers(cluster) == before  # nothing started, on any host
    with open(state, "rb") as file:
        assert file.read() == recorded

    cluster("service", "create", "--name", "web", "--replicas", "4", "nginx")
    rows = cluster("service", "ps", "web", "--format", "{{.Name}} {{.Node}}").stdout
    assert dict(line.split() for line in rows.splitlines()) == placed
    assert cluster("service", "scale", "--dry-run", "web=4", check=False).returncode == 0
