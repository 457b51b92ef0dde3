"""Rolling updates meeting faults on real hosts, with `swarmctl supervise` running as in
the walkthrough: the command and the supervisor both carrying an update, a node lost
mid-update, the supervisor SIGKILLed while it carries a detached update, Ctrl-C on
`service update`. Each ends with exactly the replicas asked for, one task per slot,
and no batch repeated."""

import collections
import json
import signal
import subprocess
import time

import pytest

from tests.integration.conftest import Cluster, interruptible
from tests.integration.test_supervisor import Supervisor, containers, tasks, wait_for

pytestmark = pytest.mark.lab

REPLICAS = 3


@pytest.fixture
def web(cluster: Cluster) -> Cluster:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster(
        "service", "create", "-q", "--name", "web", "--replicas", str(REPLICAS),
        "--update-monitor", "1s", "swarmctl/tools", "sleep", "1000", warnings=True,
    )  # fmt: skip
    return cluster


def hostnames(cluster: Cluster) -> dict[str, str]:
    """Node id -> hostname."""
    return {
        cluster("node", "inspect", "--format", "{{.ID}}", h.name).stdout.strip(): h.name
        for h in cluster.lab.hosts
    }


def assert_exactly_the_replicas(cluster: Cluster, dead: str = "", replicas: int = REPLICAS) -> None:
    """`replicas` tasks meant to run and running, one per slot, each with its container,
    and no other container of the service on any reachable node."""
    meant = [t for t in tasks(cluster) if t["desired_state"] == "running"]
    assert sorted(t["slot"] for t in meant) == list(range(1, replicas + 1)), meant
    assert all(t["state"] == "running" for t in meant), meant
    on_nodes = containers(cluster)
    assert sum(len(ids) for ids in on_nodes.values()) == replicas, on_nodes
    assert {t["container_id"][:12] for t in meant} == {c for ids in on_nodes.values() for c in ids}
    if dead:
        names = hostnames(cluster)
        assert all(names.get(t["node_id"]) != dead for t in meant)


def no_race(cluster: Cluster) -> None:
    """No task of the service was turned away by a node (a rejection is a race lost, here:
    every node is up and the image is there)."""
    rejected = [t for t in tasks(cluster) if t["state"] == "rejected"]
    assert not rejected, [(t["slot"], t["error"]) for t in rejected]


def per_slot(cluster: Cluster, version: int) -> collections.Counter:
    """How many tasks each slot got for the service's spec `version`."""
    return collections.Counter(t["slot"] for t in tasks(cluster) if t["spec_version"] == version)


def version(cluster: Cluster) -> int:
    return int(cluster("service", "inspect", "--format", "{{.Version.Index}}", "web").stdout)


def update_state(cluster: Cluster) -> str:
    """The update's state, "" before the first update."""
    (service,) = json.loads(cluster("service", "inspect", "web").stdout)
    return service.get("UpdateStatus", {}).get("State", "")


@pytest.mark.modes("online", "offline")
def test_updates_and_rollbacks_with_the_supervisor_running_all_complete(web: Cluster) -> None:
    supervisor = Supervisor(web)
    try:
        runs = [
            ("service", "update", "--env-add", "RELEASE=2", "--update-parallelism", "2",
             "--update-order", "start-first", "web"),
            ("service", "rollback", "web"),
            ("service", "update", "--force", "web"),
            ("service", "update", "--force", "--update-order", "stop-first", "web"),
        ]  # fmt: skip
        for argv in runs:
            result = web(*argv, check=False, warnings=True)
            assert result.returncode == 0, (argv, result.stderr)
            assert "completed" in result.stdout, (argv, result.stdout)
            assert per_slot(web, version(web)) == {s: 1 for s in range(1, REPLICAS + 1)}, argv
            no_race(web)
            assert_exactly_the_replicas(web)
    finally:
        supervisor.stop()


