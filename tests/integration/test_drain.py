"""Draining a node on real hosts: its tasks run elsewhere when the command returns, a
global service leaves it, and a task a local volume holds there is refused unless forced."""

import json

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_supervisor import containers, running

pytestmark = pytest.mark.lab


def node_id(cluster: Cluster, name: str) -> str:
    return json.loads(cluster("node", "inspect", name).stdout)[0]["ID"]


def availability(cluster: Cluster, name: str) -> str:
    return json.loads(cluster("node", "inspect", name).stdout)[0]["Spec"]["Availability"]


@pytest.mark.modes("online", "offline")
def test_a_drain_moves_the_tasks_away_before_it_returns(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("service", "create", "-q", "--name", "web", "--replicas", "3", "nginx", warnings=True)
    cluster(
        "service", "create", "-q", "--name", "agent", "--mode", "global",
        "swarmctl/tools", "sleep", "1000", warnings=True,
    )  # fmt: skip
    worker1 = node_id(cluster, "worker1")
    assert worker1 in {t["node_id"] for t in running(cluster, "web")}

    cluster("node", "update", "--availability", "drain", "worker1")

    web = running(cluster, "web")
    assert len(web) == 3 and worker1 not in {t["node_id"] for t in web}
    assert worker1 not in {t["node_id"] for t in running(cluster, "agent")}
    assert len(running(cluster, "agent")) == 2
    assert containers(cluster, "web").get("worker1", []) == []
    assert containers(cluster, "agent").get("worker1", []) == []
    cluster("node", "update", "--availability", "active", "worker1")
    assert availability(cluster, "worker1") == "active"


@pytest.mark.modes("online", "offline")
def test_a_task_pinned_by_its_volume_is_not_drained_unless_forced(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster(
        "service", "create", "-q", "--name", "db", "--constraint", "node.hostname==worker1",
        "--mount", "type=volume,source=db_data,target=/data", "nginx", warnings=True,
    )  # fmt: skip
    before = cluster("node", "inspect", "worker1").stdout

    refused = cluster("node", "update", "--availability", "drain", "worker1", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "Error: task db.1 is pinned to worker1 by volume db_data: drained, it would wait, "
        "stopped, until worker1 is active again; --force drains anyway"
    )
    assert cluster("node", "inspect", "worker1").stdout == before
    assert len(running(cluster, "db")) == 1

    forced = cluster(
        "node", "update", "--availability", "drain", "--force", "worker1", warnings=True
    )
    assert "task db.1 is pinned to worker1 by volume db_data: it waits" in forced.stderr
    assert availability(cluster, "worker1") == "drain"
    assert running(cluster, "db") == [] and containers(cluster, "db").get("worker1", []) == []
