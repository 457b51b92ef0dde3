"""Rolling updates on real hosts: every slot gets a new task batch by batch, a failed
batch pauses or rolls back with a non-zero exit, `service rollback` returns to the
previous spec, and an update that changes nothing touches nothing."""

import hashlib
import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, interruptible
from tests.integration.test_supervisor import Supervisor, running, tasks, wait_for

pytestmark = pytest.mark.lab

SLEEP = ["sleep", "1000"]
# A reference no registry and no node has; not resolved, so that the update reaches the nodes
MISSING = ["--no-resolve-image", "--image", "swarmctl/missing"]


@pytest.fixture
def web(cluster: Cluster) -> Cluster:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster(
        "service", "create", "-q", "--name", "web", "--replicas", "3", "--update-monitor", "1s",
        "swarmctl/tools", *SLEEP, warnings=True,
    )  # fmt: skip
    return cluster


def current(cluster: Cluster) -> dict[int, dict]:
    """Slot -> the task meant to run in it."""
    return {t["slot"]: t for t in tasks(cluster) if t["desired_state"] == "running"}


def images_running(cluster: Cluster) -> list[str]:
    """The image of every running container of web, on every host."""
    found = []
    for host in cluster.lab.hosts:
        out = cluster.lab.ssh(
            host.name,
            "docker ps --filter label=swarmctl.service.name=web --format '{{.Image}}'",
        ).stdout
        found += out.split()
    return sorted(found)


def update_status(cluster: Cluster) -> dict:
    (service,) = json.loads(cluster("service", "inspect", "web").stdout)
    return service


def error_line(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if x.startswith("Error:")]
    return line


def state_hash(cluster: Cluster) -> str:
    return hashlib.sha256(Path(cluster.env["SWARMCTL_STATE"]).read_bytes()).hexdigest()


