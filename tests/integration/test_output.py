"""docker's output conventions on a real cluster: every listing's `--format json` rows
parse and carry docker's keys, Go templates print what docker would, `inspect --type task`
gives swarmctl's records, and the event log of a task created and then killed tells
swarm's lifecycle with docker's times."""

import json
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_supervisor import Supervisor, wait_for

pytestmark = pytest.mark.lab

KEYS = {
    ("node", "ls"): {
        "ID",
        "Hostname",
        "Status",
        "Availability",
        "ManagerStatus",
        "EngineVersion",
        "Self",
    },
    ("service", "ls"): {"ID", "Name", "Mode", "Replicas", "Image", "Ports"},
    ("service", "ps", "web"): {
        "ID",
        "Name",
        "Image",
        "Node",
        "DesiredState",
        "CurrentState",
        "Error",
        "Ports",
    },
    ("node", "ps", "manager1"): {"ID", "Name", "Image", "Node", "DesiredState", "CurrentState"},
    ("network", "ls"): {"ID", "Name", "Driver", "Scope", "IPv6", "Internal", "Labels"},
}


@pytest.fixture
def web(cluster: Cluster) -> Iterator[Cluster]:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("network", "create", "web_net")
    cluster(
        "service", "create", "--name", "web", "--replicas", "3", "--network", "web_net", "nginx"
    )
    yield cluster


def rows(cluster: Cluster, *listing: str) -> list[dict]:
    return [json.loads(line) for line in cluster(*listing, "--format", "json").stdout.splitlines()]


def test_every_listing_prints_one_json_row_a_line_with_dockers_keys(web: Cluster) -> None:
    for listing, keys in KEYS.items():
        found = rows(web, *listing)
        assert found, listing
        assert all(keys <= set(row) for row in found), (listing, found[0])
    assert sorted(r["Hostname"] for r in rows(web, "node", "ls")) == [
        "manager1",
        "worker1",
        "worker2",
    ]
    assert [(r["Name"], r["Replicas"]) for r in rows(web, "service", "ls")] == [("web", "3/3")]
    tasks = rows(web, "service", "ps", "web")
    assert sorted(t["Name"] for t in tasks) == ["web.1", "web.2", "web.3"]
    assert {t["DesiredState"] for t in tasks} == {"Running"}
    assert all(t["CurrentState"].startswith("Running ") for t in tasks)


def test_templates_print_what_docker_would(web: Cluster) -> None:
    assert web("service", "ls", "--format", "{{.Name}}").stdout == "web\n"
    assert web("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout == "web_net overlay\n"
    names = web("service", "ps", "web", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == ["web.1", "web.2", "web.3"]
    table = web("node", "ls", "--format", "table {{.Hostname}}\\t{{.Status}}").stdout.splitlines()
    assert table[0].split() == ["HOSTNAME", "STATUS"] and len(table) == 4
    assert web("service", "inspect", "--format", "{{.Spec.Name}}", "web").stdout == "web\n"
    bad = web("service", "ls", "--format", "{{range .}}{{end}}", check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and bad.stdout == ""


def test_inspect_type_task_gives_the_task_records_of_service_ps_q(web: Cluster) -> None:
    ids = web("service", "ps", "-q", "web").stdout.split()
    records = json.loads(web("inspect", "--type", "task", *ids).stdout)
    assert [r["id"] for r in records] == ids
    assert {r["state"] for r in records} == {"running"}


def test_a_created_then_killed_task_tells_swarms_lifecycle_with_dockers_times(
    web: Cluster,
) -> None:
    ids = web("service", "ps", "-q", "web").stdout.split()
    records = json.loads(web("inspect", "--type", "task", *ids).stdout)
    (victim,) = [t for t in records if t["slot"] == 1]
    host = web(
        "inspect", "--type", "node", "--format", "{{.Description.Hostname}}", victim["node_id"]
    ).stdout.strip()
    inspect = "docker inspect --format '{{.State.StartedAt}}' " + victim["container_id"]
    started = web.lab.ssh(host, inspect).stdout.strip()
    sup = Supervisor(web)
    try:
        web.lab.ssh(host, f"docker kill {victim['container_id']}")
        wait_for(
            "the killed task failed",
            lambda: f'RUNNING->FAILED" task.id={victim["id"]}' in web("events").stdout,
        )
    finally:
        sup.stop()
    lines = [
        line for line in web("events").stdout.splitlines() if f"task.id={victim['id']} " in line
    ]
    transitions = [line.split('state.transition="')[1].split('"')[0] for line in lines]
    assert transitions == [
        "NEW->PENDING",
        "PENDING->ASSIGNED",
        "ASSIGNED->ACCEPTED",
        "ACCEPTED->PREPARING",
        "PREPARING->STARTING",
        "STARTING->RUNNING",
        "RUNNING->FAILED",
    ]
    assert "state.desired=RUNNING" in lines[-2]
    assert 'error="task: non-zero exit (137)"' in lines[-1]
    # STARTING->RUNNING is timed by docker's StartedAt (milliseconds of its nanoseconds).
    assert lines[-2].startswith(f'time="{started[:23]}')
