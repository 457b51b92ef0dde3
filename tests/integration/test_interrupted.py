"""Ctrl-C in the middle of `service scale` and `service create`, then the command a user
runs again: it adopts what the interrupted one started and ends with exactly the
replicas asked for, on the nodes and in the state."""

import collections
import json
import signal
import subprocess

import pytest

from tests.integration.conftest import Cluster, interruptible

pytestmark = pytest.mark.lab

# Where Ctrl-C lands: "before", at the first line (`scaled to`, or the new service's ID),
# before any task is placed; "preparing", at the first task reported preparing, while
# containers are being started; "running", at the first started one, as the outcomes
# are reported and before they are written.
POINTS = ["before", "preparing", "running"]


def interrupt(cluster: Cluster, point: str, *args: str) -> subprocess.CompletedProcess:
    """Run swarmctl and send it SIGINT, as Ctrl-C would, once its output reaches `point`."""
    proc = cluster.popen(
        *args,
        env={**cluster.env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if point == "before" or line.rstrip().endswith(f": {point}"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    result = subprocess.CompletedProcess(args, proc.returncode, "".join(lines) + out, err)
    # It finished before the signal came, or stopped at it, saying so in one line.
    assert result.returncode in (0, 130), result
    if result.returncode == 130:
        assert err.strip().splitlines() == [
            "Error: interrupted (the state file is whole; the next command on the same "
            "services, or the supervisor, finishes what was started)"
        ]
    return result


def containers(cluster: Cluster, service: str) -> dict[str, str]:
    """Task ID of every running container of the service, over the whole lab."""
    found = {}
    for host in cluster.lab.hosts:
        listing = cluster.lab.ssh(
            host.name,
            "docker ps --filter label=swarmctl.service.name="
            f"{service} --format '{{{{.ID}}}} {{{{.Label \"swarmctl.task.id\"}}}}'",
        ).stdout.split("\n")
        found.update(line.split() for line in listing if line.strip())
    return found


def running_tasks(cluster: Cluster, service: str) -> list[dict]:
    ids = cluster("service", "ps", "-q", service).stdout.split()
    records = json.loads(cluster("inspect", "--type", "task", *ids).stdout)
    return [t for t in records if t["desired_state"] == "running" and t["state"] == "running"]


def assert_exactly(cluster: Cluster, service: str, replicas: int) -> None:
    on_nodes = containers(cluster, service)
    tasks = running_tasks(cluster, service)
    assert len(on_nodes) == replicas
    assert len(tasks) == replicas
    assert sorted(t["slot"] for t in tasks) == list(range(1, replicas + 1))
    assert collections.Counter(on_nodes.values()) == collections.Counter(t["id"] for t in tasks)
    assert {t["container_id"][:12] for t in tasks} == set(on_nodes)


@pytest.fixture
def pf(cluster: Cluster) -> Cluster:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("service", "create", "--name", "pf", "--replicas", "3", "nginx")
    return cluster


@pytest.mark.parametrize("point", POINTS)
def test_a_rerun_of_an_interrupted_scale_adopts_and_converges(pf: Cluster, point: str) -> None:
    interrupt(pf, point, "service", "scale", "pf=12")

    again = pf("service", "scale", "pf=12")

    assert "verify: Service converged" in again.stdout
    assert_exactly(pf, "pf", 12)


@pytest.mark.modes("online", "offline")
def test_an_interrupted_scale_then_a_smaller_one_leaves_only_those(pf: Cluster) -> None:
    interrupt(pf, "running", "service", "scale", "pf=9")

    pf("service", "scale", "pf=5")

    assert_exactly(pf, "pf", 5)


@pytest.mark.parametrize("point", POINTS)
def test_an_interrupted_create_converges_when_scaled_to_its_count(
    cluster: Cluster, point: str
) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    create = ["service", "create", "--name", "web", "--replicas", "6", "nginx"]
    interrupt(cluster, point, *create)

    retried = cluster(*create, check=False)
    assert retried.returncode == 1
    assert retried.stderr.strip() == "Error: service web already exists"
    again = cluster("service", "scale", "web=6")

    assert "verify: Service converged" in again.stdout
    assert_exactly(cluster, "web", 6)


def test_the_points_of_interruption_are_lines_the_command_prints(pf: Cluster) -> None:
    out = pf("service", "scale", "pf=6").stdout.splitlines()
    assert out[0] == "pf scaled to 6"
    assert any(line.endswith(": preparing") for line in out)
    assert any(line.endswith(": running") for line in out)
