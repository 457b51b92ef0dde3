"""Draining a node on real hosts: its tasks run elsewhere when the command returns, moved
with each service's update policy (watched on the hosts while it runs), a global service
leaves it and comes back with `active`, a drain a command left is carried on by the
supervisor, a paused node keeps its tasks and takes no new ones, and a task a local volume
holds there is refused unless forced."""

import json
import signal
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest

from tests.integration.conftest import Cluster, interruptible
from tests.integration.test_supervisor import Supervisor, containers, running, tasks, wait_for
from tests.integration.test_update_faults import assert_exactly_the_replicas, hostnames

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


def all_on_worker1(cluster: Cluster, *create: str) -> None:
    """A cluster whose service `web` has all its tasks on worker1: the other nodes were
    paused while it was created, and are active again."""
    cluster("init", "manager1")
    cluster("join", "--all")
    for name in ("manager1", "worker2"):
        cluster("node", "update", "--availability", "pause", name)
    cluster("service", "create", "-q", "--name", "web", *create, warnings=True)
    for name in ("manager1", "worker2"):
        cluster("node", "update", "--availability", "active", name)


def on_nodes(cluster: Cluster, service: str = "web", names: dict | None = None) -> list[str]:
    """The hostname of each running task of the service, sorted."""
    names = names or hostnames(cluster)
    return sorted(names[t["node_id"]] for t in running(cluster, service))


def counting(cluster: Cluster, docker_filter: str) -> Callable[[], int]:
    """Counts the containers of `web` that `docker ps --filter …` lists on all hosts."""
    command = f"docker ps -q --filter label=swarmctl.service.name=web --filter {docker_filter}"

    def count() -> int:
        with ThreadPoolExecutor(len(cluster.lab.hosts)) as pool:
            found = pool.map(
                lambda h: cluster.lab.ssh(h.name, command).stdout.split(), cluster.lab.hosts
            )
            return sum(len(ids) for ids in found)

    return count