@pytest.mark.modes("online", "offline")
def test_an_image_update_gives_every_slot_a_new_task_stop_first_then_start_first(
    web: Cluster,
) -> None:
    before = current(web)
    out = web("service", "update", "--image", "nginx", "web", warnings=True).stdout
    assert "verify: update completed" in out
    after = current(web)
    assert sorted(after) == [1, 2, 3]
    for slot, task in after.items():
        assert task["id"] != before[slot]["id"] and task["state"] == "running"
        assert task["image"].startswith("nginx")
    old = {t["id"]: t for t in tasks(web)}
    assert all(old[t["id"]]["desired_state"] == "shutdown" for t in before.values())
    assert len(images_running(web)) == 3
    assert all("nginx" in i for i in images_running(web))

    out = web(
        "service", "update", "--update-order", "start-first", "--image", "swarmctl/tools", "web",
        warnings=True,
    ).stdout  # fmt: skip
    assert "verify: update completed" in out
    assert len(images_running(web)) == 3
    assert all("swarmctl/tools" in i for i in images_running(web))
    service = update_status(web)
    assert service["UpdateStatus"]["State"] == "completed"
    assert service["Spec"]["UpdateConfig"]["Order"] == "start-first"
    assert service["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith("nginx")


@pytest.mark.modes("online", "offline")
def test_an_update_to_a_missing_image_pauses_after_the_first_batch_and_rollback_undoes_it(
    web: Cluster,
) -> None:
    before = current(web)
    result = web("service", "update", *MISSING, "web", check=False)
    assert result.returncode == 1
    error = error_line(result.stderr)
    assert "service web: paused: update paused due to failure of task web.1" in error
    assert "swarmctl/missing" in error
    assert update_status(web)["UpdateStatus"]["State"] == "paused"
    after = current(web)
    assert [after[s]["id"] for s in (2, 3)] == [before[s]["id"] for s in (2, 3)]
    assert len(running(web)) == 2  # the other slots keep running the old spec

    out = web("service", "rollback", "web", warnings=True).stdout
    assert "verify: rollback completed" in out
    assert len(running(web)) == 3
    assert all("swarmctl/tools" in i for i in images_running(web))
    assert update_status(web)["UpdateStatus"]["State"] == "rollback_completed"


def test_failure_action_rollback_returns_to_the_old_spec_and_exits_non_zero(web: Cluster) -> None:
    result = web(
        "service", "update", "--update-failure-action", "rollback", *MISSING, "web", check=False
    )
    assert result.returncode == 1
    error = error_line(result.stderr)
    assert "rollback completed" in error and "update rolled back due to failure" in error
    service = update_status(web)
    assert service["UpdateStatus"]["State"] == "rollback_completed"
    assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith("swarmctl/tools")
    assert len(running(web)) == 3
    assert all("swarmctl/tools" in i for i in images_running(web))


def test_nothing_changed_touches_nothing_replicas_only_scales_and_force_replaces_all(
    web: Cluster,
) -> None:
    before = current(web)
    out = web("service", "update", "web").stdout
    assert "web: nothing changed, no task replaced" in out
    assert current(web) == before

    web("service", "update", "--replicas", "4", "web")
    scaled = current(web)
    assert [scaled[s]["id"] for s in (1, 2, 3)] == [before[s]["id"] for s in (1, 2, 3)]
    assert "UpdateStatus" not in update_status(web)

    out = web("service", "update", "--force", "web").stdout
    assert "verify: update completed" in out
    forced = current(web)
    assert sorted(forced) == [1, 2, 3, 4]
    assert not {t["id"] for t in forced.values()} & {t["id"] for t in scaled.values()}
    assert len(images_running(web)) == 4


def test_bad_input_is_one_line_and_changes_nothing(web: Cluster) -> None:
    web("service", "create", "-q", "--name", "other", "-p", "8080:80", "nginx", warnings=True)
    cases = {
        ("service", "update", "--image", "busybox", "nope"): "service 'nope' not found",
        ("service", "rollback", "web"): "service web: no previous spec to roll back to",
        ("service", "update", "--publish-add", "8080:80", "web"): (
            "port 8080/tcp is already published by service other"
        ),
        ("service", "update", "--image", "swarmctl/missing", "web"): (
            "image swarmctl/missing: its registry has no such image"
        ),
        ("service", "update", "--update-parallelism", "-1", "web"): (
            "--update-parallelism -1: must be 0 or more"
        ),
    }
    for argv, expected in cases.items():
        before = state_hash(web)
        result = web(*argv, check=False)
        assert result.returncode == 1, argv
        assert expected in error_line(result.stderr), (argv, result.stderr)
        assert "Traceback" not in result.stderr
        assert state_hash(web) == before, argv


def test_an_interrupted_update_is_taken_up_by_a_rerun_and_a_detached_one_by_the_supervisor(
    web: Cluster,
) -> None:
    update = web.popen(
        "service", "update", "--update-delay", "2s", "--image", "nginx", "web",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
    )  # fmt: skip
    wait_for("the first new task", lambda: any("nginx" in t["image"] for t in tasks(web)), 60)
    update.send_signal(signal.SIGINT)
    update.communicate(timeout=60)
    assert update.returncode != 0
    assert update_status(web)["UpdateStatus"]["State"] == "updating"

    out = web("service", "update", "web", warnings=True).stdout  # nothing new: carry it on
    assert "verify: update completed" in out
    made = [t["slot"] for t in tasks(web) if t["image"].startswith("nginx")]
    assert sorted(made) == [1, 2, 3]  # each slot renewed once: no batch lost or repeated

    web("service", "update", "--detach", "--image", "swarmctl/tools", "web", warnings=True)
    supervisor = Supervisor(web)
    try:
        wait_for(
            "the supervisor to finish the update",
            lambda: update_status(web)["UpdateStatus"]["State"] == "completed",
            90,
        )
    finally:
        supervisor.stop()
    assert all(t["image"].startswith("swarmctl/tools") for t in current(web).values())
    assert len(images_running(web)) == 3


def test_network_add_and_rm_roll_the_tasks_onto_the_networks_and_keep_the_vip(
    web: Cluster,
) -> None:
    web("network", "create", "-d", "overlay", "front")
    web("network", "create", "-d", "overlay", "back")
    web("service", "update", "--network-add", "front", "web", warnings=True)
    (vip,) = update_status(web)["Endpoint"]["VirtualIPs"]
    assert all("front" in t["addresses"] for t in current(web).values())

    web("service", "update", "--network-add", "back", "web", warnings=True)
    vips = {v["NetworkID"]: v["Addr"] for v in update_status(web)["Endpoint"]["VirtualIPs"]}
    assert vips[vip["NetworkID"]] == vip["Addr"]  # the front VIP stays
    assert all(set(t["addresses"]) >= {"front", "back"} for t in current(web).values())

    web("service", "update", "--network-rm", "front", "web", warnings=True)
    (left,) = update_status(web)["Endpoint"]["VirtualIPs"]
    assert left["NetworkID"] != vip["NetworkID"]
    assert all("front" not in t["addresses"] for t in current(web).values())
    assert len(images_running(web)) == 3

    web("service", "rollback", "web", warnings=True)  # back onto front
    assert len(update_status(web)["Endpoint"]["VirtualIPs"]) == 2
    assert all(set(t["addresses"]) >= {"front", "back"} for t in current(web).values())


# Requests through the routing mesh, one after another, each line saying how it went.
HAMMER = (
    "while :; do if wget -q -T 5 -O /dev/null http://{address}:8080/ 2>/dev/null;"
    " then echo ok; else echo failed; fi; done"
)


def test_a_client_of_the_mesh_sees_no_failed_request_during_an_update(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster(
        "service", "create", "-q", "--name", "web", "--replicas", "3", "-p", "8080:80",
        "--health-cmd", "wget -q -O /dev/null http://127.0.0.1/", "--health-interval", "300ms",
        "--update-monitor", "1s", "nginx", warnings=True,
    )  # fmt: skip
    address = cluster.lab.host("worker1").address
    client = subprocess.Popen(
        cluster.lab.lab.control_argv(["sh", "-c", HAMMER.format(address=address)]),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for order in ("start-first", "stop-first"):
            cluster("service", "update", "--force", "--update-order", order, "web", warnings=True)
    finally:
        client.terminate()
        out, _ = client.communicate(timeout=30)
    answers = out.split()
    print(f"\nrequests through the mesh during two updates: {len(answers)}")
    assert answers.count("ok") > 10
    assert answers.count("failed") == 0


@pytest.mark.modes("online", "offline")
def test_failure_action_continue_completes_but_exits_non_zero_when_nothing_serves(
    web: Cluster,
) -> None:
    # Swarm's `continue` renews every slot over failed tasks; the update is complete, the
    # service is not what was asked: a script must hear of it.
    result = web(
        "service", "update", "--update-failure-action", "continue", *MISSING, "web", check=False
    )
    assert result.returncode == 1
    error = error_line(result.stderr)
    assert error.startswith(
        "Error: service web: update completed, but it did not converge (0 of 3 tasks running): "
    )
    assert [error.count(f"web.{slot} on ") for slot in (1, 2, 3)] == [1, 1, 1]
    assert update_status(web)["UpdateStatus"]["State"] == "completed"


@pytest.mark.modes("online", "offline")
def test_an_update_whose_health_check_never_passes_pauses_and_keeps_the_old_tasks(
    web: Cluster,
) -> None:
    before = current(web)
    result = web(
        "service", "update", "--health-cmd", "false", "--health-interval", "300ms",
        "--health-retries", "1", "--health-timeout", "1s", "web", check=False,
    )  # fmt: skip
    assert result.returncode == 1
    error = error_line(result.stderr)
    assert "service web: paused: update paused due to failure of task web.1" in error
    assert "unhealthy" in error
    after = current(web)
    assert [after[s]["id"] for s in (2, 3)] == [before[s]["id"] for s in (2, 3)]
    assert len(running(web)) == 2  # the other slots keep serving with the old spec
