"""The example stack (docs/examples/stack.yml) through its life on real hosts, as a user
would run it: deployed with a secrets key file, it converges and its app answers through
the mesh with its config and the db's data; an unchanged redeploy touches no container;
a changed service alone is rolled; the db's data survives a killed container and a
reboot of its node (the supervisor brings it back there); a drain of that node is
refused for its local volume and, forced, leaves the db waiting there; `secret update`
reaches the app while a client of the mesh sees no failed request."""

import secrets
import shutil
import threading
from pathlib import Path

import pytest

from swarmctl.lab.manager import http_get
from tests.integration.conftest import Cluster
from tests.integration.test_supervisor import Supervisor, wait_for

pytestmark = pytest.mark.lab

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples"
CONFIG = "greeting=hello from the app config"
APP = "/cgi-bin/app"
NEW_PASSWORD = "rotated-in-the-lab"


def task_containers(cluster: Cluster) -> dict[str, set[tuple[str, str]]]:
    """(host, container ID) of every running task container of the stack, by service."""
    found: dict[str, set[tuple[str, str]]] = {}
    for host in cluster.lab.hosts:
        out = cluster.lab.ssh(
            host.name,
            "docker ps --filter label=swarmctl.service.name "
            "--format '{{.ID}} {{.Label \"swarmctl.service.name\"}}'",
        ).stdout
        for line in out.splitlines():
            container, _, service = line.partition(" ")
            found.setdefault(service, set()).add((host.name, container))
    return found


def the_db(cluster: Cluster) -> tuple[str, str]:
    (db,) = task_containers(cluster).get("demo_db", set()) or [("", "")]
    return db


def started(cluster: Cluster, host: str) -> list[str]:
    """The db's data: a line per start of its task, read in the volume on the host."""
    read = "cat \"$(docker volume inspect -f '{{.Mountpoint}}' demo_db_data)/started\""
    return cluster.lab.ssh(host, read, check=False).stdout.splitlines()


def get_app(cluster: Cluster, via: str = "worker1", port: int = 8000, path: str = APP) -> str:
    """The app's answer through the mesh, asked at a node, from the control namespace."""
    lab = cluster.lab
    return http_get(lab.layout.ctl_netns, lab.host(via).address, port, path, timeout=5)


def answers_with(cluster: Cluster, lines: list[str], via: str = "worker1") -> bool:
    return get_app(cluster, via).partition("\n\n")[2].splitlines() == [CONFIG, *lines]


def read_secret(cluster: Cluster, service: str = "demo_app", path: str = "db_password") -> set[str]:
    return {
        cluster.lab.ssh(host, f"docker exec {cid} cat /run/secrets/{path}").stdout
        for host, cid in task_containers(cluster)[service]
    }


