"""Volumes on real hosts: a service's data stays on its node through a killed container
and a crashed node, `volume ls/rm` across the nodes, tmpfs mounts, bad input."""

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_supervisor import Supervisor, containers, node_state, running, wait_for

pytestmark = pytest.mark.lab

DB_ARGS = (
    "--name",
    "db",
    "--constraint",
    "node.role==worker",  # two candidates: the one without the data must not get the task
    "--mount",
    "type=volume,source=db_data,target=/data",
    "--mount",
    "type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=1770",
    "nginx",  # on the hosts in both modes; its busybox has sh and sleep
    "sleep",
    "1d",
)


def hostname(cluster: Cluster, node_id: str) -> str:
    return cluster(
        "inspect", "--type", "node", "--format", "{{.Description.Hostname}}", node_id
    ).stdout.strip()


def the_task(cluster: Cluster) -> tuple[dict, str]:
    (task,) = running(cluster, "db")
    return task, hostname(cluster, task["node_id"])


def in_task(cluster: Cluster, host: str, task: dict, command: str) -> str:
    return cluster.lab.ssh(host, f"docker exec {task['container_id']} sh -c '{command}'").stdout


@pytest.mark.modes("online", "offline")
def test_a_volume_keeps_its_data_on_its_node_through_a_killed_container_and_a_crash(
    cluster: Cluster,
) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("service", "create", *DB_ARGS)
    first, home = the_task(cluster)
    in_task(cluster, home, first, "echo precious > /data/file")
    scratch = in_task(cluster, home, first, 'grep " /scratch " /proc/mounts; stat -c %a /scratch')
    assert "tmpfs /scratch tmpfs" in scratch and "size=1024k" in scratch
    assert scratch.split()[-1] == "1770"

    listed = cluster("volume", "ls").stdout.splitlines()
    assert listed[0].split() == ["DRIVER", "VOLUME", "NAME", "NODE"]
    assert ["local", "db_data", home] in [line.split() for line in listed[1:]]
    (doc,) = json.loads(cluster("volume", "inspect", "db_data").stdout)
    assert doc["Node"] == home and doc["Labels"]["swarmctl.cluster.id"]
    refused = cluster("volume", "rm", "db_data", check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"Error: volume db_data on {home} is in use by service db (remove the service first)\n"
    )
    assert "db_data" in cluster("volume", "ls", "-q").stdout

    supervisor = Supervisor(cluster)
    try:
        cluster.lab.ssh(home, f"docker kill {first['container_id']}")
        wait_for(
            "a replacement",
            lambda: [t["id"] for t in running(cluster, "db")] not in ([], [first["id"]]),
        )
        second, node = the_task(cluster)
        assert node == home
        assert in_task(cluster, home, second, "cat /data/file") == "precious\n"

        cluster.lab.lab.kill(home)
        try:
            wait_for(f"{home} down", lambda: node_state(cluster, home) == "down")
            pinned = f'"pinned to {home} by volume db_data"'
            wait_for(
                "the task pending, pinned", lambda: pinned in cluster("service", "ps", "db").stdout
            )
            time.sleep(2)  # and it stays so: no task elsewhere, with an empty volume
            assert not running(cluster, "db")
            assert not any(ids for ids in containers(cluster, "db").values())
        finally:
            cluster.lab.lab.start(home)
        wait_for(f"{home} ready", lambda: node_state(cluster, home) == "ready")
        wait_for("the task back", lambda: bool(running(cluster, "db")), timeout=40)
        third, node = the_task(cluster)
        assert node == home
        assert in_task(cluster, home, third, "cat /data/file") == "precious\n"
    finally:
        supervisor.stop()


def test_bad_mounts_and_volumes_are_one_line_and_change_nothing(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    state = Path(cluster.env["SWARMCTL_STATE"]).read_text()
    for mount, why in (
        ("type=volume,source=v,target=/d,size=1g", "unknown key 'size' (use type, source,"),
        ("type=tmpfs,source=v,target=/d", "a tmpfs mount takes no source (it is made in memory)"),
        ("type=bind,source=/srv,target=/d,volume-nocopy", "volume-nocopy is only for type=volume"),
    ):
        result = cluster(
            "service", "create", "--name", "bad", "--mount", mount, "nginx", check=False
        )
        assert result.returncode != 0
        assert result.stderr.startswith(f"Error: --mount '{mount}': {why}")
        assert result.stderr.count("\n") == 1
    missing = cluster("volume", "rm", "nothing_here", check=False)
    assert (missing.returncode, missing.stderr) == (
        1,
        "Error: volume nothing_here: no such volume on any node\n",
    )
    assert cluster("volume", "rm", "-f", "nothing_here").returncode == 0
    unknown = cluster("volume", "inspect", "nothing_here", "--node", "worker1", check=False)
    assert unknown.stderr == "Error: volume nothing_here: no such volume on worker1\n"
    assert Path(cluster.env["SWARMCTL_STATE"]).read_text() == state
    assert cluster("volume", "ls", "-q").stdout == ""


def test_a_volume_made_on_a_node_is_listed_there_and_removed(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster(
        "volume", "create", "--node", "worker2", "-o", "type=tmpfs", "-o", "device=tmpfs", "spare"
    )
    assert cluster("volume", "ls", "--format", "{{.Name}}@{{.Node}}").stdout == "spare@worker2\n"
    (doc,) = json.loads(cluster("volume", "inspect", "spare").stdout)
    assert doc["Options"] == {"type": "tmpfs", "device": "tmpfs"}
    assert cluster("volume", "rm", "spare").stdout == "spare\n"
    assert cluster.lab.ssh("worker2", "docker volume ls -q").stdout == ""