def drain_watched(cluster: Cluster, node: str, count: Callable[[], int]) -> list[int]:
    """Drain the node, counting containers on the hosts until the command returns."""
    drain = cluster.popen(
        "node", "update", "--availability", "drain", node,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = []
    while drain.poll() is None:
        seen.append(count())
    _, err = drain.communicate(timeout=60)
    assert drain.returncode == 0, err
    return [*seen, count()]


def moves(cluster: Cluster) -> list[tuple[dict, dict]]:
    """(old task on worker1, the task that replaced it) of each slot of `web`."""
    names = hostnames(cluster)
    found = tasks(cluster)
    return [
        (old, new)
        for old in found
        if names[old["node_id"]] == "worker1"
        for new in found
        if new["slot"] == old["slot"] and new["desired_state"] == "running"
    ]


def test_a_paused_node_keeps_its_tasks_and_takes_no_new_ones_and_active_moves_none_back(
    cluster: Cluster,
) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("service", "create", "-q", "--name", "web", "--replicas", "3", "nginx", warnings=True)
    before = {t["id"] for t in running(cluster)}
    cluster("node", "update", "--availability", "pause", "worker1")
    cluster("node", "update", "--availability", "pause", "worker2")
    assert {t["id"] for t in running(cluster)} == before
    assert availability(cluster, "worker1") == "pause"

    cluster("service", "scale", "web=5")
    assert on_nodes(cluster) == ["manager1", "manager1", "manager1", "worker1", "worker2"]
    cluster("node", "update", "--availability", "active", "worker1")
    cluster("node", "update", "--availability", "active", "worker2")
    assert on_nodes(cluster) == ["manager1", "manager1", "manager1", "worker1", "worker2"]


def test_a_stop_first_drain_moves_one_slot_at_a_time(cluster: Cluster) -> None:
    all_on_worker1(cluster, "--replicas", "3", "swarmctl/tools", "sleep", "1000")
    assert on_nodes(cluster) == ["worker1"] * 3

    seen = drain_watched(cluster, "worker1", counting(cluster, "status=running"))

    assert min(seen) >= 2, seen  # parallelism 1: never two replicas down
    assert_exactly_the_replicas(cluster, dead="worker1")
    # Each slot was down from its new task's making until it ran: one slot at a time.
    down = sorted((new["created_at"], new["timestamps"]["running"]) for _, new in moves(cluster))
    assert len(down) == 3
    assert all(ran < made for (_, ran), (made, _) in pairwise(down)), down


@pytest.mark.modes("online", "offline")
def test_a_start_first_drain_keeps_every_replica_running_and_healthy(cluster: Cluster) -> None:
    all_on_worker1(
        cluster, "--replicas", "3", "--update-order", "start-first", "--update-parallelism", "2",
        "--health-cmd", "true", "--health-interval", "300ms", "--health-retries", "1",
        "swarmctl/tools", "sleep", "1000",
    )  # fmt: skip

    seen = drain_watched(cluster, "worker1", counting(cluster, "health=healthy"))

    assert min(seen) >= 3, seen
    assert_exactly_the_replicas(cluster, dead="worker1")
    pairs = moves(cluster)
    assert len(pairs) == 3
    # The old task stopped only once its replacement ran, healthy.
    assert all(old["timestamps"]["shutdown"] > new["timestamps"]["running"] for old, new in pairs)
    assert all(old["message"] == "drained" for old, _ in pairs)


def test_a_global_service_stops_gracefully_on_drain_and_comes_back_on_active(
    cluster: Cluster,
) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    # Its task notes SIGTERM in a volume after 2 s: killed at once, it would note nothing.
    trap = "trap 'sleep 2; echo term > /data/stopped; exit 0' TERM; while :; do sleep 0.2; done"
    cluster(
        "service", "create", "-q", "--name", "agent", "--mode", "global",
        "--stop-grace-period", "30s", "--mount", "type=volume,source=agent_data,target=/data",
        "swarmctl/tools", "sh", "-c", trap, warnings=True,
    )  # fmt: skip
    cluster("node", "update", "--availability", "drain", "worker1")
    assert on_nodes(cluster, "agent") == ["manager1", "worker2"]
    assert containers(cluster, "agent")["worker1"] == []
    seen = cluster.lab.ssh(
        "worker1", "docker run --rm -v agent_data:/data swarmctl/tools cat /data/stopped"
    )
    assert seen.stdout.strip() == "term"

    cluster("node", "update", "--availability", "active", "worker1")
    assert on_nodes(cluster, "agent") == ["manager1", "worker1", "worker2"]
    assert len(containers(cluster, "agent")["worker1"]) == 1


def test_the_supervisor_carries_on_a_drain_interrupted_by_ctrl_c(cluster: Cluster) -> None:
    all_on_worker1(
        cluster, "--replicas", "3", "--update-delay", "3s", "swarmctl/tools", "sleep", "1000"
    )
    names = hostnames(cluster)
    drain = cluster.popen(
        "node", "update", "--availability", "drain", "worker1",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
    )  # fmt: skip
    wait_for(
        "the first task moved", lambda: on_nodes(cluster, names=names).count("worker1") < 3, 60
    )
    drain.send_signal(signal.SIGINT)
    drain.communicate(timeout=60)
    assert "worker1" in on_nodes(cluster)  # the delay held the others back

    supervisor = Supervisor(cluster)
    try:
        # Stop-first: the last task leaves worker1 before its replacement runs.
        def drained() -> bool:
            running = on_nodes(cluster, names=names)
            return len(running) == 3 and "worker1" not in running

        wait_for("the drain to end", drained, 60)
        assert_exactly_the_replicas(cluster, dead="worker1")
        assert len(moves(cluster)) == 3  # one new task per slot: no move repeated
    finally:
        supervisor.stop()