# a crash; a crash with the cable pulled; a partition
@pytest.mark.parametrize("how", ["kill", "off", "unplug"])
def test_a_node_lost_mid_update_ends_with_the_replicas_on_the_others(
    web: Cluster, how: str
) -> None:
    supervisor = Supervisor(web)
    try:
        before = version(web)
        update = web.popen(
            "service", "update", "--update-delay", "2s", "--update-monitor", "10s",
            "--image", "nginx", "web",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        names = hostnames(web)

        def new_task_on_worker2() -> bool:
            return any(
                t["spec_version"] == before + 1
                and t["state"] == "running"
                and names.get(t["node_id"]) == "worker2"
                for t in tasks(web)
            )

        # Lost within its monitor window: it would count as the update's failure if it
        # were one.
        wait_for("a new task running on worker2", new_task_on_worker2, 90)
        getattr(web.lab.lab, how)("worker2")
        try:
            # Its tasks there end with the node, not on their own: swarm reschedules
            # them and carries on, and so does the update, without pausing.
            out, err = update.communicate(timeout=240)
            assert update.returncode == 0, err
            assert "verify: update completed" in out
            assert update_state(web) == "completed"
            wait_for(
                "the replicas on the other nodes",
                lambda: _settled(web, dead="worker2"),
                120,
            )
            assert_exactly_the_replicas(web, dead="worker2")
            meant = [t for t in tasks(web) if t["desired_state"] == "running"]
            assert {t["spec_version"] for t in meant} == {before + 1}
        finally:
            web.lab.lab.start("worker2")
        wait_for("worker2 ready", lambda: "Ready" in _node_line(web, "worker2"), 60)
        wait_for(
            "the leftovers on worker2 gone",
            lambda: sum(len(ids) for ids in containers(web).values()) == REPLICAS,
            60,
        )
        supervisor_tick_settle(web)
        assert_exactly_the_replicas(web)
    finally:
        supervisor.stop()


@pytest.mark.parametrize("order", ["stop-first", "start-first"])
def test_a_supervisor_killed_carrying_a_detached_update_is_taken_over_without_repeats(
    web: Cluster, order: str
) -> None:
    before = version(web)
    web(
        "service", "update", "--detach", "--update-order", order, "--update-delay", "1s",
        "--image", "nginx", "web", warnings=True,
    )  # fmt: skip
    first = Supervisor(web)
    try:
        wait_for("the first new task", lambda: per_slot(web, before + 1), 60)
    finally:
        first.stop(signal.SIGKILL)
    for pause in (0.7, 1.3):  # killed again, at other points of its ticks
        again = Supervisor(web)
        time.sleep(pause)
        again.stop(signal.SIGKILL)
    last = Supervisor(web)
    try:
        wait_for("the update to complete", lambda: update_state(web) == "completed", 120)
        supervisor_tick_settle(web)
        assert per_slot(web, before + 1) == {s: 1 for s in range(1, REPLICAS + 1)}
        no_race(web)
        assert_exactly_the_replicas(web)
    finally:
        last.stop()


@pytest.mark.modes("online", "offline")
def test_ctrl_c_on_an_update_with_the_supervisor_running_then_a_rerun_completes(
    web: Cluster,
) -> None:
    supervisor = Supervisor(web)
    try:
        before = version(web)
        update = web.popen(
            "service", "update", "--update-delay", "2s", "--image", "nginx", "web",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
        )  # fmt: skip
        wait_for("the first new task", lambda: per_slot(web, before + 1), 60)
        update.send_signal(signal.SIGINT)
        update.communicate(timeout=60)

        result = web("service", "update", "web", check=False, warnings=True)
        assert result.returncode == 0, result.stderr
        assert update_state(web) == "completed"
        supervisor_tick_settle(web)
        assert per_slot(web, before + 1) == {s: 1 for s in range(1, REPLICAS + 1)}
        no_race(web)
        assert_exactly_the_replicas(web)
    finally:
        supervisor.stop()


def _node_line(cluster: Cluster, name: str) -> str:
    return next((line for line in cluster("node", "ls").stdout.splitlines() if name in line), "")


def _settled(cluster: Cluster, dead: str, replicas: int = REPLICAS) -> bool:
    meant = [t for t in tasks(cluster) if t["desired_state"] == "running"]
    names = hostnames(cluster)
    return (
        len(meant) == replicas
        and all(t["state"] == "running" and names.get(t["node_id"]) != dead for t in meant)
        and update_state(cluster) not in ("updating", "rollback_started")
    )


def supervisor_tick_settle(cluster: Cluster) -> None:
    """Let the supervisor (500 ms a tick) run a few ticks: a duplicate it would wrongly
    start, or a batch it would repeat, is then there to be seen."""
    time.sleep(2)


def test_the_walkthroughs_update_and_rollback_behind_the_mesh_warn_of_nothing(
    cluster: Cluster,
) -> None:
    """As scripts/walkthrough: 5 nginx replicas on an overlay behind the mesh, a worker
    crashed and back, then a start-first update two at a time and a rollback, with the
    supervisor running all along."""
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("network", "create", "-d", "overlay", "ngx_net")
    cluster(
        "service", "create", "-q", "--name", "web", "--replicas", "5", "-p", "8080:80",
        "--network", "ngx_net", "nginx", warnings=True,
    )  # fmt: skip
    supervisor = Supervisor(cluster)
    try:
        cluster.lab.lab.kill("worker2")
        try:
            wait_for(
                "5 replicas on the others",
                lambda: _settled(cluster, dead="worker2", replicas=5),
                60,
            )
        finally:
            cluster.lab.lab.start("worker2")
        wait_for("worker2 ready", lambda: "Ready" in _node_line(cluster, "worker2"), 60)
        wait_for(
            "the leftovers on worker2 gone",
            lambda: sum(len(ids) for ids in containers(cluster).values()) == 5,
            60,
        )
        runs = [
            ("service", "update", "--env-add", "RELEASE=2", "--update-parallelism", "2",
             "--update-order", "start-first", "web"),
            ("service", "rollback", "web"),
        ]  # fmt: skip
        for argv in runs:
            result = cluster(*argv, check=False)
            assert result.returncode == 0, (argv, result.stderr)
            assert not [line for line in result.stderr.splitlines() if line.strip()], (
                argv,
                result.stderr,
            )
            assert per_slot(cluster, version(cluster)) == {s: 1 for s in range(1, 6)}, argv
            no_race(cluster)
            assert_exactly_the_replicas(cluster, replicas=5)
    finally:
        out = supervisor.stop()
    # The supervisor only warns of worker2 while it was crashed.
    troubles = [x for x in out.splitlines() if "level=warning" in x or "level=error" in x]
    assert all("worker2" in x and "level=warning" in x for x in troubles), troubles


def test_an_old_task_gets_its_stop_grace_period_with_the_supervisor_running(
    cluster: Cluster,
) -> None:
    # The task takes 2 s to end cleanly on SIGTERM and notes it in a volume; the
    # supervisor, seeing its container while `service update` stops it, removed it with
    # `docker rm -f` (SIGKILL at once) and the note was never written.
    cluster("init", "manager1")
    cluster("join", "--all")
    trap = "trap 'sleep 2; echo term > /data/stopped; exit 0' TERM; while :; do sleep 0.2; done"
    cluster(
        "service", "create", "-q", "--name", "web", "--stop-grace-period", "30s",
        "--constraint", "node.hostname==worker1",
        "--mount", "type=volume,source=calm_data,target=/data",
        "swarmctl/tools", "sh", "-c", trap, warnings=True,
    )  # fmt: skip
    supervisor = Supervisor(cluster)
    try:
        result = cluster("service", "update", "--force", "web", check=False, warnings=True)
        assert result.returncode == 0, result.stderr
        seen = cluster.lab.ssh(
            "worker1", "docker run --rm -v calm_data:/data swarmctl/tools cat /data/stopped"
        )
        assert seen.stdout.strip() == "term"
        assert_exactly_the_replicas(cluster, replicas=1)
    finally:
        supervisor.stop()
