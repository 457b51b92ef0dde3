"""Health checks on real hosts: a task is STARTING until its check passes, the command
waits for it, and one that never passes is reported as swarm reports it."""

import json
import time

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_supervisor import running, tasks

pytestmark = pytest.mark.lab

# Ready two seconds after it starts: its health check fails until then.
SLOW_START = ["sh", "-c", "sleep 2 && touch /tmp/ready && exec sleep 1000"]
HEALTH = ["--health-cmd", "test -f /tmp/ready", "--health-interval", "300ms"]


@pytest.fixture
def joined(cluster: Cluster) -> Cluster:
    cluster("init", "manager1")
    cluster("join", "--all")
    return cluster


def replicas(cluster: Cluster) -> dict[str, str]:
    rows = cluster("service", "ls", "--format", "json").stdout.splitlines()
    return {r["Name"]: r["Replicas"] for r in map(json.loads, rows)}


@pytest.mark.modes("online", "offline")
def test_create_waits_for_the_health_check_and_the_supervisor_finishes_a_detached_one(
    joined: Cluster,
) -> None:
    out = joined(
        "service", "create", "--name", "slow", "--replicas", "2", *HEALTH,
        "--health-retries", "30", "swarmctl/tools", *SLOW_START,
    ).stdout  # fmt: skip
    assert "starting" in out and "verify: Service converged" in out
    assert len(running(joined, "slow")) == 2
    assert replicas(joined)["slow"] == "2/2"

    joined(
        "service", "create", "--detach", "--name", "later", *HEALTH, "--health-retries", "30",
        "swarmctl/tools", *SLOW_START,
    )  # fmt: skip
    (task,) = tasks(joined, "later")
    assert task["state"] == "starting"  # running, but not yet healthy: not counted
    assert replicas(joined)["later"] == "0/1"
    time.sleep(3)
    joined("supervise", "--once")
    assert [t["state"] for t in tasks(joined, "later")] == ["running"]
    events = joined("events", "--filter", "service=later").stdout
    assert 'state.transition="STARTING->RUNNING"' in events


def test_a_task_that_never_turns_healthy_fails_the_create_saying_why(joined: Cluster) -> None:
    result = joined(
        "service", "create", "--name", "sick", "--health-cmd", "false", "--health-interval",
        "300ms", "--health-retries", "1", "--health-timeout", "1s", "swarmctl/tools",
        "sleep", "1000", check=False,
    )  # fmt: skip
    assert result.returncode == 1
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "service sick did not converge (0 of 1 tasks running)" in error
    assert "failed: task: dockerexec: unhealthy container" in error


def test_no_healthcheck_turns_off_the_images_own(joined: Cluster) -> None:
    joined(
        "service", "create", "--name", "plain", "--no-healthcheck", "swarmctl/tools",
        "sleep", "1000",
    )  # fmt: skip
    (task,) = running(joined, "plain")
    host = joined(
        "inspect", "--type", "node", "--format", "{{.Description.Hostname}}", task["node_id"]
    ).stdout.strip()
    test = joined.lab.ssh(
        host, f"docker inspect --format '{{{{json .Config.Healthcheck}}}}' {task['container_id']}"
    ).stdout.strip()
    assert json.loads(test) == {"Test": ["NONE"]}
    spec = json.loads(joined("service", "inspect", "plain").stdout)[0]["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"] == {"Test": ["NONE"]}