@pytest.mark.modes("online", "offline")
def test_the_example_stack_through_its_life(cluster: Cluster, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    stack_file = str(tmp_path / "examples" / "stack.yml")
    key = tmp_path / "secrets.key"
    key.write_text(secrets.token_hex(32))
    cluster.env.pop("SWARMCTL_SECRETS_PASSPHRASE", None)
    cluster.env["SWARMCTL_SECRETS_KEY_FILE"] = str(key)
    cluster("init", "manager1")
    cluster("join", "--all")
    deploy = ("stack", "deploy", "-c", stack_file)

    # 1. Deployed, every service converges and the app answers through the mesh.
    out = cluster(*deploy, "demo").stdout
    assert "Creating secret demo_db_password" in out and "Creating config demo_app_conf" in out
    listed = cluster("stack", "services", "demo").stdout
    assert [line.split()[1:4] for line in listed.splitlines()[1:]] == [
        ["demo_app", "replicated", "2/2"],
        ["demo_db", "replicated", "1/1"],
        ["demo_web", "replicated", "2/2"],
    ]
    before = task_containers(cluster)
    assert {s: len(c) for s, c in before.items()} == {"demo_web": 2, "demo_app": 2, "demo_db": 1}
    db_host, _ = the_db(cluster)
    (first_start,) = started(cluster, db_host)
    wait_for("the app's answer", lambda: answers_with(cluster, [first_start]))
    assert "200 OK" in get_app(cluster, "worker2", 8080, "/")  # and the web front

    # 2. Redeployed unchanged: no container touched; the plan is empty.
    again = cluster(*deploy, "demo").stdout
    assert again == "Stack demo: nothing to change (3 service(s) unchanged)\n"
    assert task_containers(cluster) == before
    dry = cluster(*deploy, "--dry-run", "demo", check=False)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "0 to create, 0 to update, 0 to remove, 3 unchanged" in dry.stdout

    # 3. One service changed by a second file: only its tasks are replaced.
    override = tmp_path / "examples" / "blue.yml"
    override.write_text("services:\n  web:\n    environment: [COLOR=blue]\n")
    out = cluster(*deploy, "-c", str(override), "demo").stdout
    assert "Updating service demo_web" in out and "demo_app" not in out and "demo_db" not in out
    after = task_containers(cluster)
    assert after["demo_app"] == before["demo_app"] and after["demo_db"] == before["demo_db"]
    assert len(after["demo_web"]) == 2 and not after["demo_web"] & before["demo_web"]

    # 4. The db's container killed, then its node rebooted: it comes back there, with its data.
    # The supervisor runs from here on, as it would in production.
    supervisor = Supervisor(cluster)
    try:
        steps_4_to_6(cluster, tmp_path, db_host, first_start)
    finally:
        said = supervisor.stop()
    assert NEW_PASSWORD not in said


def steps_4_to_6(cluster: Cluster, tmp_path: Path, db_host: str, first_start: str) -> None:
    _, db_container = the_db(cluster)
    cluster.lab.ssh(db_host, f"docker kill {db_container}")
    wait_for("a new db container", lambda: the_db(cluster)[1] not in ("", db_container), 60)
    assert the_db(cluster)[0] == db_host
    wait_for("the new db's start noted", lambda: len(started(cluster, db_host)) == 2)
    assert started(cluster, db_host)[0] == first_start

    cluster.lab.lab.kill(db_host)
    cluster.lab.lab.start(db_host)
    wait_for("the db back after the reboot", lambda: len(started(cluster, db_host)) == 3, 90)
    wait_for("the db running", lambda: the_db(cluster)[0] == db_host, 30)
    lines = started(cluster, db_host)
    assert lines[0] == first_start
    # Asked at the rebooted node: its mesh is back too.
    wait_for("the app's answer with the db's three starts", lambda: answers_with(cluster, lines))
    wait_for("the mesh on the rebooted node", lambda: answers_with(cluster, lines, via=db_host))

    # 5. Draining the db's node is refused for its local volume; forced, the db waits there.
    tasks = cluster("stack", "ps", "-q", "demo").stdout
    refused = cluster("node", "update", "--availability", "drain", db_host, check=False)
    assert refused.returncode == 1
    assert f"is pinned to {db_host} by volume demo_db_data" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert cluster("stack", "ps", "-q", "demo").stdout == tasks
    forced = cluster("node", "update", "--availability", "drain", "--force", db_host, warnings=True)
    assert f"pinned to {db_host} by volume demo_db_data: it waits" in forced.stderr
    assert the_db(cluster) == ("", "")  # a local volume: its data does not follow the task
    pinned = f'"pinned to {db_host} by volume demo_db_data"'
    assert pinned in cluster("service", "ps", "demo_db").stdout
    cluster("node", "update", "--availability", "active", db_host)
    wait_for("the db back on its node", lambda: the_db(cluster)[0] == db_host, 60)
    assert started(cluster, db_host)[:3] == lines

    # 6. A new db password, while a client asks the app through the mesh, request after request.
    assert read_secret(cluster) == {(tmp_path / "examples/secrets/db_password.txt").read_text()}
    new_password = tmp_path / "new_password.txt"
    new_password.write_text(NEW_PASSWORD)
    answers: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            answers.append(get_app(cluster))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        out = cluster("secret", "update", "demo_db_password", str(new_password))
    finally:
        stop.set()
        thread.join(timeout=30)
    assert NEW_PASSWORD not in out.stdout + out.stderr
    assert read_secret(cluster) == {NEW_PASSWORD}
    assert read_secret(cluster, "demo_db", "password") == {NEW_PASSWORD}
    # The db uses the secret too: while its one task is replaced, the app answers without
    # its data (the wget's error instead), but it answers.
    served = [a for a in answers if CONFIG in a]
    without_db = [a for a in served if lines[0] not in a]
    print(
        f"\nrequests through the mesh during secret update: {len(answers)}, "
        f"{len(answers) - len(served)} failed, {len(without_db)} answered without the db's data"
    )
    assert len(answers) > 10
    assert len(served) == len(answers)
